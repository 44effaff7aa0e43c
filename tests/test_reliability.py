"""Issue 16: no traceback, no silent wrong geometry, bounded work (loaders, tools, loop, runner)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from benchmarks.core import runner
from benchmarks.bad_inputs import MODEL_OUTPUTS, ReplayBackend, vqa_rad_folder, patch_nifti, write_nifti_chest
from grounding.tool import ToolContext, ToolError
from grounding.tools import default_registry
from imaging.io import load
from imaging.io.errors import CorruptFileError, ImageTooLargeError, UnreadableFileError
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.volume import Volume
from imaging.writers import write_dicom_series
from mmreason.cli import main
from mmreason.loop import LoopConfig, run_episode, study_text
from mmreason.run_spec import BackendSpec, RunSpec
from mmreason.trace import Trace

REPO = Path(__file__).resolve().parent.parent
NAN = float("nan")


@pytest.fixture(scope="module")
def chest_nii(tmp_path_factory) -> Path:
    """Right-lung nodule, voxels stored right-to-left: a guessed (LAS) orientation swaps the sides."""
    return write_nifti_chest(tmp_path_factory.mktemp("nii") / "chest.nii")


def _copy(src: Path, dest: Path, **patch) -> Path:
    shutil.copy(src, dest)
    return patch_nifti(dest, **patch) if patch else dest


# ------------------------------------------------------------------------------------ loaders

def test_nan_or_inf_affine_is_a_clean_error(chest_nii, tmp_path):
    for bad in (NAN, float("inf")):
        path = _copy(chest_nii, tmp_path / "bad.nii", codes=(0, 1), srow=[bad] + [0.0] * 11)
        with pytest.raises(CorruptFileError, match="NaN or infinite"):
            load(path)


def test_pixdim_zero_without_sform_is_refused_not_one_mm(chest_nii, tmp_path, capfd):
    path = _copy(chest_nii, tmp_path / "zero.nii", codes=(0, 0), pixdim=(0.0, 4.0, 6.0))
    with pytest.raises(CorruptFileError, match=r"pixdim\[1\] = 0"):
        load(path)
    assert capfd.readouterr().err == ""  # nibabel's "setting 0 dims to 1" log line is not printed
    # with an sform, pixdim is not used for geometry: the file loads with the sform's spacing
    assert load(_copy(chest_nii, tmp_path / "sform.nii", pixdim=(0.0, 4.0, 6.0))).spacing == (6.0, 4.0, 4.0)


def test_orientation_trust_from_codes_and_pixdim(chest_nii, tmp_path):
    assert load(chest_nii).facts["orientation"].source == "header"
    codes0 = _copy(chest_nii, tmp_path / "codes0.nii", codes=(0, 0))
    negative = _copy(chest_nii, tmp_path / "neg.nii", codes=(1, 0), pixdim=(-4.0, 4.0, 6.0))
    for path, why in ((codes0, "codes are 0"), (negative, "negative voxel size")):
        fact = load(path).facts["orientation"]
        assert fact.assumed and why in fact.detail
        accepted = load(path, assume_orientation=True)
        assert accepted.facts["orientation"].source == "argument"
        assert "accepted" in accepted.metadata["orientation_argument"]
    # consent is recorded only where something was assumed
    assert "orientation_argument" not in load(chest_nii, assume_orientation=True).metadata


def test_huge_png_is_a_clean_error_and_a_large_one_loads_without_warnings(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this and refuses above twice it
    Image.new("L", (40, 40)).save(tmp_path / "large.png")
    Image.new("L", (80, 80)).save(tmp_path / "huge.png")
    with pytest.raises(ImageTooLargeError, match="too large to decode safely"):
        load(tmp_path / "huge.png")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(tmp_path / "large.png").shape == (1, 40, 40)


#: loads each path given and prints its error class and message, one line each
_LOAD_EACH = """
import sys
from imaging.io import load
from imaging.errors import MMReasonError
for path in sys.argv[1:]:
    try:
        load(path)
        print("loaded")
    except MMReasonError as exc:
        print(type(exc).__name__, exc)
