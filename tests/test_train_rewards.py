"""GRPO rewards on hand-written rollouts whose right values are known."""

from __future__ import annotations

import pytest

from tests.helpers.training import make_env, rollout
from train.rewards import REWARD_FUNCS, REWARD_NAMES, Outcome, accuracy_reward, outcome_of


def rewards(env, completion) -> dict[str, float | None]:
    return {name: f([completion], [env])[0] for name, f in zip(REWARD_NAMES, REWARD_FUNCS, strict=True)}


def test_correct_answer_with_good_grounding_gets_every_bonus(cases):
    env = make_env(cases["syn-0021"])  # which lung: A = right; the nodule is in the right lung
    completion = rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                         "The nodule is on the patient's right [E2].\n<answer>A [E2]</answer>")
    r = rewards(env, completion)
    assert r["accuracy"] == 1.0
    assert r["format"] == 1.0
    assert r["grounding"] > 0.5  # the segmented nodule's box against the ground-truth box
    assert r["evidence"] == pytest.approx(outcome_of(env, completion).correct_steps / outcome_of(env, completion).steps)
    assert r["evidence"] > 0.5
    assert r["tool_economy"] == 0.0


def test_wrong_answer_gets_no_tool_bonus(cases):
    env = make_env(cases["syn-0021"])
    completion = rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                         "<answer>B [E2]</answer>")
    r = rewards(env, completion)
    assert r["accuracy"] == 0.0
    assert r["format"] == 1.0  # well formed, just wrong
    assert r["grounding"] == 0.0 and r["evidence"] == 0.0  # the same good tool calls earn nothing
    assert outcome_of(env, completion).iou > 0.5  # ... although they localised the nodule


def test_malformed_tool_call_and_no_answer(cases):
    env = make_env(cases["syn-0020"])
    completion = rollout(env, [], '<tool_call>{"name": "segment", "arguments": {"target": </tool_call>')
    r = rewards(env, completion)
    o = outcome_of(env, completion)
    assert (o.calls, o.valid_calls, o.failed_calls, o.answered) == (1, 0, 1, False)
    assert r["format"] == 0.0
    assert r["accuracy"] == 0.0
    assert r["tool_economy"] == -1.0
    assert r["grounding"] == 0.0  # the case has a ground-truth region and nothing localised it


def test_uncited_calls_earn_no_evidence_reward(cases):
    env = make_env(cases["syn-0020"])
    padded = rollout(env, [("view", {"index": 3}), ("view", {"index": 5}), ("view", {"index": 7})], "<answer>yes</answer>")
    r = rewards(env, padded)
    assert r["accuracy"] == 1.0 and r["evidence"] == 0.0 and r["grounding"] == 0.0
    env = make_env(cases["syn-0020"])
    grounded = rollout(env, [("segment", {"target": "nodule"})], "<answer>yes [E1]</answer>")
    env2 = make_env(cases["syn-0020"])
    more = rollout(env2, [("segment", {"target": "nodule"}), ("view", {"index": 3}), ("view", {"index": 5})],
                   "<answer>yes [E1]</answer>")
    assert rewards(env, grounded)["evidence"] == rewards(env2, more)["evidence"] > 0.5


def test_repeated_and_failing_calls_are_penalised(cases):
    env = make_env(cases["syn-0020"])
    calls = [("segment", {"target": "nodule"}), ("segment", {"target": "nodule"}), ("view", {"index": 999})]
    completion = rollout(env, calls, "<answer>yes [E1]</answer>")
    o = outcome_of(env, completion)
    assert (o.calls, o.repeated_calls, o.failed_calls) == (3, 1, 1)
    r = rewards(env, completion)
    assert r["tool_economy"] == pytest.approx(-2 / 3)
    assert r["accuracy"] == 1.0 and r["format"] == 1.0


def test_unknown_tool_name_is_not_well_formed(cases):
    env = make_env(cases["syn-0000"])
    completion = rollout(env, [], '<tool_call>\n{"name": "zoom", "arguments": {}}\n</tool_call>')
    o = outcome_of(env, completion)
    assert (o.calls, o.valid_calls) == (1, 0)
    assert o.format == 0.0


def test_outcome_arithmetic():
    o = Outcome(correct=True, answered=True, calls=4, valid_calls=3, failed_calls=1, repeated_calls=1, iou=0.4,
                supported=False, steps=5, correct_steps=2)
    assert o.format == pytest.approx(0.5 + 0.5 * 3 / 4)
    assert o.grounding == 0.0  # correct but the cited evidence does not support it
    assert o.evidence == pytest.approx(0.4)
    assert o.tool_economy == pytest.approx(-0.5)
    assert o.total([1, 1, 1, 1, 1]) == pytest.approx(1 + 0.875 + 0 + 0.4 - 0.5)


def test_rewards_need_environments():
    with pytest.raises(ValueError, match="environment_factory"):
        accuracy_reward([[{"role": "assistant", "content": "<answer>yes</answer>"}]])
