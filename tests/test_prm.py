"""The PRM adapter on a tiny locally built token-classification PRM (random weights: structure only)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.prm import SEPARATOR, build_tiny_prm
from mmreason.verifiers import PRMConfig, PRMError, PRMScorer, split_steps, verify

from test_verifiers import nodule_trace


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    return build_tiny_prm(tmp_path_factory.mktemp("prm"))


@pytest.fixture(scope="module")
def scorer(prm_dir):
    return PRMScorer.from_pretrained(prm_dir, PRMConfig(device="cpu"))


def test_one_score_per_step_in_unit_interval_and_deterministic(scorer, prm_dir):
    steps = ["Segment the left lung.", "The nodule measures 12.3 mm.", "Answer: yes"]
    scores = scorer.score("Is there a nodule?", steps)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scorer.score("Is there a nodule?", steps) == scores
    again = PRMScorer.from_pretrained(prm_dir, PRMConfig(device="cpu"))  # reload: same weights, same scores
    assert again.score("Is there a nodule?", steps) == pytest.approx(scores, abs=1e-6)
    assert scores[0] != scores[1]  # each step is scored at its own separator
    assert scorer.score("q", []) == []


def test_scores_match_a_manual_forward_pass(scorer):
    steps = ["Crop view V1.", "Answer: no"]
    text = scorer.build_text("Is there a nodule?", steps)
    assert text.count(SEPARATOR) == 2 and "<|im_start|>assistant" in text
    ids = scorer.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(scorer.model(input_ids=ids).logits[0], -1)[:, 1]
    expected = probs[ids[0] == scorer.separator_id].tolist()
    assert scorer.score("Is there a nodule?", steps) == pytest.approx(expected, abs=1e-6)


def test_separator_inside_a_step_is_neutralised(scorer):
    assert len(scorer.score("q", [f"step one {SEPARATOR} still one", "two"])) == 2


def test_prm_verdicts_through_verify(scorer):
    trace = nodule_trace("The nodule measures 14 mm [E2].")
    steps = split_steps(trace)
    verdicts = verify(None, trace, kinds=("rule", "prm"), prm=scorer)
    assert len(verdicts) == 2 * len(steps)
    prm = [v for v in verdicts if v.verifier == "prm"]
    assert [v.step for v in prm] == [s.index for s in steps]
    for v in prm:
        assert 0.0 <= v.score <= 1.0
        assert v.label == ("correct" if v.score >= 0.5 else "incorrect")
    strict = PRMScorer(scorer.model, scorer.tokenizer, PRMConfig(threshold=1.0))
    assert all(v.label == "incorrect" and v.error_type == "prm_low_score"
               for v in strict.verify_steps(trace, steps))


def test_errors(scorer, prm_dir, tmp_path):
    with pytest.raises(PRMError, match="cannot load"):
        PRMScorer.from_pretrained(tmp_path / "nothing-here")
    with pytest.raises(PRMError, match="max_length"):
        PRMScorer(scorer.model, scorer.tokenizer, PRMConfig(max_length=8)).score("q", ["a long step " * 5])
    with pytest.raises(PRMError, match="splits the step separator"):
        PRMScorer(scorer.model, scorer.tokenizer, PRMConfig(step_separator="<not a token>"))


def test_tokenizer_without_chat_template(tmp_path):
    scorer = PRMScorer.from_pretrained(build_tiny_prm(tmp_path / "plain", chat_template=False))
    assert scorer.build_text("q", ["a", "b"]) == f"q\n\na{SEPARATOR}b{SEPARATOR}"
    assert len(scorer.score("q", ["a", "b"])) == 2
