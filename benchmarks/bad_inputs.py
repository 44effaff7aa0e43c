"""Bad and awkward inputs through the command line, as a new user would meet them.

``python -m benchmarks.bad_inputs`` writes a catalogue of inputs (damaged and unusual NIfTI, DICOM
and PNG files, unreadable files, identifiers in tags and folder names, and model outputs that
break the reasoning loop), runs each through ``python -m mmreason ...`` in a subprocess, and
sorts every run into one outcome:

* ``clear error``: exit status 2 and one line on stderr that names the problem, as expected;
* ``right result``: exit status 0 and the output passes the entry's check (no side stated from an
  assumed orientation, the assumed spacing said, no identifier printed ...);
* ``traceback``: a Python traceback or a crash exit status;
* ``raw warning``: a library's warning printed as is (``...Warning: ...``) on stderr;
* ``silent wrong``: a result was printed where an error was due, or the output fails its check;
* ``unexpected error``: a clean error where a result was due.

The goal is 0 tracebacks, 0 raw warnings and 0 silent wrong results. ``--only NAME`` runs the
entries whose name contains NAME; ``--json`` prints every run's record. Unreadable files are
tested without the root's override of file permissions (``setpriv`` drops it when run as root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUTCOMES = ("clear error", "right result", "traceback", "raw warning", "silent wrong", "unexpected error")
#: identifiers written into the identifier-laden inputs; none may appear in any output
IDENTIFIERS = {
    "PatientName": "Doe^Jane", "PatientID": "PHI-12345", "PatientBirthDate": "19610407",
    "InstitutionName": "Saint Elsewhere Hospital", "AccessionNumber": "ACC-778899",
    "ReferringPhysicianName": "House^Gregory", "PerformingPhysicianName": "Quinn^Michaela",
    "OperatorsName": "Burke^Preston", "StudyDate": "20240229", "SeriesDate": "20240229",
    "AcquisitionDate": "20240229", "ContentDate": "20240229", "StudyTime": "134502",
    "StudyDescription": "Doe^Jane PHI-12345 chest follow-up", "SeriesDescription": "Doe^Jane PHI-12345 chest",
    "InstitutionAddress": "12 Elm Street Springfield", "StationName": "ELSEWHERE-CT7",
    "ImageComments": "Jane Doe MRN PHI-12345",
}
#: strings searched for in every output (the values above and their parts)
IDENTIFIER_STRINGS = ("Doe^Jane", "Doe", "Jane", "PHI-12345", "12345", "19610407", "Elsewhere", "ACC-778899",
                      "778899", "House", "Gregory", "Quinn", "Michaela", "Burke", "Preston", "20240229",
                      "134502", "Springfield", "ELSEWHERE-CT7")
#: a patient's name used as a folder and file name
PATIENT_FOLDER = "Doe_Jane_PHI-12345"


# ----------------------------------------------------------------------------------------- inputs

def _chest(side: str = "right"):
    from imaging.phantoms import NoduleSpec, chest_ct

    return chest_ct(seed=1, spacing=(6.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=16.0, side=side)])


def write_nifti_chest(path: Path, side: str = "right") -> Path:
    """A small chest CT with one nodule in the ``side`` lung, as NIfTI with a correct sform.

    The voxels are stored with the first axis running towards the patient's right (RAS storage,
    as many tools write), the opposite of what a reader assumes when the header's orientation
    codes are 0 (nibabel: LAS, the Analyze convention), so such a guess swaps left and right.
    """
    from imaging.volume import Volume
    from imaging.writers import write_nifti

    vol = _chest(side).volume
    affine = vol.affine.copy()
    affine[:3, 3] += (vol.shape[2] - 1) * affine[:3, 2]
    affine[:3, 2] *= -1
    flipped = Volume(np.ascontiguousarray(vol.data[:, :, ::-1]), vol.spacing, affine, vol.modality, name=vol.name)
    return write_nifti(flipped, path)


def patch_nifti(path: Path, *, pixdim: tuple[float, ...] | None = None, codes: tuple[int, int] | None = None,
                srow: list[float] | None = None) -> Path:
    """Overwrite NIfTI-1 header fields in place (uncompressed ``.nii``): pixdim[1:4], (qform_code,
    sform_code), and the 12 srow values; nibabel would correct such values on save."""
    raw = bytearray(path.read_bytes())
    if pixdim is not None:
        raw[80:80 + 4 * len(pixdim)] = struct.pack(f"<{len(pixdim)}f", *pixdim)
    if codes is not None:
        raw[252:256] = struct.pack("<2h", *codes)
    if srow is not None:
        raw[280:328] = struct.pack("<12f", *srow)
    path.write_bytes(bytes(raw))
    return path


def stamp_identifiers(paths: list[Path], values: dict[str, str] | None = None) -> None:
    """Write patient, study, institution, physician, date and free-text identifiers into DICOM files."""
    import pydicom

    for p in paths:
        ds = pydicom.dcmread(str(p))
        for keyword, value in (values or IDENTIFIERS).items():
            setattr(ds, keyword, value)
        ds.save_as(str(p))


def write_identified_series(folder: Path) -> list[Path]:
    """A chest CT DICOM series full of identifiers, in ``folder``."""
    from imaging.writers import write_dicom_series

    paths = write_dicom_series(_chest().volume, folder)
    stamp_identifiers(paths)
    return paths


def write_identified_xray(path: Path) -> Path:
    """A PA chest X-ray DICOM file full of identifiers."""
    from imaging.phantoms import chest_xray
    from imaging.writers import write_dicom_image

    out = write_dicom_image(chest_xray(seed=2, pixel_spacing=2.0).volume, path)
    stamp_identifiers([out])
    return out


def _png(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.new("1", (width, height)).save(path)  # 1-bit: a huge image in a small, fast file
    return path


def vqa_rad_folder(root: Path, n: int = 2) -> Path:
    """A VQA-RAD folder (native schema) with ``n`` questions on a small PNG."""
    from PIL import Image

    images = root / "VQA_RAD Image Folder"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        Image.fromarray((rng.random((48, 48)) * 200).astype(np.uint8), mode="L").save(images / f"img{i}.png")
        rows.append({"qid": i, "phrase_type": "test_freeform", "image_name": f"img{i}.png", "question_type": "PRES",
                     "question": "Is there an abnormality?", "answer": "yes", "answer_type": "CLOSED",
                     "image_organ": "CHEST"})
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(rows))
    return root


# ------------------------------------------------------------------------------- model outputs

#: first-turn outputs of `ScriptBackend` (each later turn answers), by ``script`` option
MODEL_OUTPUTS: dict[str, str] = {
    "nested_brackets": '<tool_call>{"name": "view", "arguments": {"index": ' + "[" * 1000 + "]" * 1000
                       + "}}</tool_call>",
    "unclosed_brackets": '<tool_call>{"name": "view", "arguments": {"index": ' + "[{" * 2000 + "</tool_call>",
    "nan_arguments": '<tool_call>{"name": "view", "arguments": {"plane": "axial", "position_mm": NaN}}</tool_call>',
    "nan_margin": '<tool_call>{"name": "crop", "arguments": {"view_id": "V1", "bbox_2d": [1, 1, 20, 20], '
                  '"margin": NaN}}</tool_call>',
    "inf_position": '<tool_call>{"name": "view", "arguments": {"position_mm": -Infinity}}</tool_call>',
    "hundred_calls": "".join(f'<tool_call>{{"name": "view", "arguments": {{"plane": "axial", "index": {i}}}}}'
                             "</tool_call>" for i in range(100)),
    "huge_argument": '<tool_call>{"name": "view", "arguments": {"plane": "' + "x" * 10_000_000 + '"}}</tool_call>',
    "binary_garbage": "".join(chr(c) for c in range(0, 0x3000, 7)) + "<tool_call>\x00{\udcff</tool_call>",
}


class ReplayBackend:
    """A backend that plays ``turns`` in order, one per model turn (the last one repeats)."""

    name = "replay"
    native_tools = False

    def __init__(self, turns: list[str], model_id: str = "replay") -> None:
        self.turns = turns
        self.model_id = model_id

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], **_: Any) -> list[str]:
        return [self.turns[min(sum(m["role"] == "assistant" for m in c), len(self.turns) - 1)] for c in conversations]


def ScriptBackend(model: str | None = None, script: str = "nested_brackets", **_: Any) -> ReplayBackend:  # noqa: N802
    """The bench backend factory: ``MODEL_OUTPUTS[script]``, then an answer (``huge_argument``
    repeats itself every turn, like a model stuck in a loop)."""
    first = MODEL_OUTPUTS[script]
    turns = [first] if script == "huge_argument" else [first, "Done.\n<answer>yes</answer>"]
    return ReplayBackend(turns, f"script-{script}")


# ------------------------------------------------------------------------------------ the catalogue

@dataclass
class Run:
    """One command on an input. ``args`` may use ``{path}``, ``{dir}`` (the entry's folder) and
    ``{out}`` (a fresh output folder). ``expect`` is ``error`` (with ``match``, a regex the error
    line must contain) or ``result`` (``check`` returns what is wrong, "" when right)."""

    args: list[str]
    expect: str = "error"
    match: str = ""
    check: Callable[["Outcome"], str] | None = None
    drop_privileges: bool = False


@dataclass
class Entry:
    name: str
    make: Callable[[Path], Path]
    runs: list[Run]


@dataclass
class Outcome:
    entry: str
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    out: Path
    seconds: float
    outcome: str = ""
    detail: str = ""

    def json(self) -> Any:
        return json.loads(self.stdout)

    def files_text(self) -> str:
        """Every file the command wrote under its output folder, as text."""
        if not self.out.exists():
            return ""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.out.rglob("*")) if p.is_file())


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{100,}")


def identifiers_in(text: str) -> list[str]:
    """The `IDENTIFIER_STRINGS` found in ``text``; embedded images (long base64 runs, where any
    short string turns up by chance) are left out, and an all-digit identifier counts only where
    no other digit touches it (a timing such as 0.0123456 s holds "12345" by chance)."""
    text = _BASE64_RUN.sub("", text)
    return [s for s in IDENTIFIER_STRINGS
            if (re.search(rf"(?<!\d){s}(?!\d)", text) if s.isdigit() else s in text)]


def _no_identifiers(o: Outcome) -> str:
    found = identifiers_in("\n".join([o.stdout, o.stderr, o.files_text()]))
    return f"identifiers in the output: {found}" if found else ""


def _side_withheld(o: Outcome) -> str:
    record = o.json()
    if record.get("laterality") not in (None, "unknown"):
        return f"laterality {record['laterality']!r} stated from an assumed orientation"
    if "orientation is assumed" not in record["segment"]:
        return "the segment text does not say why no side is given"
    return ""


def _no_wrong_side(wrong: str) -> Callable[[Outcome], str]:
    def check(o: Outcome) -> str:
        answer = re.findall(r"^Answer: .*$", o.stdout, re.MULTILINE)
        said = " ".join(answer) + o.stdout
        if re.search(rf"\b{wrong}\b", said, re.IGNORECASE):
            return f"the output places the finding on the {wrong}: {said[:200]!r}"
        return ""

    return check


def _spacing_assumed(o: Outcome) -> str:
    if "ASSUMED" not in o.stdout:
        return "sizes printed without saying the spacing is assumed"
    return ""


def _prompt_spacing_assumed(o: Outcome) -> str:
    trace = json.loads((o.out / "trace.json").read_text())
    user = next(t["text"] for t in trace["turns"] if t["role"] == "user")
    if re.search(r"spacing [\d.]+x[\d.]+", user) or "mm/px" in user:
        return "the prompt states the assumed spacing as a fact"
    if "ASSUMED" not in user:
        return "the prompt does not say the spacing is assumed"
    return ""


def _given_spacing(o: Outcome) -> str:
    record = o.json()
    if record["spacing_mm_zyx"][1:] != [2.0, 2.0] or "ASSUMED" in o.stdout:
        return f"--pixel-spacing 2 2 not used: {record['spacing_mm_zyx']}"
    return ""


def _side_stated(o: Outcome) -> str:
    record = o.json()
    return "" if record.get("laterality") in ("left", "right", "midline") else "no side despite --assume-orientation"


def _samples(o: Outcome) -> list[dict[str, Any]]:
    path = o.out / "samples_vqa_rad.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _bench_status(*statuses: str, error_has: str = "") -> Callable[[Outcome], str]:
    def check(o: Outcome) -> str:
        rows = _samples(o)
        if len(rows) != 2:
            return f"{len(rows)} samples written, expected 2"
        for row in rows:
            if row["loop_status"] not in statuses:
                return f"loop status {row['loop_status']!r}, expected {' or '.join(statuses)} ({row.get('error')})"
            trace = json.loads((o.out / row["trace"]).read_text())
            tool_texts = [t["text"] for t in trace["turns"] if t["role"] == "tool"]
            if any(len(t) > 5000 for t in tool_texts):
                return f"a tool message of {max(map(len, tool_texts))} characters echoes the model back"
            if error_has and not any(error_has in t for t in tool_texts):
                return f"no tool message says {error_has!r}"
        return ""

    return check


def _calls_capped(o: Outcome) -> str:
    problem = _bench_status("answered", error_has="tool calls are run per turn")(o)
    if problem:
        return problem
    trace = json.loads((o.out / _samples(o)[0]["trace"]).read_text())
    ran = [c for t in trace["turns"] for c in t.get("tool_calls", []) if not (c.get("error") or "").startswith("not run")]
    return "" if len(ran) <= 8 else f"{len(ran)} calls ran in one turn"


def _shows(text: str) -> Callable[[Outcome], str]:
    return lambda o: "" if text in o.stdout else f"{text!r} not in the output"


def _inspect(extra: list[str] | None = None, **kw: Any) -> Run:
    return Run(["inspect", "{path}", *(extra or [])], **kw)


def _segment(target: str, extra: list[str] | None = None, **kw: Any) -> Run:
    return Run(["segment", "{path}", "--target", target, *(extra or [])], **kw)


def _infer(question: str, extra: list[str] | None = None, **kw: Any) -> Run:
    return Run(["infer", "--image", "{path}", "--question", question, "--out", "{out}", *(extra or [])], **kw)


def _bench(script: str, check: Callable[[Outcome], str]) -> Run:
    return Run(["bench", "--tasks", "vqa_rad", "--data", "vqa_rad={path}", "--backend",
                "benchmarks.bad_inputs:ScriptBackend", "--backend-option", f"script={script}", "--out", "{out}",
                "--no-progress", "--max-turns", "3"], expect="result", check=check)


def _nifti(make: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = write_nifti_chest(folder / "chest.nii")
        make(path)
        return path

    return build


def _dicom_no_spacing(folder: Path) -> Path:
    import pydicom

    from imaging.io import load
    from imaging.writers import write_dicom_series
    from mmreason.commands.segment import segment_and_measure, write_mask

    series = folder / "series"
    for p in write_dicom_series(_chest().volume, series):
        ds = pydicom.dcmread(str(p))
        del ds.PixelSpacing
        ds.save_as(str(p))
    volume = load(series)
    write_mask(segment_and_measure(volume, "lungs")["_mask"], volume, folder / "mask.nii.gz")
    return series


def _uneven(folder: Path) -> Path:
    from imaging.writers import write_dicom_series

    paths = write_dicom_series(_chest().volume, folder / "series")
    paths[5].unlink()
    return folder / "series"


def _two_series(folder: Path) -> Path:
    from imaging.writers import write_dicom_series

    study = folder / PATIENT_FOLDER
    for name, desc in (("a", "Doe^Jane PHI-12345 chest"), ("b", "ACC-778899 lung kernel")):
        paths = write_dicom_series(_chest().volume, study / name)
        stamp_identifiers(paths, IDENTIFIERS | {"SeriesDescription": desc})
    return study


def _unreadable_file(folder: Path) -> Path:
    path = write_nifti_chest(folder / "chest.nii")
    path.chmod(0)
    return path


def _unreadable_dicom(folder: Path) -> Path:
    from imaging.writers import write_dicom_series

    for p in write_dicom_series(_chest().volume, folder / "series"):
        p.chmod(0)
    return folder / "series"


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _truncated_nifti(folder: Path) -> Path:
    path = write_nifti_chest(folder / "chest.nii.gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _nonfinite_voxels(folder: Path) -> Path:
    from imaging.volume import Volume
    from imaging.writers import write_nifti

    data = np.zeros((4, 8, 8), np.float32)
    data[1, 2, 3] = np.nan
    return write_nifti(Volume.from_array(data, modality="MR"), folder / "nan.nii.gz")


def _four_d(folder: Path) -> Path:
    import nibabel as nib

    path = folder / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 4, 3), np.float32), np.eye(4)), str(path))
    return path


def _huge_header(folder: Path) -> Path:
    path = write_nifti_chest(folder / "huge.nii")
    raw = bytearray(path.read_bytes())
    raw[40:56] = struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1)
    path.write_bytes(bytes(raw))
    return path


def _png_copy(folder: Path) -> Path:
    from imaging.phantoms import chest_xray
    from imaging.writers import write_png

    return write_png(chest_xray(seed=2, pixel_spacing=2.0).volume, folder / "xray.png")


def _identified_series(folder: Path) -> Path:
    write_identified_series(folder / PATIENT_FOLDER)
    return folder / PATIENT_FOLDER


def _identified_xray(folder: Path) -> Path:
    (folder / PATIENT_FOLDER).mkdir()
    return write_identified_xray(folder / PATIENT_FOLDER / f"{PATIENT_FOLDER}.dcm")


def _empty_folder(folder: Path) -> Path:
    (folder / "empty").mkdir()
    return folder / "empty"


def _photo_png(folder: Path) -> Path:
    """A grey photograph-like picture (no medical content): its modality is only a guess."""
    from PIL import Image

    yy, xx = np.mgrid[:96, :128]
    picture = 120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    path = folder / "photo.png"
    Image.fromarray(picture.clip(0, 255).astype(np.uint8)).save(path)
    return path


def _foreign_nifti(folder: Path, data_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], name: str) -> Path:
    """A NIfTI as other tools write it: RAS affine, codes 1, no modality note."""
    import nibabel as nib

    sz, sy, sx = spacing_zyx
    affine = np.diag([-sx, -sy, sz, 1.0])
    img = nib.Nifti1Image(np.asarray(data_zyx, np.float32).transpose(2, 1, 0), affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    path = folder / name
    nib.save(img, str(path))
    return path


def _ct_without_intercept(folder: Path) -> Path:
    vol = _chest().volume
    return _foreign_nifti(folder, vol.data + 1024.0, vol.spacing, "raw_values.nii.gz")


def _constant_nifti(folder: Path) -> Path:
    return _foreign_nifti(folder, np.full((6, 16, 16), -1000.0), (3.0, 1.0, 1.0), "constant.nii.gz")


def _one_ct_slice(folder: Path) -> Path:
    vol = _chest().volume
    return _foreign_nifti(folder, vol.data[vol.shape[0] // 2][None], vol.spacing, "one_slice.nii.gz")


def _lateral_film(folder: Path) -> Path:
    """A frontal chest film whose header says it is a lateral view (ViewPosition LL)."""
    import pydicom

    from imaging.phantoms import chest_xray
    from imaging.writers import write_dicom_image

    path = write_dicom_image(chest_xray(seed=2, pixel_spacing=2.0).volume, folder / "lateral.dcm")
    ds = pydicom.dcmread(path)
    ds.ViewPosition = "LL"
    ds.save_as(path)
    return path


def _nifti_in_metres(folder: Path) -> Path:
    """The chest with its header in metres (xyzt_units), as some converters write it."""
    import nibabel as nib

    vol = _chest().volume
    sz, sy, sx = (s / 1000.0 for s in vol.spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    img = nib.Nifti1Image(vol.data.transpose(2, 1, 0).astype(np.int16), affine)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units("meter")
    path = folder / "metres.nii.gz"
    nib.save(img, str(path))
    return path


def _spacing_in_mm(o: Outcome) -> str:
    spacing = o.json()["volume"]["spacing_mm_zyx"]
    return "" if np.allclose(spacing, [6.0, 4.0, 4.0], rtol=1e-4) else f"spacing {spacing} mm, expected 6 x 4 x 4 mm"


def _answer_hedged(*words: str) -> Callable[[Outcome], str]:
    """The answer is hedged or declined and names ``words`` (the reason)."""
    def check(o: Outcome) -> str:
        answer = " ".join(re.findall(r"^Answer: .*$", o.stdout, re.MULTILINE))
        if not answer:
            return "no answer printed"
        if not re.search(r"uncertain|cannot answer", answer, re.IGNORECASE):
            return f"answer stated as fact: {answer[:200]!r}"
        missing = [w for w in words if w not in answer]
        return f"the answer does not say {missing}: {answer[:200]!r}" if missing else ""

    return check


NODULE_Q = "Is there a lung nodule? Which lung is it in?"


def catalogue() -> list[Entry]:
    """Every input named in issue 16, and the common damaged files around them."""
    nan = float("nan")
    priv = dict(expect="result", check=_no_identifiers)
    return [
        Entry("nifti_nan_sform", _nifti(lambda p: patch_nifti(p, codes=(0, 1), srow=[nan] + [0.0] * 11)), [
            _inspect(match="NaN or infinite"), _segment("lungs", match="NaN or infinite"),
            _infer(NODULE_Q, match="NaN or infinite")]),
        Entry("nifti_inf_sform", _nifti(lambda p: patch_nifti(p, codes=(0, 1), srow=[float("inf")] + [4.0] * 11)), [
            _inspect(match="NaN or infinite")]),
        Entry("nifti_codes_0_right_nodule", _nifti(lambda p: patch_nifti(p, codes=(0, 0))), [
            _inspect(expect="result", check=lambda o: "" if "orientation LPS ASSUMED" in o.stdout else
                     "inspect does not say the orientation is assumed"),
            _segment("nodule", ["--json"], expect="result", check=_side_withheld),
            _segment("lung_left", match="orientation is assumed"),
            _infer(NODULE_Q, expect="result", check=_no_wrong_side("left")),
            _segment("nodule", ["--json", "--assume-orientation"], expect="result", check=_side_stated)]),
        Entry("nifti_negative_pixdim", _nifti(lambda p: patch_nifti(p, codes=(1, 0), pixdim=(-4.0, 4.0, 6.0))), [
            _segment("nodule", ["--json"], expect="result", check=_side_withheld),
            _infer(NODULE_Q, expect="result", check=_no_wrong_side("left"))]),
        Entry("nifti_pixdim_0", _nifti(lambda p: patch_nifti(p, codes=(0, 0), pixdim=(0.0, 4.0, 6.0))), [
            _inspect(match="no voxel size"), _segment("lungs", match="no voxel size")]),
        Entry("nifti_truncated", _truncated_nifti, [_inspect(match="truncated|damaged")]),
        Entry("nifti_empty_file", _bytes("empty.nii", b""), [_inspect()]),
        Entry("nifti_text", _bytes("notes.nii.gz", b"hello, not an image\n" * 20), [_inspect()]),
        Entry("nifti_nan_voxels", _nonfinite_voxels, [
            _inspect(match="NaN"), _inspect(["--nonfinite", "zero"], expect="result", check=_shows("nonfinite_replaced"))]),
        Entry("nifti_4d_without_frame", _four_d, [_inspect(match="--frame")]),
        Entry("nifti_huge_header", _huge_header, [_inspect(match="voxels")]),
        Entry("png_30000", lambda f: _png(f / "huge.png", 30000, 30000), [_inspect(match="too large")]),
        Entry("png_10000", lambda f: _png(f / "big.png", 10000, 10000), [
            _inspect(expect="result", check=_shows("1 x 10000 x 10000"))]),
        Entry("png_garbage", _bytes("scan.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64), [_inspect()]),
        Entry("png_xray_sides", _png_copy, [
            _segment("lung_left", match="orientation is assumed"),
            _segment("lungs", ["--json"], expect="result", check=_side_withheld),
            _segment("lung_left", ["--json", "--assume-orientation"], expect="result", check=_side_stated)]),
        Entry("dicom_no_pixel_spacing", _dicom_no_spacing, [
            Run(["measure", "{path}", "--mask", "{dir}/mask.nii.gz"], expect="result", check=_spacing_assumed),
            _segment("lungs", expect="result", check=_spacing_assumed),
            _infer("How large are the lungs?", expect="result", check=_prompt_spacing_assumed),
            _segment("lungs", ["--json", "--pixel-spacing", "2", "2"], expect="result", check=_given_spacing)]),
        Entry("png_photograph_modality", _photo_png, [
            _infer("What is the modality of this image?", expect="result", check=_answer_hedged("guessed")),
            _infer("Is this a CT?", expect="result", check=_answer_hedged("guessed"))]),
        Entry("nifti_ct_without_intercept", _ct_without_intercept, [
            _infer("Is this a CT?", expect="result", check=_answer_hedged("guessed"))]),
        Entry("nifti_constant", _constant_nifti, [
            _infer("What is the modality of this image?", expect="result", check=_answer_hedged("constant"))]),
        Entry("nifti_one_ct_slice", _one_ct_slice, [
            _infer("What is the volume of the lungs?", expect="result", check=_answer_hedged("2-D"))]),
        Entry("nifti_units_metres", _nifti_in_metres, [_inspect(["--json"], expect="result", check=_spacing_in_mm)]),
        Entry("dicom_lateral_film", _lateral_film, [
            _infer("What is the cardiothoracic ratio?", expect="result", check=_answer_hedged("not a frontal film"))]),
        Entry("dicom_uneven_slices", _uneven, [
            _inspect(match="missing slice"), _inspect(["--allow-uneven"], expect="result", check=_shows("uneven_slices"))]),
        Entry("dicom_two_series_with_identifiers", _two_series, [
            _inspect(**priv), _inspect(["--json"], **priv),
            _segment("lungs", match="several series|2 series", check=_no_identifiers)]),
        Entry("dicom_series_with_identifiers", _identified_series, [
            _inspect(**priv), _inspect(["--json"], **priv), _segment("lungs", ["--json"], **priv),
            _infer(NODULE_Q, **priv)]),
        Entry("dicom_xray_with_identifiers", _identified_xray, [
            _inspect(**priv), _inspect(["--json"], **priv), _segment("lungs", ["--json"], **priv)]),
        Entry("unreadable_file", _unreadable_file, [
            _inspect(match="permission denied", drop_privileges=True)]),
        Entry("unreadable_dicom_folder", _unreadable_dicom, [
            _inspect(match="permission denied", drop_privileges=True)]),
        Entry("empty_folder", _empty_folder, [_inspect(match="no DICOM")]),
        Entry("missing_path", lambda f: f / "nowhere.nii.gz", [_inspect(match="no such file")]),
        Entry("unsupported_type", _bytes("report.txt", b"text"), [_inspect(match="unsupported")]),
        Entry("model_nested_brackets", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("nested_brackets", _bench_status("answered", error_has="too deeply"))]),
        Entry("model_unclosed_brackets", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("unclosed_brackets", _bench_status("answered", error_has="Error"))]),
        Entry("model_nan_argument", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("nan_arguments", _bench_status("answered", error_has="NaN and Infinity"))]),
        Entry("model_nan_margin", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("nan_margin", _bench_status("answered", error_has="NaN and Infinity"))]),
        Entry("model_inf_position", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("inf_position", _bench_status("answered", error_has="NaN and Infinity"))]),
        Entry("model_hundred_calls", lambda f: vqa_rad_folder(f / "vqa"), [_bench("hundred_calls", _calls_capped)]),
        Entry("model_10mb_argument", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("huge_argument", _bench_status("limit"))]),
        Entry("model_binary_garbage", lambda f: vqa_rad_folder(f / "vqa"), [
            _bench("binary_garbage", _bench_status("answered"))]),
    ]


# ------------------------------------------------------------------------------------- running

def _command(run: Run) -> list[str]:
    cmd = [sys.executable, "-m", "mmreason"]
    if run.drop_privileges and os.geteuid() == 0 and shutil.which("setpriv"):
        # root reads any file: drop the capabilities that override file permissions
        cmd = ["setpriv", "--inh-caps", "-dac_override,-dac_read_search", "--bounding-set",
               "-dac_override,-dac_read_search"] + cmd
    return cmd


def run_one(entry: Entry, run: Run, folder: Path, path: Path, index: int) -> Outcome:
    out = folder / f"out{index}"
    args = [a.format(path=path, dir=folder, out=out) for a in run.args]
    t0 = time.perf_counter()
    proc = subprocess.run(_command(run) + args, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    outcome = Outcome(entry.name, run.args, proc.returncode, proc.stdout, proc.stderr, out,
                      time.perf_counter() - t0)
    outcome.outcome, outcome.detail = classify(run, outcome)
    return outcome


def classify(run: Run, o: Outcome) -> tuple[str, str]:
    """The outcome of one run (see the module docstring) and what decided it."""
    if "Traceback (most recent call last)" in o.stderr or o.returncode not in (0, 1, 2):
        return "traceback", o.stderr.strip().splitlines()[-1] if o.stderr.strip() else f"exit {o.returncode}"
    warning = re.search(r"^.*\b\w+Warning: .*$", o.stderr, re.MULTILINE)
    if warning:
        return "raw warning", warning.group(0)
    error_lines = [line for line in o.stderr.splitlines() if not line.startswith("[mmreason]")]
    if run.expect == "error":
        if o.returncode == 0:
            return "silent wrong", "accepted an input that should be refused"
        line = " ".join(error_lines)
        if len(error_lines) != 1 or "error:" not in line or (run.match and not re.search(run.match, line, re.I)):
            return "unexpected error", line[:300]
        problem = run.check(o) if run.check else ""
        return ("silent wrong", problem) if problem else ("clear error", line[:300])
    if o.returncode != 0:
        return "unexpected error", " ".join(error_lines)[:300]
    try:
        problem = run.check(o) if run.check else ""
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        problem = f"output unreadable: {type(exc).__name__}: {exc}"
    return ("silent wrong", problem) if problem else ("right result", "")


def sweep(only: str = "", log: Callable[[str], None] = lambda m: None) -> list[Outcome]:
    """Build every input of the catalogue in a temporary folder and run its commands."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mmreason-bad-") as tmp:
        for entry in catalogue():
            if only and only not in entry.name:
                continue
            folder = Path(tmp) / entry.name
            folder.mkdir()
            try:
                path = entry.make(folder)
            except Exception as exc:  # building the input ran our own code (loaders, segmenters): a crash counts
                path, broken = folder, f"building the input crashed: {type(exc).__name__}: {exc}"
            else:
                broken = ""
            for i, run in enumerate(entry.runs):
                if broken:
                    o = Outcome(entry.name, run.args, -1, "", broken, folder, 0.0, "traceback", broken)
                else:
                    o = run_one(entry, run, folder, path, i)
                log(f"{o.outcome:<16} {entry.name}: mmreason {' '.join(run.args)} ({o.seconds:.1f} s)"
                    + (f"\n                 {o.detail}" if o.outcome not in ("clear error", "right result") else ""))
                outcomes.append(o)
        for p in Path(tmp).rglob("*"):  # unreadable files must become removable
            p.chmod(0o700)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the entries whose name contains this")
    parser.add_argument("--json", action="store_true", help="print one JSON record per run")
    args = parser.parse_args(argv)
    outcomes = sweep(args.only, log=lambda m: print(m, file=sys.stderr, flush=True))
    counts = Counter(o.outcome for o in outcomes)
    if args.json:
        for o in outcomes:
            print(json.dumps({"entry": o.entry, "args": o.args, "outcome": o.outcome, "detail": o.detail,
                              "returncode": o.returncode, "seconds": round(o.seconds, 2)}))
    inputs = len({o.entry for o in outcomes})
    print(f"{inputs} inputs, {len(outcomes)} runs: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in OUTCOMES))
    bad = sum(counts.get(k, 0) for k in ("traceback", "raw warning", "silent wrong"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
