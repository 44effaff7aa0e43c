"""Numbers with units, and evidence citations: one reader for the planner, the verifiers and the scorer.

A quantity is a number followed by a unit: ``12.3 mm``, ``1.2 cm``, ``450 mm2`` / ``450 mm²``,
``4.1 mL`` / ``4100 mm3`` / ``4.1 cm3`` / ``4.1 cc`` / ``0.0041 L``, ``-650 HU`` (also with the
Unicode minus), ``35%`` / ``35 percent``, and the spelled-out names (``millimetres``,
``cubic centimeters``, ``Hounsfield units`` ...). Each unit has a dimension and a factor to the
dimension's base unit (`UNITS`, `BASE_UNIT`): length mm, area mm2, volume mm3, intensity HU,
percent, ratio. A number written inside a word (the ``2`` of ``E2``) is not a number.

Citations are evidence ids as the answer format asks for them: ``[E2]``, ``(E1, E3)`` or a bare
``E2``. `cited_evidence` lists them, `strip_citations` removes them so they do not read as
content (nor as numbers).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: unit key -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 1.0), "cm": ("length", 10.0), "m": ("length", 1000.0),
    "mm2": ("area", 1.0), "cm2": ("area", 100.0),
    "mm3": ("volume", 1.0), "cm3": ("volume", 1000.0), "cc": ("volume", 1000.0), "ml": ("volume", 1000.0),
    "l": ("volume", 1e6),
    "hu": ("intensity", 1.0), "%": ("percent", 1.0), "ratio": ("ratio", 1.0),
}
BASE_UNIT = {"length": "mm", "area": "mm2", "volume": "mm3", "intensity": "HU", "percent": "%", "ratio": ""}
#: spelled-out unit names (singular, lower case) -> unit key
UNIT_NAMES = {
    "millimetre": "mm", "millimeter": "mm", "centimetre": "cm", "centimeter": "cm", "metre": "m", "meter": "m",
    "square millimetre": "mm2", "square millimeter": "mm2", "square centimetre": "cm2", "square centimeter": "cm2",
    "cubic millimetre": "mm3", "cubic millimeter": "mm3", "cubic centimetre": "cm3", "cubic centimeter": "cm3",
    "millilitre": "ml", "milliliter": "ml", "litre": "l", "liter": "l",
    "hounsfield unit": "hu", "percent": "%", "per cent": "%",
}

#: a number as written: an optional sign (``-4.9``, ``+18``, the Unicode minus), decimals with or
#: without a leading digit, an optional exponent; not the digits of a word (``E2``, ``T1``)
NUMBER = r"(?<![\w.])[-+\u2212]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
#: a unit as written (case-insensitive; spelled-out names first so ``millimetres`` is not ``m``)
UNIT = (r"(?:(?:square|cubic)\s+)?(?:milli|centi)?(?:met(?:er|re)|lit(?:er|re))s?|hounsfield\s+units?|per\s?cent|"
        r"mm(?:\^?[23]|[²³])?|cm(?:\^?[23]|[²³])?|ml|cc|hu|l|m|%")
#: a unit right after a number, up to the end of the unit's word
_UNIT_AFTER = re.compile(rf"\s*({UNIT})(?![A-Za-z0-9²³])", re.IGNORECASE)
_NUMBER = re.compile(NUMBER)
#: a number and the unit written after it: groups 1 (number) and 2 (unit)
QUANTITY = re.compile(rf"({NUMBER})\s*({UNIT})(?![A-Za-z0-9²³])", re.IGNORECASE)
_EVIDENCE_ID = re.compile(r"\bE(\d+)\b")
#: a citation: a bracketed list of ids ("[E2]", "(E1, E3)") with the space before it, or a bare id
CITATION = r"\s*[\[(]\s*E\d+(?:\s*[,;]\s*E\d+)*\s*[\])]"
_CITATION = re.compile(rf"{CITATION}|\bE\d+\b")


def unit_key(written: str) -> str | None:
    """The `UNITS` key of a unit as written (``"mm³"``, ``"cm^2"``, ``"mL"``, ``"HU"``,
    ``"millilitres"``, ``"per cent"``), or None when it is not a unit."""
    u = " ".join(written.strip().lower().replace("^", "").replace("²", "2").replace("³", "3").split())
    if u in UNITS:
        return u
    return UNIT_NAMES.get(u) or UNIT_NAMES.get(u[:-1] if u.endswith("s") else u)


def dimension_of(written: str) -> tuple[str, float] | None:
    """``(dimension, factor to the base unit)`` of a unit as written, or None."""
    key = unit_key(written)
    return UNITS[key] if key else None


def to_float(number: str) -> tuple[float, bool]:
    """The value of a number as written (`NUMBER`) and whether it carries an explicit sign."""
    text = number.replace("\u2212", "-")
    return float(text), text[0] in "+-"


def unit_after(text: str, pos: int = 0) -> tuple[str, re.Match] | None:
    """The unit key written right after position ``pos`` of ``text`` (spaces allowed), and its match."""
    m = _UNIT_AFTER.match(text, pos)
    key = unit_key(m.group(1)) if m else None
    return (key, m) if key else None


def quantities_in(text: str, dimension: str | None = None) -> Iterator[tuple[float, str, re.Match]]:
    """Every number with a unit in ``text`` (of ``dimension`` when given), in order: the value in
    the dimension's base unit (`BASE_UNIT`), the unit key as written, and the match."""
    for m in QUANTITY.finditer(text):
        key = unit_key(m.group(2))
        if key is not None and (dimension is None or UNITS[key][0] == dimension):
            yield to_float(m.group(1))[0] * UNITS[key][1], key, m


def parse_quantity(text: str) -> tuple[float, str | None] | None:
    """The first number in ``text`` and the unit key written right after it (None when there is
    none); thousands separators (``12,500 mL``) are read as such. None when there is no number."""
    text = text.replace(",", "")
    m = _NUMBER.search(text)
    if not m:
        return None
    unit = unit_after(text, m.end())
    return to_float(m.group(0))[0], unit[0] if unit else None


def convert(value: float, unit: str | None, target: str | None) -> float | None:
    """``value`` in ``unit`` expressed in ``target``; unchanged when either is not a known unit,
    None when their dimensions differ (a length is no volume)."""
    source, wanted = (dimension_of(unit) if unit else None), (dimension_of(target) if target else None)
    if source is None or wanted is None:
        return value
    if source[0] != wanted[0]:
        return None
    return value * source[1] / wanted[1]


def strip_citations(text: str) -> str:
    """``text`` without evidence citations (``[E2]``, ``(E1, E3)``, a bare ``E2``), stripped."""
    return _CITATION.sub("", text).strip()


def cited_evidence(text: str) -> list[str]:
    """Evidence ids cited in ``text`` ("[E2]", "E2", "(E1, E3)"), in order of first mention."""
    seen: list[str] = []
    for m in _EVIDENCE_ID.finditer(text):
        eid = f"E{int(m.group(1))}"
        if eid not in seen:
            seen.append(eid)
    return seen
