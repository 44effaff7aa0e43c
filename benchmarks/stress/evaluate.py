"""Score the segmenters on generated stress cases through the ``segment`` tool, as a model calls it.

Each case is written to NIfTI in its layout, loaded back with `imaging.io.load` (so the loaders'
orientation, spacing and modality handling is part of what is measured), and every structure is
asked of the ``segment`` tool of `grounding.tools.default_registry` on a fresh `ToolContext`.

Definitions:

* Dice and volume error (predicted / true volume - 1) against the truth on the scan's grid, for
  structures whose truth holds at least `MIN_TRUTH_ML` (an organ the field of view cuts is scored on
  the part inside it). A present structure the tool refused or crashed on counts as Dice 0 and
  volume error -100 %, so a goal cannot pass by refusing.
* **wrong**: Dice below `WRONG_DICE`, or a volume error beyond `WRONG_VOLUME` either way, or
  something found where the structure is absent; for nodules, a scan with a missed nodule or a
  false positive.
* A result's **verdict**: ``right``; ``flagged`` (wrong, and the evidence's quality level is
  doubtful or implausible); ``declined`` (the tool refused, with its reason, where the structure
  is present); ``confident`` (wrong with quality level ``ok``: a confidently wrong answer);
  ``crashed`` (the tool raised something other than a `ToolError`: a bug, which ends an episode).
* A truth nodule is **detected** when a predicted component overlaps its truth mask or has its
  centroid within its radius + `NODULE_MATCH_MM` of its centre; a predicted component that
  matches no truth nodule is a **false positive**.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.stress.render import GeneratedCase, GenerateOptions, generate_case, write_case
from grounding.segmenters.agreement import dice
from grounding.segmenters.masses import ball_diameter_mm
from grounding.segmenters.morphology import component_sizes
from grounding.tool import ToolContext, ToolError
from grounding.tools import default_registry
from imaging.io import load

#: structures scored for Dice and volume, in report order
STRUCTURES = ("body", "lungs", "lung_left", "lung_right", "liver", "spleen", "kidney_left", "kidney_right")
WRONG_DICE = 0.8
WRONG_VOLUME = 0.2
#: structures with less truth than this (mL) count as absent
MIN_TRUTH_ML = 1.0
NODULE_MATCH_MM = 3.0
#: the target a model asks for a lung mass (``mass`` and ``tumour`` are its aliases)
MASS_TARGET = "lesion"
#: a false mass at least this wide (mm, the diameter of a ball of its volume) makes the mass search wrong
FALSE_MASS_MM = 10.0
#: nodule diameter bins (mm, lower edges inclusive) and slice thickness bins (mm, upper edges inclusive)
DIAMETER_BINS = ((4.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, 30.01))
THICKNESS_BINS = ((0.0, 1.25), (1.25, 2.5), (2.5, 5.0))
VERDICTS = ("right", "flagged", "declined", "confident", "crashed")


@dataclass
class StructureResult:
    """One structure of one case."""

    structure: str
    truth_ml: float
    predicted_ml: float | None
    dice: float | None
    volume_error: float | None
    level: str  # ok | doubtful | implausible | error (refused) | crash
    verdict: str
    why: str = ""
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {"structure": self.structure, "truth_ml": r(self.truth_ml), "predicted_ml": r(self.predicted_ml),
                "dice": r(self.dice), "volume_error": r(self.volume_error), "level": self.level,
                "verdict": self.verdict, "why": self.why, "reasons": self.reasons, "seconds": r(self.seconds)}


def verdict_of(wrong: bool, level: str) -> str:
    if level == "crash":
        return "crashed"
    if not wrong:
        return "right"
    if level == "error":
        return "declined"
    return "confident" if level == "ok" else "flagged"


def segment_target(context: ToolContext, target: str) -> tuple[np.ndarray | None, str, list[str], str]:
    """(mask or None, quality level, ``error`` (refused) or ``crash``, reasons, error text)."""
    try:
        ev = default_registry().run(context, "segment", {"target": target})
    except ToolError as exc:
        return None, "error", [], str(exc)
    except Exception as exc:  # a segmenter bug: record it and go on with the other structures
        return None, "crash", [], f"{type(exc).__name__}: {exc}"
    return ev.mask, ev.quality.level, list(ev.quality.reasons), ""


def score_structure(structure: str, truth: np.ndarray, mask: np.ndarray | None, level: str, reasons: list[str],
                    error: str, voxel_ml: float, seconds: float) -> StructureResult:
    truth_ml = float(truth.sum()) * voxel_ml
    present = truth_ml >= MIN_TRUTH_ML
    if mask is None:
        wrong = present
        why = f"crashed: {error}" if level == "crash" else f"refused: {error}" if present else ""
        # a present structure nobody segmented counts as Dice 0 and -100 % in the figures and goals
        dice_, err = (0.0, -1.0) if present else (None, None)
        return StructureResult(structure, truth_ml, None, dice_, err, level, verdict_of(wrong, level), why, reasons,
                               seconds)
    predicted_ml = float(mask.sum()) * voxel_ml
    if not present:
        wrong = predicted_ml >= MIN_TRUTH_ML
        why = f"found {predicted_ml:.0f} mL where the structure is absent" if wrong else ""
        return StructureResult(structure, truth_ml, predicted_ml, None, None, level, verdict_of(wrong, level), why,
                               reasons, seconds)
    d = dice(mask, truth)
    err = predicted_ml / truth_ml - 1.0
    why = []
    if d < WRONG_DICE:
        why.append(f"Dice {d:.2f}")
    if abs(err) > WRONG_VOLUME:
        why.append(f"volume {predicted_ml:.0f} mL vs {truth_ml:.0f} mL ({err:+.0%})")
    return StructureResult(structure, truth_ml, predicted_ml, d, err, level, verdict_of(bool(why), level),
                           "; ".join(why), reasons, seconds)


def _matches(case: GeneratedCase, mask: np.ndarray | None) -> tuple[np.ndarray, list[set[int]]]:
    """The 26-connected components of ``mask`` (a label map) and, for each, the truth nodules (indices
    into ``case.nodules``) it overlaps or whose centre its centroid lies within the nodule's radius +
    `NODULE_MATCH_MM` of."""
    if mask is None or not mask.any():
        return np.zeros(case.hu.shape, dtype=np.int32), []
    xs, ys, zs = case.geometry.axes()
    truth = case.truth["nodules"]
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    centroids = ndimage.center_of_mass(mask, labels, range(1, n + 1))
    out = []
    for comp, (cz, cy, cx) in enumerate(centroids, start=1):
        world = np.array([np.interp(cx, np.arange(len(xs)), xs), np.interp(cy, np.arange(len(ys)), ys),
                          np.interp(cz, np.arange(len(zs)), zs)])
        hits = set(int(v) - 1 for v in np.unique(truth[labels == comp]) if v > 0)
        for k, nod in enumerate(case.nodules):
            if np.linalg.norm(world - np.asarray(nod.centre)) <= nod.diameter_mm / 2 + NODULE_MATCH_MM:
                hits.add(k)
        out.append(hits)
    return labels, out


def score_nodules(case: GeneratedCase, mask: np.ndarray | None, level: str, reasons: list[str], error: str,
                  seconds: float) -> dict[str, Any]:
    """Detections per truth nodule, false positives, and the scan's verdict."""
    found = [False] * len(case.nodules)
    _, matches = _matches(case, mask)
    for hits in matches:
        for k in hits:
            found[k] = True
    false_positives = sum(not hits for hits in matches)
    wrong = not all(found) or false_positives > 0
    why = []
    missed = [f"{n.diameter_mm:.0f} mm {n.kind}" for n, f in zip(case.nodules, found) if not f]
    if missed:
        why.append(f"missed {', '.join(missed)} on {case.geometry.thickness_mm:g} mm slices")
    if false_positives:
        why.append(f"{false_positives} false positive(s)")
    if mask is None and error:
        why.append(f"{'crashed' if level == 'crash' else 'refused'}: {error}")
    return {"nodules": [{**n.to_dict(), "detected": f} for n, f in zip(case.nodules, found)],
            "false_positives": false_positives, "level": level, "reasons": reasons,
            "verdict": verdict_of(wrong, level),
            "why": "; ".join(why), "seconds": round(seconds, 3)}


