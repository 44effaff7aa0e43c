"""Measurement checks: numbers with units stated in a step against the measured evidence.

Claims read from prose: any number with a unit `mmreason.quantities` reads (``12.3 mm``,
``1.2 cm``, ``450 mm2``, ``4.1 mL`` / ``4100 mm3`` / ``4.1 cc`` / ``0.0041 L``, ``-650 HU``,
``35%``, spelled-out names), ``12 x 8 mm`` (both values), ``CTR 0.52`` / ``cardiothoracic ratio
of 52%``; for a numeric question (``Case.answer_type == "numeric"``) a
bare number in the answer takes the case's unit. Numbers describing acquisition or display
(spacing, slice thickness, window, level, margin, threshold ...) and coordinates
(``z=+73.0 mm``, "centred at ...") are not claims.

Each claim is converted to a base unit per dimension (mm, mm2, mm3, HU, percent, ratio) and
compared with every measured value of that dimension in the evidence the step cites (all
evidence seen so far when it cites none), plus the values derived from pairs of the same
measurement on different evidence, so "grew by 2.1 mm (+18%)" and "CTR 0.45 (110 mm / 247 mm)" are
checkable:

* an unsigned claim ("grew by 2.1 mm", "18%") is compared with the absolute difference and the
  unsigned percentage change relative to either value;
* a signed claim ("-4.9 mm", "+18%") is compared with the signed change current - prior (and
  100 * (current - prior) / prior), the earlier and later study told apart by the time rank of
  each evidence item's volume; so "-4.9 mm" for a measured growth of 4.9 mm is a mismatch. When
  the two items' order in time is unknown, either sign is accepted;
* both are compared with the smaller-to-larger ratio and with the measured values themselves.

A claim written right before a citation ("8.9 mm [E2] -> 4.0 mm [E6]") is bound to it: it is
compared with the quantities of the evidence it names (falling back to all cited evidence when
those have none of its dimension), so a number cannot pass by matching another study's value.

Centroid coordinates are positions, not sizes, and are never matched. Tolerances come from `VerifierConfig.tolerances`. A claim is correct when any
candidate is within tolerance, incorrect when candidates of its dimension exist but none is,
and unverifiable when the evidence has no value of its dimension.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from grounding.evidence import Evidence
from mmreason.quantities import (
    BASE_UNIT,
    CITATION,
    NUMBER,
    QUANTITY,
    UNITS,
    cited_evidence,
    dimension_of,
    strip_citations,
    to_float,
)
from mmreason.verifiers.context import VerifyContext
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import Check

_DIMENSIONS = re.compile(rf"({NUMBER})\s*[x×]\s*(\d+(?:\.\d+)?)\s*(mm|cm)(?![A-Za-z0-9])")
_CTR = re.compile(r"\b(?:CTR|cardio-?thoracic ratio)\b(?:\s*\(CTR\))?[\s:=~≈]*"
                  r"(?:(?:is|of|was|equals|approximately|about|roughly|measures|measured at|at)\s+)*"
                  r"(\d*\.\d+|\d+)\s*(%?)(?![\w-])", re.IGNORECASE)
#: "slice thickness 5 mm", "spacing of 0.7 mm", "window width 1500 HU": a setting just before the number
_NOT_A_CLAIM = re.compile(r"\b(spacing|thickness|window(?: width| level)?|level|margin|threshold|resolution|"
                          r"interval|increment|kernel|zoom|padding)\W*(?:(?:of|is|was|at|set to|equals|about|"
                          r"approximately)\W+){0,2}$", re.IGNORECASE)
#: "5 mm slices", "1 mm spacing", "a 10 mm margin": the number describes a setting
_SETTING_AFTER = re.compile(r"\s*(slices?|sections?|spacing|thickness|margin|window|increments?|intervals?|"
                            r"resolution|pixels?|kernel)\b", re.IGNORECASE)
#: a coordinate ("z=+73.0 mm") or a position phrase just before the number: not a size
_COORDINATE = re.compile(r"(\b[xyz]\s*[=:]\s*\+?|"
                         r"\b(centred|centered|centroid|located|position(ed)?|coordinates?)\b.*)$", re.IGNORECASE)
_POSITION_NAMES = ("centroid", "spacing", "position", "origin", "midline", "slice", "endpoint")
#: a citation right after a stated quantity: "8.9 mm [E2]", "126.0 mm (E3, E4)"
_BOUND_CITATION = re.compile(CITATION)


#: what a quantity is: a value as measured or stated, a signed change (current - prior), or the
#: magnitude of a change (absolute difference, unsigned percentage)
Kind = Literal["value", "change", "magnitude"]


@dataclass
class Quantity:
    """A value in its dimension's base unit, with where it came from.

    For a stated claim ``signed`` tells whether it was written with a sign ("-4.9 mm", "+18%").
    """

    dimension: str
    value: float
    source: str
    kind: Kind = "value"
    signed: bool = False
    #: evidence ids: for a claim, those cited right after it; for a measured value, where it came from
    evidence: tuple[str, ...] = ()


def stated_quantities(text: str, default_unit: str | None = None) -> list[Quantity]:
    """The measurement claims in ``text`` (see the module docstring)."""
    out: list[Quantity] = []
    taken: list[tuple[int, int]] = []

    def keep(start: int, end: int) -> bool:
        prefix = text[max(0, start - 30):start]
        prefix = re.split(r"(?<!\d)\.|\.(?!\d)|[;\n]", prefix)[-1]  # the same sentence (decimals kept)
        suffix = text[end:end + 25]
        if (_NOT_A_CLAIM.search(prefix) or _COORDINATE.search(prefix) or _SETTING_AFTER.match(suffix)
                or any(a < end and start < b for a, b in taken)):
            return False
        taken.append((start, end))
        return True

    for m in _CTR.finditer(text):
        value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
        if keep(m.start(), m.end()):
            out.append(Quantity("ratio", value, m.group(0).strip()))
    for m in _DIMENSIONS.finditer(text):
        dim, factor = UNITS[m.group(3)]
        if keep(m.start(), m.end()):
            out += [Quantity(dim, to_float(m.group(i))[0] * factor, m.group(0), signed=to_float(m.group(i))[1])
                    for i in (1, 2)]
    for m in QUANTITY.finditer(text):
        unit = dimension_of(m.group(2))
        if unit is not None and keep(m.start(), m.end()):
            value, signed = to_float(m.group(1))
            bound = _BOUND_CITATION.match(text, m.end())
            cites = tuple(cited_evidence(bound.group(0))) if bound else ()
            out.append(Quantity(unit[0], value * unit[1], m.group(0), signed=signed, evidence=cites))
    if not out and default_unit and dimension_of(default_unit):
        m = re.fullmatch(rf"\s*({NUMBER})\s*\.?\s*", strip_citations(text))
        if m:
            dim, factor = dimension_of(default_unit)  # type: ignore[misc]
            value, signed = to_float(m.group(1))
            out.append(Quantity(dim, value * factor, f"{m.group(1)} {default_unit}", signed=signed))
    return out


def measured_quantities(evidence: list[Evidence],
                        time_rank: Callable[[Evidence], int | None] | None = None) -> list[Quantity]:
    """Every measured size/intensity/ratio of ``evidence`` in base units, plus pairwise changes.

    Args:
        evidence: the evidence items whose measurements are candidates.
        time_rank: order in time of the study an item is about (smaller is earlier), or None when
            unknown; it decides which of a pair is the prior for signed changes. Without it (or
            when the two ranks are equal or unknown) a signed change is offered with both signs.
    """
    direct: list[tuple[str, Evidence, Quantity]] = []
    for ev in evidence:
        if ev.error:
            continue
        for name, m in ev.measurements.items():
            unit = dimension_of(m.unit)
            if unit is None or any(p in name.lower() for p in _POSITION_NAMES):
                continue
            direct.append((name, ev, Quantity(unit[0], float(m.value) * unit[1], f"{ev.id} {name} {m}",
                                              evidence=(ev.id,))))
    out = [q for _, _, q in direct]
    for (na, ea, qa), (nb, eb, qb) in combinations(direct, 2):
        if na != nb or ea is eb or qa.dimension not in ("length", "area", "volume"):
            continue
        unit = BASE_UNIT[qa.dimension]
        diff = abs(qb.value - qa.value)
        pair = (ea.id, eb.id)
        out.append(Quantity(qa.dimension, diff, f"|{eb.id} - {ea.id}| {na} = {diff:.4g} {unit}", "magnitude",
                            evidence=pair))
        for ref in (qa.value, qb.value):
            if ref > 0:
                pct = 100.0 * diff / ref
                out.append(Quantity("percent", pct, f"{na} change {ea.id}->{eb.id} {pct:.3g}%", "magnitude",
                                    evidence=pair))
        ra, rb = (time_rank(ea), time_rank(eb)) if time_rank is not None else (None, None)
        forward, backward = ((ea, qa), (eb, qb)), ((eb, qb), (ea, qa))
        if ra is None or rb is None or ra == rb:
            pairs = [forward, backward]  # which is the prior is unknown: accept either sign
        else:
            pairs = [forward if ra < rb else backward]
        for (e0, q0), (e1, q1) in pairs:
            change = q1.value - q0.value
            out.append(Quantity(qa.dimension, change, f"{na} {e0.id} -> {e1.id} {change:+.4g} {unit}", "change",
                                evidence=pair))
            if q0.value > 0:
                pct = 100.0 * change / q0.value
                out.append(Quantity("percent", pct, f"{na} change {e0.id}->{e1.id} {pct:+.3g}%", "change",
                                    evidence=pair))
        small, large = sorted((qa.value, qb.value))
        if large > 0:  # e.g. cardiothoracic ratio = cardiac width / thoracic width
            out.append(Quantity("ratio", small / large, f"{na} ratio of {ea.id} and {eb.id} {small / large:.3g}",
                                evidence=pair))
    return out


def check_measurements(ctx: VerifyContext, step: Step) -> list[Check]:
    if step.kind == "tool_call":
        return []
    default_unit = None
    if step.kind == "answer" and ctx.case is not None and ctx.case.answer_type == "numeric":
        default_unit = ctx.case.unit
    claims = stated_quantities(_without_quoted_caveats(step.text, ctx.available(step)), default_unit)
    if not claims:
        return []
    evidence = ctx.cited_or_available(step)
    measured = measured_quantities(evidence, lambda ev: _time_rank(ctx, ev))
    ids = [e.id for e in evidence]
    checks = []
    for claim in claims:
        tol = ctx.config.tolerances[claim.dimension]
        # a signed claim states a change (current - prior), an unsigned one its magnitude
        wrong_kind = "magnitude" if claim.signed else "change"
        candidates = [q for q in measured if q.dimension == claim.dimension and q.kind != wrong_kind]
        bound = [q for q in candidates if set(q.evidence) & set(claim.evidence)]
        candidates = bound or candidates
        if not candidates:
            checks.append(Check("unverifiable", f"'{claim.source}': no measured {claim.dimension} in the evidence"))
            continue
        matches = [q for q in candidates if tol.accepts(claim.value, q.value)]
        match = min(matches, key=lambda q: abs(q.value - claim.value)) if matches else None
        if match is not None:
            checks.append(Check("correct", f"'{claim.source}' matches {match.source}", None, ids))
        else:
            shown = ", ".join(q.source for q in candidates[:4])
            checks.append(Check("incorrect", f"'{claim.source}' does not match the measured {shown}",
                                "measurement_mismatch", ids))
    return checks


def _without_quoted_caveats(text: str, evidence: list[Evidence]) -> str:
    """``text`` with the evidence's own quality reasons blanked out: a caveat repeats why a tool
    doubts itself ("on 5 mm slices (thicker than 3 mm) ..."), and its numbers are the tool's
    settings, not the step's claims."""
    for reason in {r for ev in evidence for r in ev.quality.reasons if len(r) > 12}:
        text = text.replace(reason, " " * len(reason))
    return text


def _time_rank(ctx: VerifyContext, ev: Evidence) -> int | None:
    volume = ctx.volume_of(ev)
    return ctx.time_rank(volume) if volume is not None else None
