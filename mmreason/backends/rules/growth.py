"""The growth family: one lesion measured on a prior and a current study, and its change."""

from __future__ import annotations

from imaging.geometry import rescale_point
from imaging.locate import centre_to_edge
from mmreason.backends.rules.common import cannot, failed, lesion_target
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding

#: a change of at least this many mm, or `GROWTH_PCT` per cent, of the longest diameter is growth
GROWTH_MM, GROWTH_PCT = 1.0, 10.0


def plan_growth(state: State) -> Action:
    """Segment and measure the lesion on the first two volumes (prior, current); report the change.

    When the unprompted search finds nothing on the current study but found the lesion on the
    prior, the current study is looked at where the lesion was: an axial view through the prior
    lesion's centre, then a segmentation inside a box around the prior lesion's position (the
    studies share a grid), as a reader compares the same location.
    """
    r = state.results
    target = lesion_target(state)
    vols = state.volumes[:2]
    step = len(r)
    if stop := failed(state):
        return stop
    if step in (0, 2):
        vol = vols[step // 2]
        shown = state.first_view_of(vol.id)
        if shown is None:
            return cannot(f"volume {vol.id} has no view to select it with")
        when = "prior (first)" if step == 0 else "current (second)"
        if step == 2 and not r[0].fact("voxels"):
            return Action("Nothing was found on the prior study.",
                          answer=f"I cannot determine the change: no {target} was found on the prior study "
                                 f"[{r[0].evidence_id}].")
        return Action(f"I will segment the {target} on the {when} study, volume {vol.id}.", "segment",
                      {"target": target, "view_id": shown.view_id})
    if step == 3 and not r[2].fact("voxels"):
        centre = r[1].fact("centroid_voxel")
        if vols[0].shape_xyz != vols[1].shape_xyz or not centre:
            return Action("Nothing was found on the current study.",
                          answer=f"I cannot determine the change: no {target} was found on volume "
                                 f"{vols[1].id} [{r[2].evidence_id}].")
        z = int(round(centre[0]))
        return Action(f"No {target} was found by the search of the current study [{r[2].evidence_id}]; I will look "
                      f"at the slice where it was on the prior study (axial slice {z}).", "view",
                      {"volume": vols[1].id, "plane": "axial", "index": z})
    if step == 4 and r[2].fact("voxels") is not None and not r[2].fact("voxels"):
        view = r[3].images[0] if r[3].images else None
        if view is None:
            return cannot("the view of the current study came back without an image")
        _, cy, cx = r[1].fact("centroid_voxel")
        edge = (centre_to_edge(cx), centre_to_edge(cy))
        point = [round(v, 1) for v in rescale_point(edge, vols[1].shape_xyz[:2], view.size)]
        return Action(f"I will segment the {target} at its prior position, {point} on {view.view_id}.",
                      "segment", {"target": target, "view_id": view.view_id, "point_2d": point})
    segs = [x for x in r if x.name == "segment"]
    measures = [x for x in r if x.name == "measure"]
    if len(measures) < len(segs) and len(measures) < 2:
        seg = segs[-1]
        if not seg.fact("voxels"):
            return Action("Nothing was found on the current study.",
                          answer=f"I cannot determine the change: no {target} was found on volume "
                                 f"{vols[1].id} where it was on the prior study [{', '.join(state.cites())}].")
        return Action(f"I will measure it ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    m0, m1 = measures[0], measures[1]
    d0, d1 = m0.measure("longest_diameter_mm"), m1.measure("longest_diameter_mm")
    v0, v1 = m0.measure("volume_mm3"), m1.measure("volume_mm3")
    dd, pct = d1 - d0, 100.0 * (d1 - d0) / d0 if d0 else float("nan")
    vpct = 100.0 * (v1 - v0) / v0 if v0 else float("nan")
    trend = ("grew" if dd >= GROWTH_MM or pct >= GROWTH_PCT
             else "shrank" if dd <= -GROWTH_MM or pct <= -GROWTH_PCT else "is stable")
    side = m1.fact("laterality")
    cites = [m0.evidence_id, m1.evidence_id]
    where = f" (in the {side} lung)" if side in ("left", "right") and target == "nodule" else ""
    text = (f"The {target}{where} {trend}: longest axial diameter {d0:.1f} mm [{m0.evidence_id}] -> {d1:.1f} mm "
            f"[{m1.evidence_id}] ({dd:+.1f} mm, {pct:+.0f}%); volume {v0:.0f} -> {v1:.0f} mm3 ({vpct:+.0f}%).")
    asked = state.q.asked.trend
    yes = trend != "is stable" if asked == "changed" else trend == asked
    return Action("Both time points are measured.", answer=text,
                  finding=Finding([c for c in cites if c], present=yes, trend=trend, change_mm=dd, change_pct=pct,
                                  side=side, site="lung" if target == "nodule" else ""))

