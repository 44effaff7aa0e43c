"""Command line: ``python -m benchmarks.stress [--split heldout] [--n 20] [--out DIR] [--seeds 3,7]``.

Prints the figures (Dice and volume error per structure, nodule sensitivity by diameter x slice
thickness, false positives per scan, false lung masses, verdicts by evidence quality, time, and the issue's goals
with PASS/MISS) and, with ``--out``, writes ``stress.json`` (per-case rows and the summary) and
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
from benchmarks.stress.evaluate import (
    FALSE_MASS_MM,
    MASS_TARGET,
    STRUCTURES,
    VERDICTS,
    WRONG_DICE,
    WRONG_VOLUME,
    evaluate_case,
    goals,
    summarize,
    worst_failures,
)
from benchmarks.stress.render import GenerateOptions


def report_markdown(split: str, seeds: list[int], summary: dict[str, Any], goal_rows: list[dict[str, Any]],
                    failures: list[dict[str, Any]]) -> str:
    """The figures as markdown tables (what the command prints)."""
    lines = [f"# Stress benchmark: {split} split, {summary['cases']} cases (seeds {seeds[0]}-{seeds[-1]})", "",
             f"Wrong = Dice < {WRONG_DICE} or |volume error| > {WRONG_VOLUME:.0%} (or found where absent); "
             "nodules: a miss or a false positive in the scan. Verdicts: right / flagged (wrong, quality "
             "doubtful or implausible) / declined (tool refused) / confident (wrong, quality ok) / crashed "
             "(the tool raised an unexpected exception).", "",
             "| structure | present | Dice median | Dice p5 | abs vol err median | abs vol err p95 | "
             "vol err median (signed) | right | flagged | declined | confident | crashed | right but flagged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in STRUCTURES:
        s = summary["structures"][name]
        v = s["verdicts"]
        lines.append(f"| {name} | {s['n_present']} | {figure(s['dice_median'])} | {figure(s['dice_p5'])} | "
                     f"{figure(s['abs_volume_error_median'])} | {figure(s['abs_volume_error_p95'])} | "
                     f"{figure(s['volume_error_median'])} | " + " | ".join(str(v[k]) for k in VERDICTS)
                     + f" | {s['right_but_flagged']} |")
    nod = summary["nodules"]
    v = nod["verdicts"]
    lines.append("| nodule (per scan) | - | - | - | - | - | - | " + " | ".join(str(v[k]) for k in VERDICTS)
                 + f" | {nod['right_but_flagged']} |")
    mass = summary["masses"]
    lines.append(f"| mass ('{MASS_TARGET}', per scan) | - | - | - | - | - | - | "
                 + " | ".join(str(mass["verdicts"][k]) for k in VERDICTS) + " | - |")
    lines += ["", f"Nodules: {nod['total']} in {summary['cases']} scans; sensitivity for >= 6 mm "
              f"{figure(nod['sensitivity_6mm_plus'], 2)} (n={nod['n_6mm_plus']}); false positives per scan "
              f"{figure(nod['false_positives_per_scan'], 2)}.", "",
              f"Masses (target '{MASS_TARGET}', as a model asks for a mass; the generator draws none, so what "
              f"matches no nodule is false): a false mass >= {FALSE_MASS_MM:g} mm on "
              f"{mass['scans_with_large_false_mass']} of {summary['cases']} scans, {mass['confident']} of them with quality ok (confidently wrong); largest "
              f"{figure(mass['largest_false_mm'], 0)} mm; the search took {figure(mass['seconds_median'], 1)} s per "
              "scan (median).", "",
              "| diameter | slices | detected / total |", "|---|---|---|"]
    for key, cell in nod["by_bin"].items():
        dbin, tbin = key.split(" | ")
        lines.append(f"| {dbin} | {tbin} | {cell['detected']} / {cell['total']} |")
    t = summary["seconds_median"]
    lines += ["", f"Time per case (median): generate {figure(t['generate'], 1)} s, load {figure(t['load'], 1)} s, "
              f"segment (all targets) {figure(t['segment'], 1)} s; total {summary['seconds_total']} s. Loader "
              f"round-trip failures: {summary['loader_roundtrip_failures']}; loaded as non-CT: "
              f"{summary['modality_not_ct']}.", "",
              "| goal (judged on held-out seeds) | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {figure(g['value'])} | {g['target']} | {g['status']} |" for g in goal_rows]
    if failures:
        lines += ["", "Worst failures:", "", "| case | structure | verdict | quality | what went wrong |",
                  "|---|---|---|---|---|"]
        lines += [f"| {f['case']} | {f['structure']} | {f['verdict']} | {f['level']} | {f['why']} |" for f in failures]
    return "\n".join(lines) + "\n"


def _progress(row: dict[str, Any]) -> str:
    bad = [r["structure"] for r in row["structures"] if r["verdict"] != "right"]
    if row["nodule_detection"]["verdict"] != "right":
        bad.append("nodule")
    if row["mass_search"]["verdict"] != "right":
        bad.append(f"mass ({row['mass_search']['why']}, {row['mass_search']['level']})")
    return (f"{row['case']['thickness_mm']:g} mm, {row['seconds']['segment']:.1f} s segment; "
            f"wrong: {', '.join(bad) or 'none'}")


def run(split: str, n: int, out: Path | None, seeds: list[int] | None = None,
        options: GenerateOptions | None = None, progress: bool = True, declare_ct: bool = False) -> dict[str, Any]:
    """Evaluate the cases and return ``{"rows", "summary", "goals", "failures", "markdown"}``."""
    seeds = seeds if seeds is not None else split_seeds(split, n)
    rows = evaluate_seeds(seeds, "stress_", lambda seed, tmp: evaluate_case(seed, tmp, options, declare_ct),
                          _progress if progress else None)
    return collect(seeds, rows, summarize, goals, worst_failures, report_markdown, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stress", description=__doc__.split("\n")[0])
    add_seed_arguments(parser)
    parser.add_argument("--max-voxels", type=int, default=GenerateOptions.max_voxels,
                        help="voxel budget per case (default %(default)s; see benchmarks.stress.render)")
    parser.add_argument("--declare-ct", action="store_true",
                        help="write modality=CT in each NIfTI header (default: the loader must recognise CT by its "
                        "values, and evidence quality notes the guess)")
    args = parser.parse_args(argv)
    result = run(args.split, args.n, args.out, seeds_from_arguments(parser, args),
                 GenerateOptions(max_voxels=args.max_voxels),
                 declare_ct=args.declare_ct)
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
