"""Scoring and statistics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from benchmarks.core.scoring import normalize, parse_quantity, parse_response, score_response, token_recall
from benchmarks.core.stats import compare_paired, mcnemar_exact, paired_bootstrap, wilson_interval
from mmreason.case import Case


def _case(answer: str, answer_type: str, **kw) -> Case:
    return Case(id="1", task="t", images=[], question="q", answer=answer, answer_type=answer_type, **kw)


OPTIONS = ["Pneumothorax", "Left lung", "Cardiomegaly"]


@pytest.mark.parametrize("response, text, status", [
    ("think...\n<answer>B</answer> and \\boxed{C}", "B", "answer_tag"),
    ("<answer>first</answer> then <answer>second [E2]</answer>", "second", "answer_tag"),
    ("<answer>unclosed at the end", "unclosed at the end", "answer_tag"),
    ("so \\boxed{\\frac{1}{2}} it is", "\\frac{1}{2}", "boxed"),
    ("reasoning\nAnswer: yes\n", "yes", "answer_prefix"),
    ("**Final answer:** C", "C", "answer_prefix"),
    ("Left lung", "Left lung", "option_text"),
    ("  left   LUNG. ", "Left lung", "option_text"),
    ("I think it is B", None, "unparsed"),
    ("\\boxed{unbalanced", None, "unparsed"),
])
def test_parse_order_and_status(response, text, status):
    parsed = parse_response(response, OPTIONS, "choice", strict=True)
    assert (parsed.text, parsed.status) == (text, status)


def test_a_draft_answer_inside_think_is_not_the_answer():
    assert parse_response("<think>\nAnswer: B\n</think>\nnot sure", strict=True).status == "unparsed"
    assert parse_response("<think>\nAnswer: B\n</think>\nnot sure").text == "not sure"
    parsed = parse_response("<think>maybe <answer>A</answer></think><answer>B</answer>")
    assert (parsed.text, parsed.status) == ("B", "answer_tag")


def test_closed_questions_have_implicit_yes_no_options():
    assert parse_response("Yes.", None, "closed").status == "option_text"
    assert parse_response("Yes.", None, "open", strict=True).status == "unparsed"


@pytest.mark.parametrize("response, correct, option", [
    ("<answer>B</answer>", True, "B"),
    ("<answer>(B)</answer>", True, "B"),
    ("<answer>B. Left lung [E2]</answer>", True, "B"),
    ("<answer>b</answer>", True, "B"),
    ("<answer>Left lung</answer>", True, "B"),
    ("<answer>A</answer>", False, "A"),
    ("<answer>B. There is a mass in the left lung [E1]</answer>", True, "B"),
    ("<answer>B. Cardiomegaly</answer>", False, None),  # letter and another option's text disagree
    ("<answer>D</answer>", False, None),  # out of range
    ("<answer>The left lung, I think</answer>", False, None),  # no fuzzy matching
    ("B", True, "B"),  # a bare letter: the short-answer rule reads it
    ("<answer>A. Cardiomegaly</answer>", False, None),  # "A" is a letter here, not an article
    ("<answer>A Cardiomegaly</answer>", False, None),
    ("<answer>A. Left lung</answer>", False, None),  # not "a left lung": letter A with the text of B
    ("<answer>The answer is B [E1]</answer>", True, "B"),
])
def test_choice_scoring(response, correct, option):
    score = score_response(response, _case("B", "choice", options=OPTIONS))
    assert (score.correct, score.option) == (correct, option)


def test_closed_yes_no_and_other_closed():
    assert score_response("<answer>Yes, there is a mass [E1].</answer>", _case("yes", "closed")).correct
    assert not score_response("<answer>No</answer>", _case("yes", "closed")).correct
    assert not score_response("<answer>yesterday</answer>", _case("yes", "closed")).correct
    assert score_response("<answer>the lung</answer>", _case("Lung", "closed")).correct
    unparsed = score_response("maybe", _case("yes", "closed"), strict=True)
    assert (unparsed.correct, unparsed.parse_status, unparsed.parsed) == (False, "unparsed", None)


def test_open_exact_match_and_token_recall():
    s = score_response("<answer>Left lung mass</answer>", _case("left lung", "open"))
    assert (s.correct, s.recall) == (False, 1.0)
    s = score_response("<answer>The left lung.</answer>", _case("Left lung", "open"))
    assert (s.correct, s.recall) == (True, 1.0)
    assert token_recall("right upper lobe", "left upper lobe") == pytest.approx(2 / 3)
    assert token_recall("anything", "") == 0.0
    assert normalize("The 3.5 cm, well-defined mass.") == "3.5 cm well-defined mass"


@pytest.mark.parametrize("response, answer, unit, tol, correct", [
    ("<answer>1.2 cm</answer>", "12 mm", "mm", 0.05, True),
    ("<answer>12.5 mm [E2]</answer>", "12 mm", "mm", 0.05, True),  # 4.2% off
    ("<answer>12.7 mm</answer>", "12 mm", "mm", 0.05, False),  # 5.8% off
    ("<answer>[E2] 12</answer>", "12 mm", "mm", 0.05, True),  # citation removed, unitless -> reference unit
    ("<answer>0.5 mL</answer>", "500 mm3", "mm3", 0.01, True),
    ("<answer>4,200 mm³</answer>", "4.2 mL", "mL", 0.01, True),
    ("<answer>12 mL</answer>", "12 mm", "mm", 0.5, False),  # wrong dimension
    ("<answer>-4.5 mm</answer>", "-4.5 mm", "mm", 0.1, True),
    ("<answer>4.5 mm</answer>", "-4.5 mm", "mm", 0.1, False),  # the sign matters
    ("<answer>0.49</answer>", "0.483", "ratio", 0.1, True),
    ("<answer>no number</answer>", "3 mm", "mm", 0.1, False),
])
def test_numeric_relative_tolerance_and_units(response, answer, unit, tol, correct):
    assert score_response(response, _case(answer, "numeric", unit=unit, tolerance=tol)).correct is correct


def test_parse_quantity_units():
    assert parse_quantity("about 3.4 cm^3 of fluid") == (3.4, "cm3")
    assert parse_quantity("42%") == (42.0, "%")
    assert parse_quantity("none") is None


def test_wilson_interval_hand_values():
    p = wilson_interval(8, 10)
    # p = 0.8, z = 1.95996: centre 0.99207/1.38415 = 0.71674, half 0.31362/1.38415 = 0.22658
    assert (p.value, round(p.low, 4), round(p.high, 4)) == (0.8, 0.4902, 0.9433)
    zero = wilson_interval(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(3.841459 / 13.841459, abs=1e-6)
    full = wilson_interval(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(1 - 3.841459 / 13.841459, abs=1e-6)
    empty = wilson_interval(0, 0)
    assert math.isnan(empty.value) and (empty.low, empty.high) == (0.0, 1.0)


def test_mcnemar_exact_hand_values():
    assert mcnemar_exact(1, 6) == pytest.approx(16 / 128)  # 2 * (C(7,0) + C(7,1)) / 2^7
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_paired_comparison():
    a = [True, True, False, False, True, False, False, False, True, False]
    b = [True, False, True, True, True, True, True, False, True, True]
    c = compare_paired(a, b, n_boot=2000, seed=1)
    assert (c.n, c.acc_a, c.acc_b, c.b, c.c) == (10, 0.4, 0.8, 1, 5)
    assert c.diff == pytest.approx(0.4) and c.mcnemar_p == pytest.approx(mcnemar_exact(1, 5))
    assert c.diff_low <= 0.4 <= c.diff_high and c.diff_low < c.diff_high
    assert compare_paired(a, b, n_boot=2000, seed=1) == c  # seeded
    assert paired_bootstrap(a, a, n_boot=200) == (0.0, 0.0)
    assert paired_bootstrap([False] * 5, [True] * 5, n_boot=200) == (1.0, 1.0)
    with pytest.raises(ValueError, match="equally long"):
        compare_paired([True], [True, False])