def score_masses(case: GeneratedCase, mask: np.ndarray | None, level: str, reasons: list[str], error: str,
                 voxel_ml: float, seconds: float) -> dict[str, Any]:
    """The false masses of the `MASS_TARGET` search (components matching no truth nodule; the generator
    draws no masses): how many, how many are large (at least `FALSE_MASS_MM` across, as a ball of their
    volume), the largest one's diameter and volume, and the scan's verdict (wrong when one is large; a
    refusal is no error: there is no mass)."""
    labels, matches = _matches(case, mask)
    sizes = component_sizes(labels, len(matches))[1:]
    false_voxels = sorted((int(sizes[i]) for i, hits in enumerate(matches) if not hits), reverse=True)
    false_ml = [v * voxel_ml for v in false_voxels]
    false_mm = [float(ball_diameter_mm(v, voxel_ml * 1000.0)) for v in false_voxels]
    large = [d for d in false_mm if d >= FALSE_MASS_MM]
    why = f"{len(large)} false mass(es) of {', '.join(f'{d:.0f}' for d in large)} mm" if large else ""
    if level == "crash":
        why = f"crashed: {error}"
    return {"false_masses": len(false_ml), "large_false_masses": len(large),
            "largest_false_mm": round(false_mm[0], 1) if false_mm else None,
            "largest_false_ml": round(false_ml[0], 2) if false_ml else None,
            "level": level, "reasons": reasons, "verdict": verdict_of(bool(large), level), "why": why,
            "seconds": round(seconds, 3)}


