"""First-error detection on perturbed rules traces (benchmarks.step_errors)."""

from __future__ import annotations

from benchmarks.step_errors import evaluate, perturb
from mmreason.backends.rules import RulesBackend
from mmreason.loop import run_episode
from mmreason.trace import Trace, Turn
from mmreason.verifiers import split_steps


def _final(text: str) -> Trace:
    return Trace(question="q", turns=[Turn("user", "q"), Turn("assistant", text)])


def test_perturbations_alter_one_claim_and_name_its_step():
    trace = _final("One nodule centred at x=-52.2, y=-45.7 mm; longest diameter 10.0 mm [E2], in the right lung.\n\n"
                   "It grew.\n\n<answer>10.0 mm [E2]</answer>")
    copy, step = perturb(trace, "number")
    assert step == 0 and "x=-52.2" in copy.turns[1].text and "16.0 mm [E2]" in copy.turns[1].text
    assert "<answer>10.0 mm [E2]</answer>" in copy.turns[1].text and "10.0 mm [E2]" in trace.turns[1].text
    assert "in the left lung" in perturb(trace, "side")[0].turns[1].text
    copy, step = perturb(trace, "direction")
    assert split_steps(copy)[step].text == "It shrank."
    assert perturb(_final("<answer>yes</answer>"), "number") is None


def test_rule_verifiers_find_the_altered_step(cases):  # noqa: F811
    wanted = ("growth", "nodule_side", "nodule_size")
    chosen = [next(c for c in cases.values() if c.subgroups.get("family") == f) for f in wanted]
    pairs = []
    for case in chosen:
        trace = run_episode(case.images, case.question, RulesBackend(), options=case.options)
        pairs.append((case, trace))
    doc = evaluate(pairs)
    fe = doc["first_error"]
    assert fe["error_free"] == 3 and fe["accuracy_error_free"] == 1.0  # expert traces: nothing flagged
    assert {"number", "side", "direction"} <= set(doc["perturbations"])
    for kind, d in doc["perturbations"].items():
        assert d["altered_step_flagged"] == 1.0, kind
    assert fe["accuracy_erroneous"] == 1.0 and fe["f1"] == 1.0
