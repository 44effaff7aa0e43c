"""``python -m benchmarks.stress``: the classical segmenters on random anatomy nobody tuned them on.

An independent generator (`benchmarks.stress.anatomy`, `benchmarks.stress.render`; nothing is
shared with `imaging.phantoms`, on which the segmenters were developed) draws adult chest and
upper-abdomen CTs from realistic ranges, writes each as NIfTI in a random layout (LPS, RAS, LAS or
oblique), loads it back through `imaging.io.load` and asks the ``segment`` tool for every
structure (`benchmarks.stress.evaluate`).

Seeds: the **tuning** split is seeds 0-999 (use it while changing a segmenter: develop on the
first hundred, then check a change on fresh tuning seeds such as 100-299 before trusting it); the
**held-out** split is seeds 1000 and up (report it; never tune on it). A case is a pure function of its seed
and `render.GenerateOptions`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

TUNING_SEEDS = range(0, 1000)
HELDOUT_START = 1000
SPLITS = ("tuning", "heldout")


def split_seeds(split: str, n: int) -> list[int]:
    """The first ``n`` seeds of ``split`` (``tuning``: 0-999; ``heldout``: 1000 and up)."""
    if split == "tuning":
        if n > len(TUNING_SEEDS):
            raise ValueError(f"the tuning split has {len(TUNING_SEEDS)} seeds; ask for at most that many")
        return list(TUNING_SEEDS[:n])
    if split == "heldout":
        return list(range(HELDOUT_START, HELDOUT_START + n))
    raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")


def split_of(seeds: list[int]) -> str:
    """The split ``seeds`` belong to, as a report names it: a run given ``--seeds`` is labelled by
    the seeds it ran, not by ``--split``'s default."""
    held = [s >= HELDOUT_START for s in seeds]
    return "heldout" if all(held) else "tuning" if not any(held) else "mixed tuning and heldout"


def figure(v: Any, digits: int = 3) -> str:
    """A figure of a report table ("-" when there is none)."""
    return "-" if v is None else f"{v:.{digits}f}"


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """The split, case count, explicit seeds and output folder every stress benchmark takes."""
    parser.add_argument("--split", choices=SPLITS, default="heldout",
                        help="tuning (seeds 0-999, for development) or heldout (seeds 1000+, for reporting)")
    parser.add_argument("--n", type=int, default=20, help="number of cases (default 20)")
    parser.add_argument("--seeds", help="comma-separated seeds instead of a split's first n")
    parser.add_argument("--out", type=Path, help="directory for stress.json and stress.md")


def seeds_from_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The seeds `add_seed_arguments` asked for: ``--seeds``, else the split's first ``--n`` (a bad
    value is a usage error)."""
    try:
        return [int(s) for s in args.seeds.split(",")] if args.seeds else split_seeds(args.split, args.n)
    except ValueError as exc:
        parser.error(str(exc))


def evaluate_seeds(seeds: list[int], prefix: str, evaluate: Callable[[int, Path], dict[str, Any]],
                   describe: Callable[[dict[str, Any]], str] | None) -> list[dict[str, Any]]:
    """Each seed's row, ``evaluate(seed, folder)`` with one temporary folder for all cases; with
    ``describe``, a progress line per case on stderr."""
    rows = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for i, seed in enumerate(seeds, 1):
            rows.append(evaluate(seed, Path(tmp)))
            if describe is not None:
                print(f"[{i}/{len(seeds)}] seed {seed}: {describe(rows[-1])}", file=sys.stderr, flush=True)
    return rows


def collect(seeds: list[int], rows: list[dict[str, Any]], summarize: Callable, goals: Callable,
            worst_failures: Callable, report_markdown: Callable, out: Path | None) -> dict[str, Any]:
    """A stress run's result from its per-case ``rows`` (summary, goals, worst failures and the
    markdown report, by the benchmark's own functions), written to ``out`` as stress.json and
    stress.md when given."""
    summary = summarize(rows)
    goal_rows = goals(summary)
    failures = worst_failures(rows)
    split = split_of(seeds)
    markdown = report_markdown(split, seeds, summary, goal_rows, failures)
    result = {"split": split, "seeds": seeds, "rows": rows, "summary": summary, "goals": goal_rows,
              "failures": failures, "markdown": markdown}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "stress.json").write_text(json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=1))
        (out / "stress.md").write_text(markdown)
    return result
