"""First-error detection of the step verifiers on perturbed traces (ProcessBench style).

The synthetic benchmark's expert traces (the ``rules`` backend) are correct step by step. This
script makes erroneous copies with one known wrong step and asks the rule verifiers to find it:

* ``number``: the first measurement stated in the final explanation (``12.9 mm``, ``11.87 mL``,
  ``0.53``) is scaled by `NUMBER_FACTOR`, so it no longer matches the evidence it cites;
* ``side``: the side stated in the explanation is swapped (``right`` <-> ``left``);
* ``direction``: a stated change is reversed (``grew`` <-> ``shrank``).

The reference first error of a copy is the index of the altered step (`split_steps`); of the
untouched trace it is -1. Each trace is verified with ``verify(case, trace)`` and scored with
`mmreason.verifiers.metrics.first_error_scores`: accuracy on erroneous traces (the first step
flagged incorrect is the altered one), on error-free traces (nothing flagged), and their F1;
plus, per perturbation, the share whose altered step is flagged at all.

    python -m benchmarks.step_errors --run runs/rules        # traces of `mmreason bench ... --out runs/rules`
    python -m benchmarks.step_errors --n 60                  # or run the rules backend on 60 cases now
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mmreason.case import Case
from mmreason.trace import Trace
from mmreason.verifiers import split_steps, verify
from mmreason.verifiers.metrics import first_error_index, first_error_scores

PERTURBATIONS = ("number", "side", "direction")
#: a stated measurement is multiplied by this (far outside every unit's tolerance)
NUMBER_FACTOR = 1.6
_MEASURED = re.compile(r"(?<![\w.+-])(\d+(?:\.\d+)?)(\s*(?:mm3|mm|mL|HU)\b|(?=[:;,.]?\s))")
_SIDES = {"right": "left", "left": "right"}
_CHANGES = {"grew": "shrank", "shrank": "grew"}


def _swap_first(text: str, pairs: dict[str, str]) -> str | None:
    m = re.search(r"\b(" + "|".join(pairs) + r")\b", text)
    return None if m is None else text[: m.start()] + pairs[m.group(1)] + text[m.end():]


def _scale_first(text: str) -> str | None:
    # skip coordinates ("x=-52.2"): their sign and the "=" before them mark them
    for m in _MEASURED.finditer(text):
        if text[max(0, m.start() - 1)] in "=-+":
            continue
        value = float(m.group(1))
        if value == 0:
            continue
        decimals = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
        return text[: m.start(1)] + f"{value * NUMBER_FACTOR:.{decimals}f}" + text[m.end(1):]
    return None


def perturb(trace: Trace, kind: str) -> tuple[Trace, int] | None:
    """A copy of ``trace`` with the first prose step of its final turn altered by ``kind``, and
    the index of that step; None when the final turn has no such statement."""
    change = {"number": _scale_first, "side": lambda t: _swap_first(t, _SIDES),
              "direction": lambda t: _swap_first(t, _CHANGES)}[kind]
    steps = split_steps(trace)
    final_turn = max((s.turn for s in steps), default=None)
    for step in steps:
        if step.turn != final_turn or step.kind != "text":
            continue
        altered = change(step.text)
        if altered is None:
            continue
        copy = Trace.from_dict(trace.to_dict())
        turn = copy.turns[step.turn]
        turn.text = turn.text.replace(step.text, altered, 1)
        return copy, step.index
    return None


def evaluate(pairs: list[tuple[Case, Trace]]) -> dict[str, Any]:
    """First-error scores of the rule verifiers on the clean traces and their perturbed copies."""
    predicted, reference = [], []
    by_kind: dict[str, list[bool]] = defaultdict(list)
    first_by_kind: dict[str, list[bool]] = defaultdict(list)
    for case, trace in pairs:
        predicted.append(first_error_index(verify(case, trace)))
        reference.append(-1)
        for kind in PERTURBATIONS:
            made = perturb(trace, kind)
            if made is None:
                continue
            copy, step = made
            verdicts = verify(case, copy)
            flagged = {v.step for v in verdicts if v.label == "incorrect"}
            predicted.append(first_error_index(verdicts))
            reference.append(step)
            by_kind[kind].append(step in flagged)
            first_by_kind[kind].append(predicted[-1] == step)
    return {
        "first_error": first_error_scores(predicted, reference),
        "perturbations": {k: {"traces": len(v), "altered_step_flagged": sum(v) / len(v),
                              "first_error_exact": sum(first_by_kind[k]) / len(v)} for k, v in by_kind.items()},
    }


def traces_of_run(run_dir: Path) -> list[tuple[Case, Trace]]:
    """The correctly answered (case, trace) pairs of a ``mmreason bench`` run folder."""
    from benchmarks.runner import case_from_row, read_jsonl_tolerant

    pairs = []
    for samples in sorted(run_dir.glob("samples_*.jsonl")):
        for row in read_jsonl_tolerant(samples):
            if row.get("correct") and row.get("trace"):
                path = Path(row["trace"])
                pairs.append((case_from_row(row), Trace.load(path if path.is_absolute() else run_dir / path)))
    return pairs


def traces_of_rules(n: int, data: Path | None) -> list[tuple[Case, Trace]]:
    """Run the rules backend on the first ``n`` synthetic cases; keep the correct ones."""
    from benchmarks.runner import last_assistant_text
    from benchmarks.scoring import score_response
    from benchmarks.tasks import load_task
    from mmreason.backends.rules import RulesBackend
    from mmreason.loop import run_episode

    loaded = load_task("synthetic", {"synthetic": str(data)} if data else None)
    pairs = []
    for case in loaded.cases[:n]:
        question = loaded.spec.format_prompt(case)
        options = None if loaded.spec.options_in_question else case.options
        trace = run_episode(case.images, question, RulesBackend(), options=options)
        if score_response(last_assistant_text(trace), case).correct:
            pairs.append((case, trace))
    return pairs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="a bench run folder whose traces to perturb")
    p.add_argument("--n", type=int, default=60, help="cases of the synthetic benchmark to run (without --run)")
    p.add_argument("--data", type=Path, help="synthetic benchmark folder (default: the task's data folder)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    pairs = traces_of_run(args.run) if args.run else traces_of_rules(args.n, args.data)
    if not pairs:
        print("no correctly answered traces to perturb", file=sys.stderr)
        return 1
    doc = {"clean_traces": len(pairs)} | evaluate(pairs)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    fe = doc["first_error"]
    print(f"{len(pairs)} clean traces, {fe['erroneous']} perturbed copies")
    print(f"first error: accuracy on erroneous {fe['accuracy_erroneous']:.3f}, on error-free "
          f"{fe['accuracy_error_free']:.3f}, F1 {fe['f1']:.3f}")
    for kind, d in doc["perturbations"].items():
        print(f"  {kind:9s} {d['traces']:4d} copies: altered step flagged {d['altered_step_flagged']:.3f}, "
              f"first error exact {d['first_error_exact']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
