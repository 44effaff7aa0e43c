"""Command line: ``python -m benchmarks.stress_mr [--split heldout] [--n 20] [--out DIR] [--seeds 3,7]
[--sequences FLAIR,T2,T1]``.

Prints per case (to stderr) and in summary: lesion burden error (median, tails), lesion Dice
(median, 5th percentile), lesion-wise sensitivity by diameter x slice thickness (and faint or
bright), false-positive lesions per scan, evidence quality, verdicts with the confidently wrong
count, and time; with ``--out`` writes ``stress.json`` (per-case rows and the summary) and
``stress.md`` (the printed tables).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.stress import (
    add_seed_arguments,
    collect,
    evaluate_seeds,
    figure,
    seeds_from_arguments,
    split_seeds,
)
from benchmarks.stress.evaluate import VERDICTS
from benchmarks.stress_mr.evaluate import (
    BURDEN_SLACK_ML,
    MISSED_MM,
    QUALITY_LEVELS,
    WRONG_BURDEN,
    evaluate_case,
    goals,
    summarize,
    worst_failures,
)
from benchmarks.stress_mr.render import SEQUENCES, MROptions


def report_markdown(split: str, seeds: list[int], summary: dict[str, Any], goal_rows: list[dict[str, Any]],
                    failures: list[dict[str, Any]]) -> str:
    """The figures as markdown tables (what the command prints)."""
    s = summary
    lines = [f"# Brain-MR stress benchmark: {split} split, {s['cases']} cases (seeds {seeds[0]}-{seeds[-1]})", "",
             f"Wrong = lesion burden off by > {WRONG_BURDEN:.0%} (and > {BURDEN_SLACK_ML} mL), a missed lesion of "
             f">= {MISSED_MM:g} mm, no lesion found on a lesioned brain, or >= {BURDEN_SLACK_ML} mL found on a "
             "lesion-free one; on T1, any answer at quality ok. Confidently wrong = wrong at quality ok.", "",
             "| figure | value |", "|---|---|",
             f"| lesioned FLAIR/T2 brains | {s['lesioned_cases']} of {s['flair_t2_cases']} |",
             f"| burden error median (signed) | {figure(s['burden_error_median'])} |",
             f"| abs burden error median / p95 | {figure(s['abs_burden_error_median'])} / {figure(s['abs_burden_error_p95'])} |",
             f"| burden within 30 % | {figure(s['burden_within_30pct'])} |",
             f"| lesion Dice median / p5 | {figure(s['dice_median'])} / {figure(s['dice_p5'])} |",
             f"| lesion-wise sensitivity >= {MISSED_MM:g} mm | {figure(s['sensitivity_5mm_plus'])} (n={s['n_5mm_plus']}) |",
             f"| false-positive lesions per scan (mean / median) | {figure(s['false_positives_per_scan'], 2)} / "
             f"{figure(s['false_positives_median'], 1)} |",
             "| evidence quality | " + ", ".join(f"{q} {s['quality'][q]}" for q in QUALITY_LEVELS) + " |",
             "| verdicts | " + ", ".join(f"{v} {s['verdicts'][v]}" for v in VERDICTS) + " |",
             f"| confidently wrong | {s['confidently_wrong']} |",
             f"| right but flagged | {s['right_but_flagged']} |"]
    if s["t1_cases"]:
        lines.append(f"| T1 cases whose evidence was flagged (sequence check held) | {s['t1_sequence_check_held']} of "
                     f"{s['t1_cases']} |")
    lines += ["", "| diameter | slices | kind | detected / total |", "|---|---|---|---|"]
    for key, cell in s["by_bin"].items():
        parts = key.split(" | ")
        lines.append(f"| {parts[0]} | {parts[1]} | {parts[2] if len(parts) > 2 else 'all'} | "
                     f"{cell['detected']} / {cell['total']} |")
    t = s["seconds_median"]
    lines += ["", f"Time per case (median): generate {figure(t['generate'], 1)} s, load {figure(t['load'], 1)} s, "
              f"segment {figure(t['segment'], 1)} s; total {s['seconds_total']} s. Loader round-trip failures: "
              f"{s['loader_roundtrip_failures']}; loaded as non-MR: {s['modality_not_mr']}.", "",
              "| goal (judged on held-out seeds) | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {figure(g['value'])} | {g['target']} | {g['status']} |" for g in goal_rows]
    if failures:
        lines += ["", "Worst failures:", "", "| case | verdict | quality | what went wrong |", "|---|---|---|---|"]
        lines += [f"| {f['case']} | {f['verdict']} | {f['level']} | {f['why']} |" for f in failures]
    return "\n".join(lines) + "\n"


def _progress(row: dict[str, Any]) -> str:
    c = row["case"]
    found = sum(les["detected"] for les in row["lesions"])
    return (f"{c['sequence']}, {c['thickness_mm']:g} mm, {row['truth_ml']:.2f} mL truth, {row['found_ml']:.2f} mL "
            f"found, Dice {figure(row['dice'], 2)}, lesions {found}/{len(row['lesions'])}, FP {row['false_positives']}, "
            f"{row['level']}, {row['verdict']}, {row['seconds']['segment']:.1f} s{'; ' + row['why'] if row['why'] else ''}")


def run(split: str, n: int, out: Path | None, seeds: list[int] | None = None, options: MROptions | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Evaluate the cases and return ``{"rows", "summary", "goals", "failures", "markdown"}``."""
    seeds = seeds if seeds is not None else split_seeds(split, n)
    rows = evaluate_seeds(seeds, "stress_mr_", lambda seed, tmp: evaluate_case(seed, tmp, options),
                          _progress if progress else None)
    return collect(seeds, rows, summarize, goals, worst_failures, report_markdown, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stress_mr", description=__doc__.split("\n")[0])
    add_seed_arguments(parser)
    parser.add_argument("--sequences", default="FLAIR",
                        help=f"comma-separated sequences drawn per case from {', '.join(SEQUENCES)} (default FLAIR)")
    parser.add_argument("--max-voxels", type=int, default=MROptions.max_voxels,
                        help="voxel budget per case (default %(default)s; see benchmarks.stress_mr.render)")
    args = parser.parse_args(argv)
    sequences = tuple(s.strip().upper() for s in args.sequences.split(",") if s.strip())
    if not sequences or any(s not in SEQUENCES for s in sequences):
        parser.error(f"--sequences takes names from {', '.join(SEQUENCES)}")
    result = run(args.split, args.n, args.out, seeds_from_arguments(parser, args),
                 MROptions(max_voxels=args.max_voxels, sequences=sequences))
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
