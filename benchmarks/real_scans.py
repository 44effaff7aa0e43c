"""Segmenters and ``mmreason infer`` on real scans with reference labels (none of them made here).

Reads a manifest (default ``benchmarks/real_scans.json``) whose entries name an image and its
label files - each with the public repository, path, commit, sha256 and licence it came from - the
structures to segment with the label values that hold them, and questions with the answers the
labels give. The files themselves are never committed: put them in ``--data`` (default
``data/real``, git-ignored) under the names the manifest gives.

For each entry whose files are present and match their sha256 (others are skipped with a printed
line), it

* loads the image and labels with `imaging.io.load` and segments each listed structure with the
  chosen segmenter (default ``classical``): Dice and volume error against the label (area for a
  2-D image). A label is a label image on the image's grid, or on another grid of the same patient
  coordinates (``resample_by_world``), or a 2-D mask at another resolution (``resize_to_image``),
  or an RT structure set whose named contours are rasterised on the image's grid
  (``rtstruct_rois``);
* asks each question exactly as ``mmreason infer --image IMAGE --question Q`` does (the ``infer``
  parser and `mmreason.commands.infer.episode`, rules backend by default) and judges the answer:
  ``right`` (every part the expectation names - finding, side, size, ratio - within tolerance),
  ``hedged`` (not right, but the episode declined or its answer says it is unsure) or ``wrong``
  (not right and stated as fact); cited evidence whose quality is below ``ok`` is listed with each
  answer, and a wrong answer whose evidence was flagged is counted apart (the doubt was known but
  not passed on).

Entries may name a ``group`` (default ``tuning``): a ``held-out`` group holds scans that no
threshold was set on, and the totals are printed for every scan and per group, so a figure on the
held-out group is not flattered by tuning. ``--group``/``--kind`` run a subset.

Prints one table per part and the totals; writes ``results.json``, ``results.md`` and each
question's ``trace.json``/``report.html`` into ``--out``.

Run: ``python -m benchmarks.real_scans [--manifest PATH] [--data data/real] [--out DIR] [--group G] [--kind K]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.agreement import dice
from imaging.io import load
from imaging.volume import Volume
from mmreason.quantities import quantities_in

DEFAULT_MANIFEST = Path(__file__).with_name("real_scans.json")
VERDICTS = ("right", "hedged", "wrong")
#: the group of an entry that names none: scans the segmenters' thresholds may have been set on
DEFAULT_GROUP = "tuning"
#: default tolerances: relative for volumes and diameters, absolute for the cardiothoracic ratio
TOLERANCES = {"volume_ml": 0.30, "diameter_mm": 0.30, "ctr": 0.05}

_RATIO = re.compile(r"(?<![\d.])((?:0|1)\.\d+)(?!\s*(?:ml|mm|cm|%|\d))", re.I)
_NEGATIVE = re.compile(r"^\W*no\b|\bno\b[\w\s-]{0,40}\b(was|were|is|are) (found|seen|detected|identified)|"
                       r"\bnot (found|seen|detected|identified)\b|\bnone\b", re.I)
_ENLARGED = re.compile(r"^\W*yes\b|\b(is enlarged|cardiomegaly)\b", re.I)
_NOT_ENLARGED = re.compile(r"^\W*no\b|\b(not enlarged|no cardiomegaly|normal (heart|cardiac) size|within normal)", re.I)
_HEDGE = re.compile(r"\b(uncertain\w*|unsure|not sure|possibl[ey]|probabl[ey]|may|might|cannot|can't|could not|"
                    r"unable|unclear|doubt\w*|unreliable|not reliable|assumed|caution|implausible|"
                    r"low confidence|not be trusted)\b", re.I)
_SIDE = re.compile(r"\b(left|right|bilateral|both|midline)\b", re.I)


class ManifestError(ValueError):
    """The manifest is malformed; the message names the entry and the field."""


# -- files ------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(entry: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return [entry["image"], *entry.get("labels", [])]
    except KeyError as exc:
        raise ManifestError(f"entry {entry.get('id', '?')}: missing field {exc}") from exc


def missing_or_changed(entry: dict[str, Any], data: Path) -> str | None:
    """Why ``entry`` cannot run (a file absent or not the one the manifest names), or None.

    A reference with ``files`` (``[{"name", "sha256"}, ...]``) is a folder (a DICOM series) whose
    listed files are each checked.
    """
    for ref in _files(entry):
        where = f"{ref.get('repo', '?')}@{str(ref.get('commit', '?'))[:10]}:{ref.get('path', '?')}"
        members = [(data / ref["file"] / f["name"], f.get("sha256")) for f in ref["files"]] if "files" in ref else \
            [(data / ref["file"], ref.get("sha256"))]
        for path, digest in members:
            if not path.exists():
                return f"{path} is missing (copy it from {where})"
            if digest and sha256_of(path) != digest:
                return f"{path} does not match its sha256 (expected the file at {where})"
    return None


# -- segmentation -------------------------------------------------------------------------------

def label_on_grid(volume: Volume, label: Volume, ref: dict[str, Any]) -> np.ndarray:
    """The label's values on the image's voxel grid.

    A label file must lie on the image's grid, except

    * a 2-D label marked ``resize_to_image`` (the same field of view at another resolution, e.g.
      the SCR masks at half the JSRT resolution), resampled by nearest neighbour;
    * a 3-D label marked ``resample_by_world`` (drawn on another grid in the same patient
      coordinates, e.g. on a co-registered finer scan of the same session), resampled by nearest
      neighbour through both affines; label voxels outside the label's grid read 0.
    """
    from mmreason.commands.measure import mask_on_grid

    if ref.get("resample_by_world"):
        if volume.is_2d or label.is_2d:
            raise ManifestError(f"{ref['file']}: resample_by_world is for 3-D images and labels only")
        from scipy.ndimage import affine_transform

        # image index -> patient mm -> label index, one matrix for the whole grid
        to_label = np.linalg.solve(label.affine, volume.affine)
        return affine_transform(label.data, to_label[:3, :3], offset=to_label[:3, 3], output_shape=volume.shape,
                                order=0, mode="constant", cval=0.0)
    if not ref.get("resize_to_image"):
        mask_on_grid(volume, label)  # raises when the label is not on the image's grid
        return label.data
    if not (volume.is_2d and label.is_2d):
        raise ManifestError(f"{ref['file']}: resize_to_image is for 2-D images only")
    rows = np.arange(volume.shape[1]) * label.shape[1] // volume.shape[1]
    cols = np.arange(volume.shape[2]) * label.shape[2] // volume.shape[2]
    return label.data[:, rows][:, :, cols]


#: how far (in slices) a contour may lie from a slice centre and still be drawn on that slice
CONTOUR_SLICE_TOLERANCE = 0.25


def rtstruct_on_grid(volume: Volume, path: Path, rois: dict[str, str | list[str]]) -> np.ndarray:
    """The contours of an RT structure set rasterised on the image's grid as a label map.

    ``rois`` maps a label value to the ROI name(s) drawn with it (later values overwrite earlier
    ones where they overlap). Each closed planar contour, in DICOM patient coordinates (LPS mm),
    must lie on one of the image's slices; the voxels whose centres fall inside it are filled, and
    the contours of one ROI on one slice are combined even-odd, so an inner contour cuts a hole.
    """
    import pydicom
    from skimage.draw import polygon

    ds = pydicom.dcmread(path)
    if ds.get("Modality") != "RTSTRUCT":
        raise ManifestError(f"{path.name}: rtstruct_rois needs an RTSTRUCT file, this is {ds.get('Modality')!r}")
    numbers = {str(roi.ROIName): int(roi.ROINumber) for roi in ds.StructureSetROISequence}
    contours = {int(item.ReferencedROINumber): item.get("ContourSequence", []) for item in ds.ROIContourSequence}
    out = np.zeros(volume.shape, dtype=np.float32)
    for value, names in rois.items():
        for name in [names] if isinstance(names, str) else names:
            if name not in numbers:
                raise ManifestError(f"{path.name}: no ROI named {name!r}; it holds {sorted(numbers)}")
            drawn = np.zeros(volume.shape, dtype=bool)
            for contour in contours.get(numbers[name], []):
                zyx = volume.world_to_voxel(np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3))
                z = int(np.rint(zyx[:, 0].mean()))
                if np.abs(zyx[:, 0] - z).max() > CONTOUR_SLICE_TOLERANCE or not 0 <= z < volume.shape[0]:
                    raise ManifestError(f"{path.name}: a contour of {name!r} does not lie on a slice of the image "
                                        f"(index {zyx[:, 0].min():.2f}-{zyx[:, 0].max():.2f}); is it the image "
                                        "the structure set references?")
                rows, cols = polygon(zyx[:, 1], zyx[:, 2], shape=volume.shape[1:])
                drawn[z, rows, cols] ^= True
            out[drawn] = float(value)
    return out


def load_label(volume: Volume, path: Path, ref: dict[str, Any]) -> np.ndarray:
    """The label file ``ref`` names as values on ``volume``'s grid (an image, or an RT structure set
    with ``rtstruct_rois``)."""
    if "rtstruct_rois" in ref:
        return rtstruct_on_grid(volume, path, ref["rtstruct_rois"])
    return label_on_grid(volume, load(path), ref)


def label_mask(labels: list[np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """The reference mask of one structure: ``values`` listed in label file(s) ``label`` (an index
    or a list of indices, united), or voxels at or above ``min_value`` (anti-aliased 8-bit masks)."""
    indices = spec.get("label", 0)
    mask = np.zeros(labels[0].shape, dtype=bool)
    for index in indices if isinstance(indices, list) else [indices]:
        data = labels[int(index)]
        if "values" in spec:
            mask |= np.isin(np.rint(data), spec["values"])
        else:
            mask |= data >= float(spec.get("min_value", 0.5))
    return mask


def size_of(mask: np.ndarray, volume: Volume) -> tuple[float, str]:
    """Volume in mL, or area in cm2 for a 2-D image; the unit says when the spacing is the loader's
    assumption (a PNG film's 1 mm pixels: its areas are then in those units, not the patient's)."""
    assumed = " (spacing assumed)" if volume.facts["spacing"].assumed else ""
    if volume.is_2d:
        return float(mask.sum()) * volume.spacing[1] * volume.spacing[2] / 100.0, "cm2" + assumed
    return float(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0, "mL" + assumed


def segment_structures(entry: dict[str, Any], volume: Volume, labels: list[np.ndarray], segmenter: Any) -> list[dict]:
    from grounding.segmenters import SegmentationError

    rows = []
    for spec in entry.get("segment", []):
        reference = label_mask(labels, spec)
        ref_size, unit = size_of(reference, volume)
        row: dict[str, Any] = {"id": entry["id"], "kind": entry["kind"], "target": spec["target"],
                               "reference": round(ref_size, 2), "unit": unit}
        t0 = time.perf_counter()
        try:
            mask = np.asarray(segmenter.segment(volume, spec["target"]), dtype=bool)
        except SegmentationError as exc:
            row.update(error=str(exc), dice=0.0, found=None, volume_error=None)
        except Exception as exc:  # a segmenter bug: recorded as a failure, the other scans still run
            row.update(error=f"crashed: {type(exc).__name__}: {exc}", dice=0.0, found=None, volume_error=None)
        else:
            found, _ = size_of(mask, volume)
            row.update(dice=round(dice(mask, reference), 4), found=round(found, 2),
                       volume_error=round((found - ref_size) / ref_size, 4) if ref_size else None)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
    return rows


# -- questions ------------------------------------------------------------------------------------

def ask(image: Path, question: str, extra: list[str] | None = None) -> Any:
    """The trace ``mmreason infer --image IMAGE --question QUESTION [extra]`` produces."""
    from mmreason.cli import build_parser
    from mmreason.commands.infer import episode

    args = build_parser().parse_args(["infer", "--image", str(image), "--question", question, *(extra or [])])
    return episode(args)


def _first(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    return next(iter(pattern.finditer(text)), None)


def _first_quantity(dimension: str, *texts: str) -> float | None:
    """The first stated quantity of ``dimension`` (in its base unit) in the first text that has one."""
    return next((value for text in texts for value, _, _ in quantities_in(text, dimension)), None)


def _check_number(name: str, expected: float, found: float | None, tolerance: float,
                  relative: bool) -> tuple[bool, str]:
    if found is None:
        return False, f"{name}: expected {expected:g}, the answer gives none"
    error = (found - expected) / expected if relative else found - expected
    ok = abs(error) <= tolerance
    how = f"{error:+.0%}" if relative else f"{error:+.3f}"
    return ok, f"{name}: expected {expected:g}, answered {found:g} ({how}, tolerance {tolerance:g})"


def check_answer(answer: str, explanation: str, expected: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether ``answer`` meets every part of ``expected``, with one line per part checked."""
    tolerance = {**TOLERANCES, **expected.get("tolerance", {})}
    checks: list[tuple[bool, str]] = []
    if "finding" in expected:
        # the claim, not its caveats: "Yes; 3 mL (uncertain: ... none like it ...)" is a finding
        negative = bool(_NEGATIVE.search(answer.split("(", 1)[0]))
        present = expected["finding"] == "present"
        checks.append((negative != present, f"finding: expected {expected['finding']}, answered "
                                            f"{'absent' if negative else 'present'}"))
    if "side" in expected:
        said = _first(_SIDE, answer) or _first(_SIDE, explanation)
        side = said.group(1).lower() if said else None
        side = "bilateral" if side == "both" else side
        checks.append((side == expected["side"], f"side: expected {expected['side']}, answered {side}"))
    if "volume_ml" in expected:
        found = _first_quantity("volume", answer, explanation)
        found = None if found is None else found / 1000.0  # mm3 -> mL
        checks.append(_check_number("volume mL", expected["volume_ml"], found, tolerance["volume_ml"], True))
    if "diameter_mm" in expected:
        found = _first_quantity("length", answer, explanation)
        checks.append(_check_number("diameter mm", expected["diameter_mm"], found, tolerance["diameter_mm"], True))
    if "ctr" in expected:
        m = _first(_RATIO, answer) or _first(_RATIO, explanation)
        checks.append(_check_number("CTR", expected["ctr"], float(m.group(1)) if m else None, tolerance["ctr"], False))
    if "enlarged" in expected:
        # the short answer decides ("Yes; CTR 0.60"); the explanation only when the answer says neither
        enlarged = _yes_no(answer) if _yes_no(answer) is not None else _yes_no(explanation)
        checks.append((enlarged == expected["enlarged"], f"heart enlarged: expected {expected['enlarged']}, "
                                                         f"answered {'nothing' if enlarged is None else enlarged}"))
    if not checks:
        raise ManifestError(f"expected {expected} names nothing to check (finding, side, volume_ml, diameter_mm, "
                            "ctr, enlarged)")
    return all(ok for ok, _ in checks), [("ok   " if ok else "FAIL ") + line for ok, line in checks]


