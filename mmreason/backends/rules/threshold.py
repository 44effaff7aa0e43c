"""The threshold family: is a measured quantity above or below a value the question names ("Is the
nodule larger than 10 mm?", "Is the liver volume above 2000 mL?", "... below 40 HU?"), and is one
organ larger than another ("Is the right lung larger than the left?", "Which kidney is bigger?").

The structure is found and measured by its family's steps (`subject.measure_subject`); a length is a
lesion's longest axial diameter, a volume its mask's, an attenuation the mask's mean HU (CT only,
`attenuation`). An organ's length is not compared: ``measure`` gives its longest axial diameter,
not the craniocaudal span a liver or spleen size limit refers to. Two organs are compared by volume.

Every measurement has an uncertainty of its own, and a value within it of the cut-off (or two
volumes within their summed uncertainties of each other) is answered "borderline", with the value,
the cut-off and why, never a bare yes or no; a multiple-choice question is then declined:

* a diameter (`diameter_margin`): one in-plane pixel for the edge, plus how much wider the lesion is
  than the section measured when the slice of largest area lies half a slice thickness off its widest level;
* a volume (`volume_margin`): half a voxel of the mask's surface (a sphere of the same volume);
* a mean HU (`attenuation.hu_margin`): calibration plus two standard errors.
"""

from __future__ import annotations

import math

from mmreason.backends.rules.answer import fmt_length, fmt_volume
from mmreason.backends.rules.attenuation import HU_CALIBRATION, absolute_units, hu_margin, partial_volume
from mmreason.backends.rules.common import cannot, failed, organ_name
from mmreason.backends.rules.question import Cut
from mmreason.backends.rules.state import Result, State
from mmreason.backends.rules.subject import Measured, is_lesion, measure_subject
from mmreason.backends.rules.turn import Action, Finding

#: the measure result's number a cut-off of each dimension is compared with
MEASURED = {"length": "longest_diameter_mm", "volume": "volume_mm3", "intensity": "mean_intensity"}


def diameter_margin(diameter_mm: float, spacing_mm: list[float]) -> tuple[float, str]:
    """The uncertainty (mm) of a longest axial diameter on a grid of ``spacing_mm`` (z, y, x), and why.

    The edge is known to one in-plane pixel; and the axial slice of largest area may lie up to half
    a slice thickness ``t`` from the widest level: a section ``d`` long there belongs to a sphere
    ``sqrt(d^2 + t^2)`` wide.
    """
    thickness, pixel = spacing_mm[0], max(spacing_mm[1], spacing_mm[2])
    off_level = math.hypot(diameter_mm, thickness) - diameter_mm
    # the numbers of the reason are settings (slices, pixels), so the verifiers do not read them as claims
    why = (f"on {thickness:g} mm slices the section measured may lie half a slice from the widest level, and its "
           f"edge is known to one {pixel:g} mm pixel")
    return pixel + off_level, why


def volume_margin(volume_mm3: float, spacing_mm: list[float]) -> tuple[float, str]:
    """The uncertainty (mm3) of a mask's volume: half a voxel (mean edge) over the surface of a
    sphere of that volume, and why."""
    edge = sum(spacing_mm) / len(spacing_mm)
    surface = (36 * math.pi * volume_mm3 ** 2) ** (1 / 3)
    return surface * edge / 2, "a mask's edge is known to half a voxel over its surface"


def _spacing(meas: Result) -> list[float]:
    """The (z, y, x) spacing in mm a ``measure`` result was taken with."""
    return [float(v) for v in meas.fact("spacing_mm") or [1.0, 1.0, 1.0]]


def margin_of(dimension: str, value: float, meas: Result) -> tuple[float, str]:
    """The uncertainty of ``value`` (a `MEASURED` number of ``dimension``) and why."""
    spacing = _spacing(meas)
    if dimension == "length":
        return diameter_margin(value, spacing)
    if dimension == "volume":
        return volume_margin(value, spacing)
    return hu_margin(meas), (f"CT numbers are calibrated within a margin of {HU_CALIBRATION:g} HU (the ACR water "
                             f"test), plus two standard errors of the mean")


def fmt_value(dimension: str, value: float, unit: str | None) -> str:
    """A value of ``dimension`` in the unit the question wrote its cut-off in."""
    if dimension == "length":
        return fmt_length(value, "cm" if unit == "cm" else None)
    if dimension == "volume":
        return fmt_volume(value, "mm3" if unit == "mm3" else "mL")
    return f"{value:.0f} HU"


def plan_threshold(state: State) -> Action:
    """Measure the structure (or both organs of a pair) and compare with the cut-off (or each other)."""
    if state.q.pair is not None:
        return _plan_pair(state)
    cut = state.q.cut
    assert cut is not None
    if cut.dimension not in MEASURED:
        return cannot(f"it compares with {cut.written}, and the tools measure lengths, volumes and HU, not a "
                      f"{cut.dimension}")
    if cut.dimension == "intensity" and (refusal := absolute_units(state)):
        return refusal
    if cut.dimension == "length" and not is_lesion(state):
        return cannot(f"it compares an organ's length with {cut.written}: measure gives its longest axial diameter, "
                      f"not the craniocaudal span an organ size limit refers to; ask about its volume")
    step = measure_subject(state, interior=cut.dimension == "intensity")
    if not isinstance(step, Measured):
        return step
    return _against_cut(state, step, cut)


