"""Score the MR lesion search on generated brains through the ``segment`` tool, as a model calls it.

Each case is written to NIfTI in its layout (named for its sequence or not), loaded back with
`imaging.io.load` and ``segment`` is asked for ``lesion`` on a fresh `ToolContext` (the helpers
that call the tool, the verdicts and Dice are the CT stress benchmark's, `benchmarks.stress.evaluate`).

Definitions:

* **burden error**: found / true lesion volume - 1 (None on a lesion-free brain); **Dice** of the
  found mask against all lesions (None on a lesion-free brain).
* A truth lesion is **detected** when a found voxel lies on it; a found 26-connected component
  touching no truth lesion (nor a voxel next to one) is a **false-positive lesion**.
* **wrong** (FLAIR and T2): the burden is off by more than `WRONG_BURDEN` (and by more than
  `BURDEN_SLACK_ML`, a few voxels of a tiny load), or a lesion of at least `MISSED_MM` was missed, or
  nothing was found on a lesioned brain, or at least `BURDEN_SLACK_ML` was found on a lesion-free one.
  On T1 the search does not apply: the answer is wrong when its quality is ``ok`` (the sequence
  checks did not hold) - found lesions there are dark-lesion artefacts or grey matter.
* **verdict**: ``right``; ``flagged`` (wrong, quality doubtful or implausible); ``declined`` (the
  tool refused); ``confident`` (wrong at quality ``ok``: **confidently wrong**); ``crashed``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.stress.evaluate import VERDICTS, dice, percentile, segment_target, verdict_of
from benchmarks.stress_mr.render import GeneratedMR, MROptions, generate_case, write_case
from grounding.tool import ToolContext
from imaging.io import load

WRONG_BURDEN = 0.30
BURDEN_SLACK_ML = 0.05
MISSED_MM = 5.0
#: lesion diameter bins (mm, lower edge inclusive) and slice thickness bins (mm, upper edge inclusive)
DIAMETER_BINS = ((0.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, 1e9))
THICKNESS_BINS = ((0.0, 1.5), (1.5, 3.0), (3.0, 6.0))
QUALITY_LEVELS = ("ok", "doubtful", "implausible", "error", "crash")


def _bin(value: float, bins: tuple[tuple[float, float], ...], upper_inclusive: bool) -> str:
    for lo, hi in bins:
        if (lo < value <= hi) if upper_inclusive else (lo <= value < hi):
            return f"{lo:g}-{hi:g}" if hi < 1e8 else f">={lo:g}"
    raise ValueError(f"{value} lies in none of the bins {bins}")


def score_case(case: GeneratedMR, mask: np.ndarray | None, level: str, reasons: list[str], error: str,
               voxel_ml: float) -> dict[str, Any]:
    """Burden, Dice, lesion-wise detection, false positives and the verdict of one case."""
    found = np.zeros(case.truth.shape, dtype=bool) if mask is None else mask.astype(bool)
    truth_ml = float(case.truth.sum()) * voxel_ml
    found_ml = float(found.sum()) * voxel_ml
    lesioned = bool(case.lesions)
    error_rel = found_ml / truth_ml - 1.0 if lesioned else None
    lesions = []
    for t in case.lesions:
        detected = bool((found[t.box] & t.mask).any())
        lesions.append({**t.lesion.to_dict(), "voxels": t.voxels, "detected": detected})
    labels, n = ndimage.label(found, structure=np.ones((3, 3, 3)))
    near_truth = ndimage.binary_dilation(case.truth, iterations=1) if lesioned else case.truth
    touching = set(np.unique(labels[near_truth & found]).tolist())
    false_positives = sum(1 for k in range(1, n + 1) if k not in touching)
    why = []
    if case.sequence == "T1":
        wrong = level == "ok"
        if wrong:
            why.append(f"T1 searched as FLAIR at quality ok ({found_ml:.2f} mL found)")
    else:
        if lesioned and abs(found_ml - truth_ml) > BURDEN_SLACK_ML and abs(error_rel) > WRONG_BURDEN:
            why.append(f"burden {found_ml:.2f} mL vs {truth_ml:.2f} mL ({error_rel:+.0%})")
        missed = [f"{les['diameter_mm']:.0f} mm {les['kind']}" for les in lesions
                  if not les["detected"] and les["diameter_mm"] >= MISSED_MM]
        if missed:
            why.append(f"missed {', '.join(missed[:5])}{' ...' if len(missed) > 5 else ''}")
        if lesioned and not found.any():
            why.append("no lesion found on a lesioned brain")
        if not lesioned and found_ml >= BURDEN_SLACK_ML:
            why.append(f"{found_ml:.2f} mL found on a lesion-free brain")
        wrong = bool(why)
    if mask is None and error:
        why.append(f"{'crashed' if level == 'crash' else 'refused'}: {error}")
    r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    return {"truth_ml": r(truth_ml), "found_ml": r(found_ml), "burden_error": r(error_rel),
            "dice": r(dice(found, case.truth)) if lesioned else None, "lesions": lesions,
            "false_positives": false_positives, "level": level, "reasons": reasons,
            "verdict": verdict_of(wrong, level), "why": "; ".join(why)}


def evaluate_case(seed: int, workdir: Path, options: MROptions | None = None) -> dict[str, Any]:
    """Generate, write, load and segment one case; its row."""
    t0 = time.perf_counter()
    case = generate_case(seed, options)
    t_generate = time.perf_counter() - t0
    path = write_case(case, workdir)
    t1 = time.perf_counter()
    volume = load(path)
    t_load = time.perf_counter() - t1
    roundtrip = volume.shape == case.image.shape and bool(np.array_equal(volume.data, case.image))
    path.unlink()
    context = ToolContext(volumes={"0": volume})
    t2 = time.perf_counter()
    mask, level, reasons, error = segment_target(context, "lesion")
    t_segment = time.perf_counter() - t2
    scored = score_case(case, mask, level, reasons, error, volume.voxel_volume_mm3 / 1000.0)
    return {"case": case.describe(), "modality": volume.modality, "loader_roundtrip": roundtrip, **scored,
            "seconds": {"generate": round(t_generate, 2), "load": round(t_load, 2), "segment": round(t_segment, 2)}}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Burden error and Dice (median, tails), lesion-wise sensitivity by size x slice thickness,
    false positives per scan, evidence quality, verdicts and time."""
    flair = [row for row in rows if row["case"]["sequence"] != "T1"]
    lesioned = [row for row in flair if row["burden_error"] is not None]
    errors = [row["burden_error"] for row in lesioned]
    dices = [row["dice"] for row in lesioned]
    bins: dict[str, dict[str, int]] = {}
    for row in flair:
        tbin = _bin(row["case"]["thickness_mm"], THICKNESS_BINS, True)
        for les in row["lesions"]:
            key = f"{_bin(les['diameter_mm'], DIAMETER_BINS, False)} mm | {tbin} mm slices"
            for cell_key in (key, f"{key} | {'faint' if les['faint'] else 'bright'}"):
                cell = bins.setdefault(cell_key, {"detected": 0, "total": 0})
                cell["total"] += 1
                cell["detected"] += int(les["detected"])
    big = [les for row in flair for les in row["lesions"] if les["diameter_mm"] >= MISSED_MM]
    seconds = {k: [row["seconds"][k] for row in rows] for k in ("generate", "load", "segment")}
    t1 = [row for row in rows if row["case"]["sequence"] == "T1"]
    return {
        "cases": len(rows),
        "flair_t2_cases": len(flair),
        "lesioned_cases": len(lesioned),
        "burden_error_median": percentile(errors, 50),
        "abs_burden_error_median": percentile([abs(e) for e in errors], 50),
        "abs_burden_error_p95": percentile([abs(e) for e in errors], 95),
        "burden_within_30pct": round(float(np.mean([abs(e) <= WRONG_BURDEN for e in errors])), 3) if errors else None,
        "dice_median": percentile(dices, 50),
        "dice_p5": percentile(dices, 5),
        "lesions_total": sum(len(row["lesions"]) for row in flair),
        "sensitivity_5mm_plus": round(sum(les["detected"] for les in big) / len(big), 3) if big else None,
        "n_5mm_plus": len(big),
        "by_bin": dict(sorted(bins.items())),
        "false_positives_per_scan": round(float(np.mean([row["false_positives"] for row in flair])), 3) if flair else None,
        "false_positives_median": percentile([row["false_positives"] for row in flair], 50),
        "quality": {q: sum(row["level"] == q for row in rows) for q in QUALITY_LEVELS},
        "verdicts": {v: sum(row["verdict"] == v for row in rows) for v in VERDICTS},
        "confidently_wrong": sum(row["verdict"] == "confident" for row in rows),
        "right_but_flagged": sum(row["verdict"] == "right" and row["level"] != "ok" for row in rows),
        "t1_cases": len(t1),
        "t1_sequence_check_held": sum(row["level"] != "ok" for row in t1),
        "loader_roundtrip_failures": sum(not row["loader_roundtrip"] for row in rows),
        "modality_not_mr": sum(row["modality"] != "MR" for row in rows),
        "seconds_median": {k: percentile(v, 50) for k, v in seconds.items()},
        "seconds_total": round(sum(sum(v) for v in seconds.values()), 1),
    }


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's FLAIR goals beside the measured figures, PASS or MISS (MISS when unmeasured)."""
    out = []

    def goal(name: str, value: float | None, target: str, ok: bool) -> None:
        out.append({"goal": name, "value": value, "target": target, "status": "PASS" if ok else "MISS"})

    v = summary["abs_burden_error_median"]
    goal("|lesion burden error| median", v, "<= 0.30", v is not None and v <= WRONG_BURDEN)
    v = summary["burden_within_30pct"]
    goal("share of lesioned brains with burden within 30 %", v, "report", v is not None)
    v = summary["confidently_wrong"]
    goal("confidently wrong answers", v, "0", v == 0)
    return out


def worst_failures(rows: list[dict[str, Any]], limit: int = 15) -> list[dict[str, Any]]:
    """The wrong cases, confidently wrong first, then by Dice (lowest first)."""
    order = {"confident": 0, "crashed": 1, "flagged": 2, "declined": 3}
    out = [{"case": f"seed {row['case']['seed']} ({row['case']['sequence']}, {row['case']['thickness_mm']:g} mm, "
                    f"{row['case']['layout']})", "verdict": row["verdict"], "level": row["level"], "why": row["why"],
            "dice": row["dice"]} for row in rows if row["verdict"] != "right"]
    out.sort(key=lambda f: (order[f["verdict"]], f["dice"] if f["dice"] is not None else 0.5))
    return out[:limit]