def evaluate_case(seed: int, workdir: Path, options: GenerateOptions | None = None,
                  declare_ct: bool = False) -> dict[str, Any]:
    """Generate, write (``declare_ct``: see `write_case`), load and segment one case; its row."""
    t0 = time.perf_counter()
    case = generate_case(seed, options)
    t_generate = time.perf_counter() - t0
    path = write_case(case, workdir / f"stress_{seed}.nii", declare_ct)
    t1 = time.perf_counter()
    volume = load(path)
    t_load = time.perf_counter() - t1
    roundtrip = volume.shape == case.hu.shape and bool(np.array_equal(volume.data, case.hu))
    path.unlink()
    context = ToolContext(volumes={"0": volume})
    voxel_ml = volume.voxel_volume_mm3 / 1000.0
    results = []
    t2 = time.perf_counter()
    for structure in STRUCTURES:
        truth = (case.truth["lung_left"] | case.truth["lung_right"]) if structure == "lungs" else case.truth[structure]
        ts = time.perf_counter()
        mask, level, reasons, error = segment_target(context, structure)
        results.append(score_structure(structure, truth, mask, level, reasons, error, voxel_ml,
                                       time.perf_counter() - ts))
    ts = time.perf_counter()
    mask, level, reasons, error = segment_target(context, "nodule")
    nodules = score_nodules(case, mask, level, reasons, error, time.perf_counter() - ts)
    ts = time.perf_counter()
    mask, level, reasons, error = segment_target(context, MASS_TARGET)
    masses = score_masses(case, mask, level, reasons, error, voxel_ml, time.perf_counter() - ts)
    t_segment = time.perf_counter() - t2
    return {"case": case.describe(), "modality": volume.modality, "loader_roundtrip": roundtrip,
            "structures": [r.to_dict() for r in results], "nodule_detection": nodules, "mass_search": masses,
            "seconds": {"generate": round(t_generate, 2), "load": round(t_load, 2), "segment": round(t_segment, 2)}}