"""


def _load_without_dac_override(paths: list[Path]) -> list[str]:
    """`load` each path in a subprocess where file permissions apply even to root."""
    cmd = [sys.executable, "-c", _LOAD_EACH, *map(str, paths)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        cmd = ["setpriv", "--inh-caps", "-dac_override,-dac_read_search", "--bounding-set",
               "-dac_override,-dac_read_search"] + cmd
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.splitlines()


def test_permission_denied_is_its_own_error(chest_nii, tmp_path):
    path = _copy(chest_nii, tmp_path / "locked.nii")
    series = tmp_path / "series"
    files = write_dicom_series(Volume.from_array(np.zeros((3, 6, 6)), modality="CT"), series)
    try:
        for f in [path, *files]:
            f.chmod(0)
        lines = _load_without_dac_override([path, series])
    finally:
        for f in [path, *files]:
            f.chmod(0o600)
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("UnreadableFileError") and "permission denied" in line, line
        assert "truncated" not in line and "no DICOM files found" not in line
    assert issubclass(UnreadableFileError, PermissionError)


# ---------------------------------------------------------------------- side and spacing trust

def test_no_side_from_an_assumed_orientation(chest_nii, tmp_path):
    guessed = load(_copy(chest_nii, tmp_path / "codes0.nii", codes=(0, 0)))
    registry = default_registry()
    context = ToolContext(volumes={"0": guessed})
    seg = registry.run(context, "segment", {"target": "nodule"})
    assert seg.data["laterality"] == "unknown" and "orientation is assumed" in seg.text
    assert "patient's left" not in seg.text and "patient's right" not in seg.text
    meas = registry.run(context, "measure", {"evidence_id": seg.id})
    assert meas.data["laterality"] == "unknown" and meas.data["fraction_left"] is None
    assert "orientation is assumed" in meas.text
    with pytest.raises(ToolError, match="cannot segment 'lung_left'.*orientation is assumed"):
        registry.run(context, "segment", {"target": "lung_left"})
    # the same file read with its header: the nodule is in the right lung
    trusted = ToolContext(volumes={"0": load(chest_nii)})
    assert registry.run(trusted, "segment", {"target": "nodule"}).data["laterality"] == "right"


def test_assumed_spacing_is_said_in_prompt_and_measurements(tmp_path):
    vol = chest_ct(seed=1, spacing=(6.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=16.0, side="right")]).volume
    for p in write_dicom_series(vol, tmp_path / "s"):
        ds = pydicom.dcmread(str(p))
        del ds.PixelSpacing
        ds.save_as(str(p))
    assumed = load(tmp_path / "s")
    text = study_text({"0": assumed})
    assert "spacing 6 x 1 x 1 mm ASSUMED" in text and "1.00x1.00" not in text
    registry, context = default_registry(), ToolContext(volumes={"0": assumed})
    seg = registry.run(context, "segment", {"target": "lungs"})
    meas = registry.run(context, "measure", {"evidence_id": seg.id})
    assert "pixel spacing assumed" in seg.text and "spacing 6 x 1 x 1 mm ASSUMED" in meas.text
    given = load(tmp_path / "s", spacing=(4.0, 4.0))
    assert given.spacing == (6.0, 4.0, 4.0) and given.facts["spacing"].source == "argument"
    assert "spacing 6.00x4.00x4.00 mm" in study_text({"0": given}) and "ASSUMED" not in study_text({"0": given})


def test_cli_pixel_spacing_and_assume_orientation(chest_nii, tmp_path, capsys):
    png = tmp_path / "xray.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)).save(png)
    assert main(["inspect", str(png), "--json", "--pixel-spacing", "0.5", "0.25"]) == 0
    info = json.loads(capsys.readouterr().out)["volume"]
    assert info["spacing_mm_zyx"] == [1.0, 0.5, 0.25] and info["facts"]["spacing"]["source"] == "argument"
    codes0 = _copy(chest_nii, tmp_path / "codes0.nii", codes=(0, 0))
    assert main(["segment", str(codes0), "--target", "lung_right"]) == 2
    assert "orientation is assumed" in capsys.readouterr().err
    assert main(["segment", str(codes0), "--target", "nodule", "--json", "--assume-orientation"]) == 0
    assert json.loads(capsys.readouterr().out)["laterality"] in ("left", "right")


# ------------------------------------------------------------------------------ the loop

@pytest.fixture(scope="module")
def small() -> Volume:
    return chest_ct(seed=0, spacing=(8.0, 6.0, 6.0)).volume


def _tool_texts(trace: Trace) -> list[str]:
    return [t.text for t in trace.turns if t.role == "tool"]


def test_nested_brackets_and_nan_arguments_go_back_to_the_model(small):
    # whether the JSON reader or the schema check stops the nesting depends on the stack depth the
    # parser starts at; either way the model is told, and the episode goes on
    for script, said in (("nested_brackets", ("too deeply", "bad arguments")), ("unclosed_brackets", "Error"),
                         ("nan_arguments", "NaN and Infinity"), ("nan_margin", "NaN and Infinity"),
                         ("inf_position", "NaN and Infinity")):
        trace = run_episode(small, "q", ReplayBackend([MODEL_OUTPUTS[script], "<answer>yes</answer>"]))
        assert trace.status == "answered", (script, trace.meta.get("error"))
        text = _tool_texts(trace)[0]
        assert any(word in text for word in ((said,) if isinstance(said, str) else said)), (script, text[:200])


def test_tool_calls_per_turn_are_capped(small):
    trace = run_episode(small, "q", ReplayBackend([MODEL_OUTPUTS["hundred_calls"], "<answer>yes</answer>"]),
                        config=LoopConfig(max_tool_calls=5))
    calls = trace.turns[2].tool_calls
    assert len(calls) == 100 and sum(c.error is None for c in calls) == 5
    assert trace.meta["skipped_calls"] == 95 and "only 5 tool calls are run per turn" in _tool_texts(trace)[-1]
    assert trace.status == "answered" and len(trace.evidence) == 5


def test_huge_argument_is_not_echoed_and_the_prompt_is_bounded(small):
    turn = '<tool_call>{"name": "view", "arguments": {"plane": "' + "x" * 300_000 + '"}}</tool_call>'
    trace = run_episode(small, "q", ReplayBackend([turn]), config=LoopConfig(max_prompt_chars=500_000, max_turns=8))
    assert trace.status == "limit" and "max_prompt_chars" in trace.meta["limit"]
    assert all(len(t) < 3000 for t in _tool_texts(trace))
    assert sum(t.role == "assistant" for t in trace.turns) == 2  # stopped once the text passed the bound
    assert len(trace.turns[2].tool_calls[0].raw) < 3000


def test_wall_time_per_episode(small):
    trace = run_episode(small, "q", ReplayBackend(['<tool_call>{"name": "view", "arguments": {}}</tool_call>']),
                        config=LoopConfig(max_seconds=1e-6))
    assert trace.status == "limit" and "max_seconds" in trace.meta["limit"]


def test_a_failure_reading_a_turn_ends_only_that_episode(small, monkeypatch):
    import mmreason.loop as loop

    real = loop.parse_tool_calls

    def flaky(text, tools=None):
        if "boom" in text:
            raise RuntimeError("parser bug")
        return real(text, tools)

    monkeypatch.setattr(loop, "parse_tool_calls", flaky)
    traces = loop.run_episodes([loop.EpisodeRequest([small], "a"), loop.EpisodeRequest([small], "b")],
                               _ByQuestion({"a": "boom", "b": "<answer>fine</answer>"}))
    assert traces[0].status == "error" and "parser bug" in traces[0].meta["error"]
    assert traces[1].status == "answered"


class _ByQuestion(ReplayBackend):
    """Answers each conversation with the text given for its question."""

    def __init__(self, by_question: dict[str, str]) -> None:
        super().__init__([])
        self.by_question = by_question

    def generate(self, conversations, **_):
        out = []
        for c in conversations:
            user = "".join(p.get("text", "") for p in c[1]["content"])
            out.append(next(v for k, v in self.by_question.items() if user.endswith(f"Question: {k}")))
        return out


# ------------------------------------------------------------------------------ the runner

def test_bench_records_broken_model_output_and_goes_on(tmp_path):
    data = vqa_rad_folder(tmp_path / "vqa", 2)
    run = RunSpec(backend=BackendSpec("benchmarks.bad_inputs:ScriptBackend", options={"script": "nested_brackets"}),
                  loop=LoopConfig(max_turns=3))
    config = runner.BenchConfig(tasks=["vqa_rad"], out=tmp_path / "run", run=run, data={"vqa_rad": str(data)},
                                progress=False)
    results = runner.run(config, log=lambda m: None)
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples_vqa_rad.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["loop_status"] == "answered" for r in rows)
    assert results["tasks"]["vqa_rad"]["n"] == 2


def test_resume_after_a_kill_between_steps_and_sample_duplicates_nothing(tmp_path):
    data = vqa_rad_folder(tmp_path / "vqa", 3)

    def config(limit: int | None) -> runner.BenchConfig:
        run = RunSpec(backend=BackendSpec("benchmarks.bad_inputs:ScriptBackend", options={"script": "nan_arguments"}))
        return runner.BenchConfig(tasks=["vqa_rad"], out=tmp_path / "run", run=run, data={"vqa_rad": str(data)},
                                  progress=False, verifiers=["rule"], limit=limit)

    runner.run(config(2), log=lambda m: None)
    steps = tmp_path / "run" / "steps_vqa_rad.jsonl"
    with steps.open("a") as f:  # the kill: the third case's verdicts are written, its sample line is not
        f.write(json.dumps({"id": "2", "verdicts": []}) + "\n")
    runner.run(config(None), log=lambda m: None)
    ids = [json.loads(x)["id"] for x in steps.read_text().splitlines()]
    samples = [json.loads(x)["id"] for x in (tmp_path / "run" / "samples_vqa_rad.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(samples) == ["0", "1", "2"]
