"""First-error detection of the step verifiers on perturbed traces (ProcessBench style).

The synthetic benchmark's expert traces (the ``rules`` backend) are correct step by step. This
script makes erroneous copies with one known wrong step and asks the rule verifiers to find it:

* ``number``: the first measurement stated in the final explanation (``12.9 mm``, ``11.87 mL``,
  ``0.53``) is scaled by `NUMBER_FACTOR`, so it no longer matches the evidence it cites;
* ``side``: the side stated in the explanation is swapped (``right`` <-> ``left``);
* ``direction``: a stated change is reversed (``grew`` <-> ``shrank``).

The evidence itself is perturbed too (``--evidence N``): N cases are answered again while the
tools return wrong evidence (`EVIDENCE_PERTURBATIONS`: a mask cut in half, a missed lesion, a
wrong assumed spacing), so the trace is consistent with its evidence and only the evidence checks
(quality levels, the case's truth) can catch it; each wrong answer is counted as declined or
hedged, flagged by the verifiers, or confidently wrong.

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

import numpy as np

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


#: perturbations of the evidence itself: the tools return wrong evidence and the trace is
#: consistent with it, so only checks of the evidence (its quality, the case's truth) can catch it
EVIDENCE_PERTURBATIONS = ("mask_cut", "missed_lesion", "wrong_spacing")
_STRUCTURES = ("lungs", "lung_left", "lung_right", "liver", "spleen", "kidney_left", "kidney_right", "nodule",
               "lesion", "heart")


class _Perturbed:
    """A segmenter returning wrong masks: the upper half cut off (``mask_cut``) or no lesion."""

    name = "classical"

    def __init__(self, kind: str) -> None:
        from grounding.segmenters.classical import ClassicalSegmenter

        self.kind, self.inner = kind, ClassicalSegmenter()
        self.targets = self.inner.targets

    def segment(self, volume: Any, target: str | None = None, prompt: Any = None) -> Any:
        mask = self.inner.segment(volume, target, prompt)
        if self.kind == "missed_lesion" and target in ("nodule", "lesion"):
            return mask & False
        if self.kind == "mask_cut" and target in _STRUCTURES and mask.any():
            axis = 1 if mask.shape[0] == 1 else 0
            cut = mask.copy()
            hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
            middle = (hits[0] + hits[-1] + 1) // 2
            index = [slice(None)] * 3
            index[axis] = slice(middle, None)
            cut[tuple(index)] = False
            return cut
        return mask


def _wrong_spacing(volume: Any) -> Any:
    """The volume with a pixel spacing nothing in the file gave (1.6 x the true one, assumed)."""
    from imaging.volume import Volume

    sz, sy, sx = volume.spacing
    affine = volume.affine.copy()
    affine[:3, 1:] *= 1.6
    metadata = dict(volume.metadata, pixel_spacing_source="unknown (1.0 mm assumed)")
    return Volume(data=volume.data, spacing=(sz, sy * 1.6, sx * 1.6), affine=affine, modality=volume.modality,
                  metadata=metadata, name=volume.name)


def evaluate_evidence(pairs: list[tuple[Case, Trace]], kinds: tuple[str, ...] = EVIDENCE_PERTURBATIONS
                      ) -> dict[str, Any]:
    """Re-run the rules backend with wrong evidence and count how each wrong answer ends:
    declined or hedged by the planner, flagged by the verifiers (a step `incorrect`, or the answer
    step not `correct`), or confidently wrong (stated as fact and every check passed)."""
    from benchmarks.core.runner import last_assistant_text
    from benchmarks.core.scoring import score_response
    from imaging.io import load
    from mmreason.backends.rules import RulesBackend
    from mmreason.loop import run_episode
    from mmreason.run_spec import RunSpec

    out: dict[str, Any] = {}
    for kind in kinds:
        counts = {"cases": 0, "answer_changed_to_wrong": 0, "declined_or_hedged": 0, "flagged_by_verifiers": 0,
                  "confidently_wrong": 0}
        for case, clean in pairs:
            volumes = [load(p) if not hasattr(p, "data") else p for p in case.images]
            if kind == "wrong_spacing":
                volumes = [_wrong_spacing(v) for v in volumes]
            config = RunSpec(segmenter_instance=_Perturbed(kind)).loop_config()
            trace = run_episode(volumes, clean.question, RulesBackend(), options=clean.options, config=config)
            counts["cases"] += 1
            if score_response(last_assistant_text(trace), case).correct:
                continue
            counts["answer_changed_to_wrong"] += 1
            answer = trace.answer or ""
            if trace.status == "abstained" or "uncertain" in answer:
                counts["declined_or_hedged"] += 1
                continue
            verdicts = verify(case, trace)
            answer_steps = [v for v, st in zip(verdicts, split_steps(trace)) if st.kind == "answer"]
            if any(v.label == "incorrect" for v in verdicts) or any(v.label != "correct" for v in answer_steps):
                counts["flagged_by_verifiers"] += 1
            else:
                counts["confidently_wrong"] += 1
        out[kind] = counts
    return out


def traces_of_run(run_dir: Path) -> list[tuple[Case, Trace]]:
    """The correctly answered (case, trace) pairs of a ``mmreason bench`` run folder."""
    from benchmarks.core.run_folder import case_from_row, read_jsonl_tolerant

    pairs = []
    for samples in sorted(run_dir.glob("samples_*.jsonl")):
        for row in read_jsonl_tolerant(samples):
            if row.get("correct") and row.get("trace"):
                path = Path(row["trace"])
                pairs.append((case_from_row(row), Trace.load(path if path.is_absolute() else run_dir / path)))
    return pairs


def traces_of_rules(n: int, data: Path | None) -> list[tuple[Case, Trace]]:
    """Run the rules backend on the first ``n`` synthetic cases; keep the correct ones."""
    from benchmarks.core.runner import last_assistant_text
    from benchmarks.core.scoring import score_response
    from benchmarks.core.tasks import load_task
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
    p.add_argument("--evidence", type=int, default=30, metavar="N",
                   help="also re-run N of those cases with wrong evidence (a mask cut in half, a missed lesion, "
                        "a wrong spacing); 0 skips it")
    args = p.parse_args(argv)
    pairs = traces_of_run(args.run) if args.run else traces_of_rules(args.n, args.data)
    if not pairs:
        print("no correctly answered traces to perturb", file=sys.stderr)
        return 1
    doc = {"clean_traces": len(pairs)} | evaluate(pairs)
    if args.evidence:
        doc["evidence_perturbations"] = evaluate_evidence(pairs[: args.evidence])
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
    for kind, d in doc.get("evidence_perturbations", {}).items():
        print(f"  evidence {kind:14s} {d['cases']:3d} cases, {d['answer_changed_to_wrong']:3d} answers made wrong: "
              f"{d['declined_or_hedged']} declined/hedged, {d['flagged_by_verifiers']} flagged by the verifiers, "
              f"{d['confidently_wrong']} confidently wrong")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
