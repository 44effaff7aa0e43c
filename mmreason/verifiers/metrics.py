"""Step-level metrics of a run: reference-step P/R/F1, first-error accuracy, grounding IoU...

All functions take parallel lists (``cases[i]``, ``traces[i]``, ``verdicts[i]`` describe one
sample) and return plain dicts, ready for ``results.json``.

**Matching a predicted tool call to a reference step** (``Case.reference_steps`` entries
``{"tool": ..., "arguments": {...}, "expect": {...}}``), greedy and one-to-one, in reference order:

* the tool name must be equal, and the volume (``"volume"`` of the reference step, e.g. ``"1"``
  for the current study of a follow-up) must be the one the call's evidence is on;
* every reference argument must agree, except the arguments that depend on what the model was
  shown (`LOCATION_ARGUMENTS`: view ids, boxes, points, slice positions, window, margin).
  Strings agree case-insensitively, numbers within 1e-6 relative, lists element-wise;
* every ``expect`` entry must agree with the call's evidence: a measurement name (number, or
  ``{"value", "unit"}``) within the verifier tolerance of its unit's dimension (10% when the unit
  is unknown), ``laterality`` with `evidence_laterality`, ``nonempty`` with whether the mask has
  voxels, any other key with ``evidence.data[key]``. A failed call matches nothing that expects
  a value.

Precision = matched / predicted tool calls and recall = matched / reference steps, summed over
the cases that have reference steps (micro average).

**First error** (ProcessBench): the predicted first error is the smallest step index with an
``incorrect`` verdict from the chosen verifiers (-1 when none); the reference is
``reference_first_errors[case.id]`` or else ``trace.meta["first_error_step"]`` (-1: no error).
Accuracy is reported on erroneous and on error-free samples; F1 is their harmonic mean.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from grounding.evidence import Evidence
from mmreason.case import Case
from mmreason.quantities import dimension_of
from mmreason.trace import ToolCall, Trace
from mmreason.verifiers.context import Tolerance, VerifierConfig, evidence_laterality
from mmreason.verifiers.verdicts import StepVerdict

#: reference arguments that depend on the model's own views and are not compared
LOCATION_ARGUMENTS = frozenset({"view_id", "bbox_2d", "point_2d", "slice", "index", "position_mm", "window",
                                "margin"})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _expect_ok(key: str, want: Any, ev: Evidence | None, config: VerifierConfig) -> bool:
    if ev is None or ev.error:
        return False
    if key == "laterality":
        return _same(evidence_laterality(ev), want)
    if key == "nonempty":
        return ev.mask is not None and bool(ev.mask.any()) == bool(want)
    if key in ev.measurements:
        m = ev.measurements[key]
        value, unit = (want.get("value"), want.get("unit", m.unit)) if isinstance(want, dict) else (want, m.unit)
        got, have = dimension_of(m.unit), dimension_of(unit)
        if got is None or have is None or got[0] != have[0]:
            return _same(float(m.value), float(value)) if unit == m.unit else False
        tol = config.tolerances.get(got[0], Tolerance(relative=0.10))
        return tol.accepts(float(value) * have[1], float(m.value) * got[1])
    if key in ev.data:
        got = ev.data[key]
        if isinstance(got, (int, float)) and isinstance(want, (int, float)) and not isinstance(want, bool):
            return Tolerance(relative=0.10).accepts(float(want), float(got))
        return _same(got, want)
    return False


def _volume_of(ev: Evidence) -> str | None:
    for v in (ev.mask_volume, ev.data.get("volume"), ev.arguments.get("volume")):
        if v is not None:
            return str(v)
    return None


def step_matches(call: ToolCall, ev: Evidence | None, reference: dict[str, Any],
                 config: VerifierConfig | None = None) -> bool:
    """Whether a predicted call (and its evidence) matches one reference step (module docstring)."""
    if call.name != reference.get("tool"):
        return False
    if "volume" in reference and (ev is None or str(reference["volume"]) != _volume_of(ev)):
        return False
    for key, want in reference.get("arguments", {}).items():
        if key not in LOCATION_ARGUMENTS and not _same(call.arguments.get(key), want):
            return False
    config = config or VerifierConfig()
    return all(_expect_ok(k, v, ev, config) for k, v in reference.get("expect", {}).items())


def reference_step_scores(cases: Sequence[Case], traces: Sequence[Trace],
                          config: VerifierConfig | None = None) -> dict[str, Any]:
    """Micro-averaged precision/recall/F1 of tool calls against ``Case.reference_steps``."""
    matched = predicted = reference = n = 0
    for case, trace in zip(cases, traces):
        if not case.reference_steps:
            continue
        n += 1
        evidence = trace.evidence_by_id()
        calls = trace.tool_calls()
        used: set[int] = set()
        for ref in case.reference_steps:
            for i, call in enumerate(calls):
                if i not in used and step_matches(call, evidence.get(call.evidence_id or ""), ref, config):
                    used.add(i)
                    break
        matched += len(used)
        predicted += len(calls)
        reference += len(case.reference_steps)
    precision = matched / predicted if predicted else None
    recall = matched / reference if reference else None
    f1 = (2 * precision * recall / (precision + recall) if precision is not None and recall is not None
          and precision + recall > 0 else (0.0 if precision is not None and recall is not None else None))
    return {"cases": n, "matched": matched, "predicted": predicted, "reference": reference,
            "precision": precision, "recall": recall, "f1": f1}


def first_error_index(verdicts: Sequence[StepVerdict], verifiers: Sequence[str] = ("rule", "tool")) -> int:
    """Index of the first step with an ``incorrect`` verdict from ``verifiers``; -1 when none."""
    bad = [v.step for v in verdicts if v.label == "incorrect" and v.verifier in verifiers]
    return min(bad) if bad else -1


def first_error_scores(predicted: Sequence[int], reference: Sequence[int]) -> dict[str, Any]:
    """ProcessBench scores: accuracy on erroneous samples (reference >= 0), on error-free samples
    (reference == -1), their harmonic mean (F1) and the overall accuracy."""
    pairs = list(zip(predicted, reference))
    err = [p == r for p, r in pairs if r >= 0]
    ok = [p == -1 for p, r in pairs if r < 0]
    acc_err = sum(err) / len(err) if err else None
    acc_ok = sum(ok) / len(ok) if ok else None
    f1 = None
    if acc_err is not None and acc_ok is not None:
        f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok > 0 else 0.0
    return {"samples": len(pairs), "erroneous": len(err), "error_free": len(ok), "accuracy_erroneous": acc_err,
            "accuracy_error_free": acc_ok, "f1": f1,
            "accuracy": sum(p == r for p, r in pairs) / len(pairs) if pairs else None}


def reasoning_impact(with_tools: Mapping[str, bool], direct: Mapping[str, bool]) -> dict[str, Any]:
    """Accuracy with tools minus accuracy answering directly, on the case ids both runs have."""
    common = sorted(set(with_tools) & set(direct))
    if not common:
        return {"cases": 0, "accuracy_with_tools": None, "accuracy_direct": None, "impact": None}
    acc_tools = sum(bool(with_tools[c]) for c in common) / len(common)
    acc_direct = sum(bool(direct[c]) for c in common) / len(common)
    return {"cases": len(common), "accuracy_with_tools": acc_tools, "accuracy_direct": acc_direct,
            "impact": acc_tools - acc_direct}


def step_metrics(cases: Sequence[Case], traces: Sequence[Trace], verdicts: Sequence[Sequence[StepVerdict]], *,
                 reference_first_errors: Mapping[str, int] | None = None,
                 with_tools_correct: Mapping[str, bool] | None = None,
                 direct_correct: Mapping[str, bool] | None = None,
                 verifiers: Sequence[str] = ("rule", "tool"),
                 config: VerifierConfig | None = None) -> dict[str, Any]:
    """All step metrics of a run.

    Args:
        cases, traces, verdicts: parallel lists, one entry per sample.
        reference_first_errors: case id -> reference first error step (-1: none); falls back
            to ``trace.meta["first_error_step"]``; samples with neither are left out.
        with_tools_correct, direct_correct: case id -> answer correctness of the tool-using run
            and of a direct-answer run; the impact of reasoning is reported when both are given.
        verifiers: verdict sources counted as errors for the first-error metric and the labels.

    Returns:
        ``{"samples", "steps", "labels", "reference_steps", "first_error", "grounding_iou",
        "tool_calls_per_case", "reasoning_impact"}``; metrics that cannot be computed are None.
    """
    refs = reference_first_errors or {}
    predicted, reference = [], []
    for case, trace, vs in zip(cases, traces, verdicts):
        ref = refs.get(case.id, trace.meta.get("first_error_step"))
        if ref is not None:
            predicted.append(first_error_index(vs, verifiers))
            reference.append(int(ref))
    chosen = [v for vs in verdicts for v in vs if v.verifier in verifiers]
    ious = [v.iou for v in chosen if v.iou is not None]
    labels = Counter(v.label for v in chosen)
    return {
        "samples": len(traces),
        "steps": len(chosen),
        "labels": {k: labels.get(k, 0) for k in ("correct", "incorrect", "unverifiable")},
        "reference_steps": reference_step_scores(cases, traces, config),
        "first_error": first_error_scores(predicted, reference) if predicted else None,
        "grounding_iou": {"regions": len(ious), "mean": sum(ious) / len(ious) if ious else None},
        "tool_calls_per_case": sum(len(t.tool_calls()) for t in traces) / len(traces) if traces else None,
        "reasoning_impact": (reasoning_impact(with_tools_correct, direct_correct)
                             if with_tools_correct is not None and direct_correct is not None else None),
    }
