"""The organ-volume family: segment and measure each organ the question names."""

from __future__ import annotations

from mmreason.backends.rules.common import cannot, failed, fmt_mm, organ_name
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding


def plan_organ(state: State, organs: tuple[str, ...] | None = None) -> Action:
    """Segment and measure each of ``organs`` (default: the organ the question names, both kidneys
    for "kidneys"); report volumes and their sum."""
    organs = organs or state.q.organs or ()
    r = state.results
    missing = [o for o in organs if state.targets and o not in state.targets]
    if missing:
        return cannot(f"the segment tool has no '{missing[0]}' target with this segmenter (targets: "
                             f"{', '.join(state.targets)}); an organ segmenter such as --segmenter "
                             f"totalseg provides it")
    if state.volumes[0].is_2d:
        # one slice or a projection holds a section of the organ, not the organ: its area and
        # diameter are not the organ's volume or size
        return cannot("organ volume and size are measured on a 3-D scan, and this image is a single 2-D "
                      "slice or projection")
    if stop := failed(state):
        return stop
    step = len(r)
    if step < 2 * len(organs):
        organ = organs[step // 2]
        if step % 2 == 0:
            return Action(f"I will segment the {organ_name(organ)} in 3-D.", "segment", {"target": organ})
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot determine it: the {organ_name(organ)} was not "
                                                       f"found [{seg.evidence_id}].")
        return Action("I will measure the mask.", "measure", {"evidence_id": seg.evidence_id})
    parts, total = [], 0.0
    for k, organ in enumerate(organs):
        seg, meas = r[2 * k], r[2 * k + 1]
        vol_ml = meas.measure("volume_ml")
        size = (f"volume {vol_ml:.1f} mL ({meas.measure('volume_mm3'):.0f} mm3)" if vol_ml is not None
                else f"area {meas.measure('area_mm2'):.0f} mm2")
        total += meas.measure("volume_mm3") or 0.0
        parts.append(f"the {organ_name(organ)} {size}; longest axial diameter "
                     f"{fmt_mm(meas.measure('longest_diameter_mm'))} [{seg.evidence_id}, {meas.evidence_id}]")
    text = "; ".join(parts)
    text = text[0].upper() + text[1:] + (f"; together {total / 1000:.1f} mL." if len(organs) > 1 else ".")
    single = r[1].measure("longest_diameter_mm") if len(organs) == 1 else None
    return Action("The measurements answer the question.", answer=text,
                  finding=Finding(state.cites(), volume_mm3=total if total else None, diameter_mm=single,
                                  size_is_volume=True))

