"""One reader of numbers, units and citations: the verifier's verdict and the scorer's score agree."""

from __future__ import annotations

import pytest

from benchmarks.core.scoring import score_response
from mmreason.case import Case
from mmreason.quantities import (
    BASE_UNIT,
    cited_evidence,
    convert,
    dimension_of,
    parse_quantity,
    quantities_in,
    strip_citations,
    unit_key,
)
from mmreason.verifiers.measurement import stated_quantities


@pytest.mark.parametrize("written, key", [
    ("mm", "mm"), ("cm", "cm"), ("mL", "ml"), ("L", "l"), ("cm2", "cm2"), ("mm²", "mm2"), ("cm^3", "cm3"),
    ("mm³", "mm3"), ("cc", "cc"), ("HU", "hu"), ("%", "%"), ("per cent", "%"), ("millimetres", "mm"),
    ("Cubic Centimeters", "cm3"), ("Hounsfield units", "hu"), ("litre", "l"), ("px", None), ("ms", None),
])
def test_unit_keys(written, key):
    assert unit_key(written) == key


def test_conversions_between_units_of_one_dimension():
    assert convert(1.2, "cm", "mm") == pytest.approx(12.0)
    assert convert(4.1, "L", "mL") == pytest.approx(4100.0)
    assert convert(450, "mm2", "cm2") == pytest.approx(4.5)
    assert convert(-650, "HU", "HU") == -650
    assert convert(12, "mm", "mL") is None  # a length is no volume
    assert convert(12, None, "mm") == 12  # no unit written: the value as it is


def test_a_number_inside_a_word_or_citation_is_not_a_number():
    assert parse_quantity("[E2] 12 mm") == (12.0, "mm")
    assert parse_quantity("T2 lesion \u2212650 HU") == (-650.0, "hu")
    assert parse_quantity("12,500 mL") == (12500.0, "ml")
    assert parse_quantity("no number here") is None
    assert [k for _, k, _ in quantities_in("12 x 8 mm, 3 cm3 and 2 mm3", "volume")] == ["cm3", "mm3"]


def test_citations():
    text = "B. Left lung [E1, E2]; see (E3) and E4"
    assert cited_evidence(text) == ["E1", "E2", "E3", "E4"]
    assert strip_citations(text) == "B. Left lung; see and"


@pytest.mark.parametrize("answer", [
    "12.5 mm [E2]", "1.25 cm [E2]", "4.1 mL [E1, E2]", "0.0041 L", "4100 mm3", "4.1 cubic centimetres",
    "-650 HU [E3]", "\u2212650 HU", "35% [E1]", "450 mm2", "4.5 cm²",
])
def test_the_verifier_and_the_scorer_read_the_same_value(answer):
    """A verdict and a score about the same answer text rest on the same number in the same unit."""
    claims = stated_quantities(answer)
    assert len(claims) == 1, claims
    claim = claims[0]
    unit = BASE_UNIT[claim.dimension]
    case = Case(id="q", task="t", images=[], question="?", answer=f"{claim.value} {unit}", answer_type="numeric",
                unit=unit)
    score = score_response(f"<answer>{answer}</answer>", case)
    assert score.correct and score.value == pytest.approx(claim.value), (score, claim)
    assert dimension_of(unit) == (claim.dimension, 1.0)