def _yes_no(text: str) -> bool | None:
    """True for "enlarged"/"yes", False for "not enlarged"/"no", None when the text says neither."""
    if _NOT_ENLARGED.search(text):
        return False
    return True if _ENLARGED.search(text) else None


def hedge_signals(trace: Any, answer: str, explanation: str) -> list[str]:
    """What the reader of the answer is told about doubt: a declined answer or doubting words."""
    signals = []
    if trace.status != "answered":
        signals.append(f"status {trace.status}")
    words = sorted({m.group(1).lower() for m in _HEDGE.finditer(f"{answer} {explanation}")})
    if words:
        signals.append("wording: " + ", ".join(words))
    return signals


def evidence_flags(trace: Any) -> list[str]:
    """Cited evidence (all evidence when none is cited) whose quality is below ``ok``, with why."""
    cited = set(trace.cited_evidence)
    return [f"{ev.id} {ev.quality.level}: {'; '.join(ev.quality.reasons)}" for ev in trace.evidence
            if (not cited or ev.id in cited) and ev.quality.level != "ok"]


def judge(trace: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """``verdict``, the checks made, the hedging signals and the evidence quality flags.

    ``right``: every part of ``expected`` met. ``hedged``: not right, but the episode declined or
    its answer says it is unsure (the planner turns evidence quality into such wording).
    ``wrong``: not right and stated as fact - also when evidence in the trace is flagged but the
    answer does not pass the doubt on (``evidence_flags`` lists those flags).
    """
    from mmreason.commands.infer import explanation as explanation_of

    answer = trace.answer or ""
    explanation = explanation_of(trace)
    # a declined answer is never right; its message is not searched for figures
    right, checks = check_answer(answer, explanation, expected) if trace.status == "answered" else (False, [])
    signals = hedge_signals(trace, answer, explanation)
    verdict = "right" if right else ("hedged" if signals else "wrong")
    row = {"verdict": verdict, "checks": checks, "hedge_signals": signals, "evidence_flags": evidence_flags(trace),
           "answer": trace.answer, "explanation": explanation, "status": trace.status}
    if "ctr" in expected and trace.status == "answered":
        m = _first(_RATIO, answer) or _first(_RATIO, explanation)
        row["ctr_error"] = None if m is None else round(float(m.group(1)) - expected["ctr"], 3)
    return row


# -- the run ---------------------------------------------------------------------------------------

def run_entry(entry: dict[str, Any], data: Path, out: Path, segmenter: Any) -> dict[str, Any]:
    from mmreason.report import write_report

    image = data / entry["image"]["file"]
    volume = load(image)
    labels = [load_label(volume, data / ref["file"], ref) for ref in entry.get("labels", [])]
    result: dict[str, Any] = {"id": entry["id"], "kind": entry["kind"], "group": group_of(entry),
                              "modality": volume.modality,
                              "facts": {k: f.describe() for k, f in volume.facts.items()},
                              "segmentation": segment_structures(entry, volume, labels, segmenter), "questions": []}
    for n, item in enumerate(entry.get("questions", []), start=1):
        t0 = time.perf_counter()
        trace = ask(image, item["question"], item.get("infer_args"))
        row = {"id": entry["id"], "kind": entry["kind"], "question": item["question"],
               "expected": item["expected"], **judge(trace, item["expected"]),
               "seconds": round(time.perf_counter() - t0, 2)}
        folder = out / "traces" / f"{entry['id']}-q{n}"
        trace.save(folder / "trace.json")
        row["report"] = str(write_report(trace, folder / "report.html"))
        result["questions"].append(row)
    return result


def group_of(entry: dict[str, Any]) -> str:
    return str(entry.get("group", DEFAULT_GROUP))


def run(manifest: dict[str, Any], data: Path, out: Path, segmenter_name: str = "classical",
        say: Any = print, group: str | None = None, kind: str | None = None) -> dict[str, Any]:
    """Run every runnable entry of ``manifest`` (only ``group``'s / ``kind``'s when given); the
    results (also written to ``out``)."""
    from grounding.segmenters import get_segmenter

    segmenter = get_segmenter(segmenter_name)
    results: dict[str, Any] = {"segmenter": segmenter_name, "data": str(data), "entries": [], "skipped": []}
    for entry in manifest.get("scans", []):
        if (group and group_of(entry) != group) or (kind and entry.get("kind") != kind):
            continue
        reason = missing_or_changed(entry, data)
        if reason is not None:
            say(f"SKIP {entry['id']}: {reason}")
            results["skipped"].append({"id": entry["id"], "group": group_of(entry), "reason": reason})
            continue
        say(f"RUN  {entry['id']} ({entry['kind']})")
        results["entries"].append(run_entry(entry, data, out, segmenter))
    results["totals"] = totals(results)
    groups = sorted({e["group"] for e in results["entries"]} | {s["group"] for s in results["skipped"]})
    if len(groups) > 1:
        results["totals_by_group"] = {
            g: totals({"entries": [e for e in results["entries"] if e["group"] == g],
                       "skipped": [s for s in results["skipped"] if s["group"] == g]}) for g in groups}
    return results


def totals(results: dict[str, Any]) -> dict[str, Any]:
    seg = [r for e in results["entries"] for r in e["segmentation"]]
    questions = [q for e in results["entries"] for q in e["questions"]]
    ctr_errors = [abs(q["ctr_error"]) for q in questions if q.get("ctr_error") is not None]
    by_target: dict[str, list[dict]] = {}
    for row in seg:
        by_target.setdefault(f"{row['kind']}:{row['target']}", []).append(row)
    return {
        "scans_run": len(results["entries"]), "scans_skipped": len(results["skipped"]),
        "segmentation": {key: {"n": len(rows), "dice_mean": round(float(np.mean([r["dice"] for r in rows])), 3),
                               "dice_min": round(float(min(r["dice"] for r in rows)), 3),
                               "abs_volume_error_median": _median_abs([r["volume_error"] for r in rows]),
                               "failed": sum("error" in r for r in rows)}
                         for key, rows in sorted(by_target.items())},
        "questions": {"n": len(questions), **{v: sum(q["verdict"] == v for q in questions) for v in VERDICTS}},
        "wrong_with_flagged_evidence": sum(q["verdict"] == "wrong" and bool(q["evidence_flags"]) for q in questions),
        "questions_by_kind": {kind: dict(Counter(q["verdict"] for q in questions if q["kind"] == kind))
                              for kind in sorted({q["kind"] for q in questions})},
        "ctr": {"n": sum("ctr" in q["expected"] for q in questions), "answered": len(ctr_errors),
                "within_tolerance": sum(e <= TOLERANCES["ctr"] + 1e-9 for e in ctr_errors),
                "abs_error_median": round(float(np.median(ctr_errors)), 3) if ctr_errors else None,
                "abs_error_max": round(float(max(ctr_errors)), 3) if ctr_errors else None},
    }


def _median_abs(values: list[float | None]) -> float | None:
    known = [abs(v) for v in values if v is not None]
    return round(float(np.median(known)), 4) if known else None


# -- output ---------------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Real scans: segmenter `{results['segmenter']}`, questions through `mmreason infer` (rules)", ""]
    lines += ["| scan | kind | target | reference | found | volume error | Dice | s |",
              "|---|---|---|---|---|---|---|---|"]
    for e in results["entries"]:
        for r in e["segmentation"]:
            found = "error: " + r["error"][:60] if "error" in r else f"{r['found']:g} {r['unit']}"
            err = "" if r.get("volume_error") is None else f"{r['volume_error']:+.0%}"
            lines.append(f"| {r['id']} | {r['kind']} | {r['target']} | {r['reference']:g} {r['unit']} | {found} | "
                         f"{err} | {r['dice']:.3f} | {r['seconds']:.1f} |")
    lines += ["", "| scan | question | answer | verdict | why |", "|---|---|---|---|---|"]
    for e in results["entries"]:
        for q in e["questions"]:
            flags = [f"evidence flagged but not passed on ({len(q['evidence_flags'])}): {q['evidence_flags'][0]}"] \
                if q["verdict"] == "wrong" and q["evidence_flags"] else []
            why = "; ".join([c for c in q["checks"] if c.startswith("FAIL")] + q["hedge_signals"] + flags) \
                or "all checks ok"
            lines.append(f"| {q['id']} | {q['question']} | {q['answer']} | **{q['verdict']}** | {why} |")
    lines += ["", *_total_lines("All scans", results["totals"])]
    for group, t in results.get("totals_by_group", {}).items():
        lines += ["", *_total_lines(f"Group `{group}`", t)]
    for s in results["skipped"]:
        lines.append(f"- skipped {s['id']}: {s['reason']}")
    return "\n".join(lines) + "\n"


def _total_lines(title: str, t: dict[str, Any]) -> list[str]:
    lines = [f"{title}: scans run {t['scans_run']}, skipped {t['scans_skipped']}. Questions {t['questions']['n']}: "
             + ", ".join(f"{v} {t['questions'][v]}" for v in VERDICTS)
             + f" (wrong although evidence in the trace was flagged: {t['wrong_with_flagged_evidence']})."]
    for key, s in t["segmentation"].items():
        lines.append(f"- {key}: n={s['n']}, Dice mean {s['dice_mean']:.3f} (min {s['dice_min']:.3f}), median |volume "
                     f"error| {s['abs_volume_error_median'] if s['abs_volume_error_median'] is not None else 'n/a'}, "
                     f"failed {s['failed']}")
    c = t["ctr"]
    if c["n"]:
        lines.append(f"- cardiothoracic ratio: {c['n']} with a reference, {c['answered']} answered with a ratio, "
                     f"{c['within_tolerance']} within {TOLERANCES['ctr']}; |error| median {c['abs_error_median']}, "
                     f"max {c['abs_error_max']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from grounding.segmenters import SEGMENTERS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_scans", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest JSON (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/real"), help="folder holding the files (default: "
                                                                            "%(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out/real_scans"),
                        help="results folder (default: %(default)s)")
    parser.add_argument("--segmenter", default="classical", choices=SEGMENTERS, help="segmenter to score")
    parser.add_argument("--group", help="run only the entries of this group (e.g. tuning, held-out)")
    parser.add_argument("--kind", help="run only the entries of this kind (e.g. xray_chest)")
    parser.add_argument("--json", action="store_true", help="print the results JSON instead of the tables")
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text())
    say = (lambda message: print(message, file=sys.stderr)) if args.json else print
    results = run(manifest, args.data, args.out, args.segmenter, say=say, group=args.group, kind=args.kind)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.out / "results.md").write_text(text)
    print(json.dumps(results, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
