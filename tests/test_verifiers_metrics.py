"""Step metrics on small hand-computed examples."""

from __future__ import annotations

import pytest

from mmreason.verifiers import (StepVerdict, first_error_index, first_error_scores, reasoning_impact, step_metrics,
                                verify)
from mmreason.verifiers.metrics import reference_step_scores, step_matches

from test_verifiers import case_with, nodule_trace


def test_first_error_index():
    vs = [StepVerdict(0, "correct", 1.0), StepVerdict(1, "unverifiable", 0.5),
          StepVerdict(2, "incorrect", 0.1, "prm_low_score", "prm"), StepVerdict(3, "incorrect", 0.0, "format")]
    assert first_error_index(vs) == 3  # the PRM verdict is not a rule verdict
    assert first_error_index(vs, verifiers=("prm",)) == 2
    assert first_error_index(vs[:2]) == -1


def test_first_error_scores_processbench_style():
    s = first_error_scores(predicted=[2, -1, 3, -1], reference=[2, -1, 1, 0])
    assert s["erroneous"] == 3 and s["error_free"] == 1
    assert s["accuracy_erroneous"] == pytest.approx(1 / 3)
    assert s["accuracy_error_free"] == 1.0
    assert s["f1"] == pytest.approx(0.5)  # 2 * (1/3) * 1 / (1/3 + 1)
    assert s["accuracy"] == 0.5
    assert first_error_scores([0], [-1])["f1"] is None  # no erroneous samples: F1 undefined


def test_reasoning_impact_on_common_cases():
    r = reasoning_impact({"a": True, "b": True, "c": False}, {"a": True, "b": False, "c": False, "d": True})
    assert r["cases"] == 3
    assert r["impact"] == pytest.approx(2 / 3 - 1 / 3)
    assert reasoning_impact({"a": True}, {"b": True})["impact"] is None


def test_reference_step_matching():
    trace = nodule_trace("ok")
    segment, view = trace.tool_calls()[1], trace.tool_calls()[0]
    ev = trace.evidence_by_id()["E2"]
    assert step_matches(segment, ev, {"tool": "segment", "arguments": {"target": "Nodule"}})
    assert step_matches(segment, ev, {"tool": "segment", "arguments": {"target": "nodule", "view_id": "V9"},
                                      "expect": {"volume_ml": 0.31, "laterality": "right", "nonempty": True}})
    assert step_matches(segment, ev, {"tool": "segment", "expect": {"volume_ml": {"value": 290, "unit": "mm3"}}})
    assert not step_matches(segment, ev, {"tool": "segment", "expect": {"volume_ml": 0.5}})
    assert not step_matches(segment, ev, {"tool": "segment", "expect": {"laterality": "left"}})
    assert not step_matches(segment, ev, {"tool": "segment", "arguments": {"target": "left lung"}})
    assert not step_matches(view, None, {"tool": "segment"})


def test_reference_step_precision_recall():
    case = case_with(reference_steps=[{"tool": "segment", "arguments": {"target": "nodule"},
                                       "expect": {"volume_ml": 0.3}},
                                      {"tool": "measure", "arguments": {"target": "nodule"}}])
    s = reference_step_scores([case, case_with()], [nodule_trace("ok"), nodule_trace("ok")])
    assert (s["cases"], s["matched"], s["predicted"], s["reference"]) == (1, 1, 2, 2)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5


def test_step_metrics_of_a_run():
    gt = [{"label": "nodule", "image": 0, "zyx_min": [3, 12, 10], "zyx_max": [6, 22, 20]}]
    cases = [case_with(boxes=gt), case_with(boxes=gt)]
    good = nodule_trace("The nodule measures 14 mm [E2].")
    bad = nodule_trace("The nodule measures 30 mm [E2].")
    good.meta["first_error_step"] = -1
    bad.meta["first_error_step"] = 4
    traces = [good, bad]
    verdicts = [verify(c, t) for c, t in zip(cases, traces)]
    m = step_metrics(cases, traces, verdicts, with_tools_correct={"c1": True}, direct_correct={"c1": False})
    assert m["samples"] == 2 and m["steps"] == 12
    assert m["labels"] == {"correct": 9, "incorrect": 1, "unverifiable": 2}
    assert m["first_error"]["accuracy"] == 1.0 and m["first_error"]["f1"] == 1.0
    # per trace: the box claimed in prose (step 2) and the nodule segmentation (step 3)
    assert m["grounding_iou"] == {"regions": 4, "mean": pytest.approx(1.0)}
    assert m["tool_calls_per_case"] == 2.0
    assert m["reasoning_impact"]["impact"] == 1.0
    assert m["reference_steps"]["cases"] == 0 and m["reference_steps"]["f1"] is None
    # an explicit reference overrides the trace's own and is scored against the prediction (step 4)
    m = step_metrics(cases, traces, verdicts, reference_first_errors={"c1": 2})
    assert m["first_error"]["accuracy"] == 0.0 and m["reasoning_impact"] is None