# -- summary -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-structure Dice / volume figures and verdicts, nodule sensitivity by bin, FP per scan, time."""
    structures: dict[str, Any] = {}
    for name in STRUCTURES:
        res = [r for row in rows for r in row["structures"] if r["structure"] == name]
        scored = [r for r in res if r["dice"] is not None]
        dices = [r["dice"] for r in scored]
        errors = [r["volume_error"] for r in scored]
        structures[name] = {
            "n_present": sum(r["truth_ml"] >= MIN_TRUTH_ML for r in res),
            "n_scored": len(scored),
            "dice_median": percentile(dices, 50), "dice_p5": percentile(dices, 5),
            "abs_volume_error_median": percentile([abs(e) for e in errors], 50),
            "abs_volume_error_p95": percentile([abs(e) for e in errors], 95),
            "volume_error_median": percentile(errors, 50),
            "verdicts": {v: sum(r["verdict"] == v for r in res) for v in VERDICTS},
            # false alarms: right results whose quality is not ok
            "right_but_flagged": sum(r["verdict"] == "right" and r["level"] != "ok" for r in res),
        }
    thickness = [row["case"]["thickness_mm"] for row in rows]
    bins: dict[str, dict[str, int]] = {}
    for row, t in zip(rows, thickness):
        for nod in row["nodule_detection"]["nodules"]:
            d = nod["diameter_mm"]
            dbin = next(f"{lo:g}-{min(hi, 30):g}" for lo, hi in DIAMETER_BINS if lo <= d < hi)
            tbin = next(f"{lo:g}-{hi:g}" for lo, hi in THICKNESS_BINS if lo < t <= hi)
            cell = bins.setdefault(f"{dbin} mm | {tbin} mm slices", {"detected": 0, "total": 0})
            cell["total"] += 1
            cell["detected"] += int(nod["detected"])
    big = [n for row in rows for n in row["nodule_detection"]["nodules"] if n["diameter_mm"] >= 6.0]
    fps = [row["nodule_detection"]["false_positives"] for row in rows]
    nodule_verdicts = {v: sum(row["nodule_detection"]["verdict"] == v for row in rows) for v in VERDICTS}
    nodule_false_alarms = sum(row["nodule_detection"]["verdict"] == "right" and row["nodule_detection"]["level"] != "ok"
                              for row in rows)
    seconds = {k: [row["seconds"][k] for row in rows] for k in ("generate", "load", "segment")}
    masses = [row["mass_search"] for row in rows]
    false_large = [m for m in masses if m["large_false_masses"]]
    return {
        "cases": len(rows),
        "structures": structures,
        "nodules": {
            "total": sum(len(row["nodule_detection"]["nodules"]) for row in rows),
            "by_bin": dict(sorted(bins.items())),
            "sensitivity_6mm_plus": round(sum(n["detected"] for n in big) / len(big), 4) if big else None,
            "n_6mm_plus": len(big),
            "false_positives_per_scan": round(float(np.mean(fps)), 3) if fps else None,
            "verdicts": nodule_verdicts,
            "right_but_flagged": nodule_false_alarms,
        },
        "masses": {
            "scans_with_large_false_mass": len(false_large),
            "confident": sum(m["level"] == "ok" for m in false_large),
            "largest_false_mm": max((m["largest_false_mm"] for m in false_large), default=None),
            "verdicts": {v: sum(m["verdict"] == v for m in masses) for v in VERDICTS},
            "seconds_median": percentile([m["seconds"] for m in masses], 50),
        },
        "loader_roundtrip_failures": sum(not row["loader_roundtrip"] for row in rows),
        "modality_not_ct": sum(row["modality"] != "CT" for row in rows),
        "seconds_median": {k: percentile(v, 50) for k, v in seconds.items()},
        "seconds_total": round(sum(sum(v) for v in seconds.values()), 1),
    }


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals beside the measured figures, each PASS or MISS (MISS when unmeasured)."""
    s, nod = summary["structures"], summary["nodules"]
    out = []

    def goal(name: str, value: float | None, target: str, ok: bool | None) -> None:
        out.append({"goal": name, "value": value, "target": target, "status": "PASS" if ok else "MISS"})

    for lung in ("lungs", "lung_left", "lung_right"):
        v = s[lung]["dice_p5"]
        goal(f"{lung} Dice p5", v, ">= 0.90", v is not None and v >= 0.90)
    sens, fp = nod["sensitivity_6mm_plus"], nod["false_positives_per_scan"]
    goal("nodule sensitivity (>= 6 mm, <= 5 mm slices)", sens, ">= 0.90", sens is not None and sens >= 0.90)
    goal("nodule false positives per scan", fp, "<= 1", fp is not None and fp <= 1.0)
    confident = summary["masses"]["confident"]
    goal(f"false masses >= {FALSE_MASS_MM:g} mm stated with quality ok (confidently wrong), scans", confident, "0",
         confident == 0)
    for organ in ("liver", "spleen"):
        v = s[organ]["abs_volume_error_median"]
        goal(f"{organ} |volume error| median", v, "<= 0.10", v is not None and v <= 0.10)
        v = s[organ]["dice_p5"]
        goal(f"{organ} Dice p5", v, ">= 0.80", v is not None and v >= 0.80)
    return out


def worst_failures(rows: list[dict[str, Any]], limit: int = 15) -> list[dict[str, Any]]:
    """The wrong results, confidently wrong first, then by Dice (lowest first)."""
    failures = []
    for row in rows:
        c = row["case"]
        where = f"seed {c['seed']} ({c['thickness_mm']:g} mm, {c['layout']}, {c['phase']}, arms {c['arms']})"
        for r in row["structures"]:
            if r["verdict"] != "right":
                failures.append({"case": where, "structure": r["structure"], "verdict": r["verdict"], "why": r["why"],
                                 "level": r["level"], "dice": r["dice"]})
        nd = row["nodule_detection"]
        if nd["verdict"] != "right":
            failures.append({"case": where, "structure": "nodule", "verdict": nd["verdict"], "why": nd["why"],
                             "level": nd["level"], "dice": None})
        ms = row["mass_search"]
        if ms["verdict"] != "right":
            failures.append({"case": where, "structure": f"mass ('{MASS_TARGET}')", "verdict": ms["verdict"],
                             "why": ms["why"], "level": ms["level"], "dice": None})
    order = {"confident": 0, "crashed": 1, "flagged": 2, "declined": 3}
    failures.sort(key=lambda f: (order[f["verdict"]], f["dice"] if f["dice"] is not None else 0.5))
    return failures[:limit]