def _against_cut(state: State, subject: Measured, cut: Cut) -> Action:
    meas, found = subject.meas, subject.found
    assert found.finding is not None
    value = meas.measure(MEASURED[cut.dimension])
    if value is None:
        return cannot(f"the measurement gives no {MEASURED[cut.dimension]} to compare with {cut.written}"
                      + (" (a 2-D image has an area, not a volume)" if cut.dimension == "volume" else ""))
    margin, why = margin_of(cut.dimension, value, meas)
    measured, limit = fmt_value(cut.dimension, value, cut.unit), cut.written
    cites = list(dict.fromkeys(found.finding.cites))
    pm = fmt_value(cut.dimension, margin, cut.unit)
    # the family's own caveat (several candidates measured together) stays with the comparison
    caveats = [found.finding.caveat] + ([partial_volume(meas, subject.name)] if cut.dimension == "intensity" else [])
    relation = "above" if value > cut.value else "below"
    # the cut-off and the margin are written as such ("threshold of", "margin of"): the measurement
    # verifier checks the other numbers against the evidence
    text = (f"{found.answer} Compared with the threshold of {limit}: the {subject.name} measures {measured} "
            f"[{', '.join(cites)}], {relation} it, with a margin of +/-{pm} ({why}).")
    # the short answer names what was measured, and its side: "No" alone would deny the side a question names
    versus = f"{_label(subject)} {measured} against a threshold of {limit}"
    if abs(value - cut.value) <= margin:
        reason = f"{measured} is within the margin of +/-{pm} of the threshold of {limit}: {why}"
        finding = Finding(cites, versus=f"Borderline: {versus}", undecided=reason,
                          caveat="; ".join([reason] + [c for c in caveats if c]))
        return Action("The measured value is within its own uncertainty of the cut-off.", answer=text,
                      finding=finding)
    finding = Finding(cites, present=(value > cut.value) == cut.above, versus=versus,
                      caveat="; ".join(c for c in caveats if c))
    return Action("The measured value is clear of the cut-off.", answer=text, finding=finding)


def _label(subject: Measured) -> str:
    """What was measured, with a lesion's side: ``right lung nodule``, ``left kidney``."""
    finding = subject.found.finding
    if finding is not None and finding.side in ("left", "right"):
        return f"{finding.side} {finding.site} {subject.name}".replace("  ", " ")
    return subject.name


def _plan_pair(state: State) -> Action:
    """Segment and measure both organs; compare their volumes."""
    pair = state.q.pair
    assert pair is not None
    step = measure_subject(state, organs=(pair.first, pair.second))
    if not isinstance(step, Measured):
        return step
    if stop := failed(state):
        return stop
    r = state.results
    first, second = r[1].measure("volume_mm3"), r[3].measure("volume_mm3")
    if first is None or second is None:
        return cannot("the organs are compared by volume, and a 2-D image has areas only")
    names = organ_name(pair.first), organ_name(pair.second)
    spacing = _spacing(r[1])
    (m1, why), (m2, _) = volume_margin(first, spacing), volume_margin(second, spacing)
    cites = list(dict.fromkeys(c for c in (r[0].evidence_id, r[1].evidence_id, r[2].evidence_id,
                                           r[3].evidence_id) if c))
    v1, v2 = fmt_volume(first, "mL"), fmt_volume(second, "mL")
    text = (f"The {names[0]} measures {v1} [{r[0].evidence_id}, {r[1].evidence_id}] and the {names[1]} {v2} "
            f"[{r[2].evidence_id}, {r[3].evidence_id}]; the {names[0]}'s margin is +/-{fmt_volume(m1, 'mL')} and "
            f"the {names[1]}'s margin is +/-{fmt_volume(m2, 'mL')} ({why}).")
    versus = f"{names[0]} {v1} against {names[1]} {v2}"
    if abs(first - second) <= m1 + m2:
        reason = f"the two volumes differ by less than their summed margin of +/-{fmt_volume(m1 + m2, 'mL')}: {why}"
        return Action("The two volumes are within their uncertainty of each other.", answer=text,
                      finding=Finding(cites, versus=f"Borderline: {versus}", undecided=reason, caveat=reason))
    larger = names[0] if first > second else names[1]
    asked = larger if pair.larger else (names[1] if larger == names[0] else names[0])
    if pair.which:  # the name is the answer; the volumes are in the prose
        finding = Finding(cites, label=asked, words=[asked, asked.split()[0]])
    else:
        finding = Finding(cites, present=asked == names[0], versus=versus)
    return Action("Both volumes are measured and clear of each other.", answer=text, finding=finding)
