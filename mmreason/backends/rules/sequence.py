"""The sequence family: which MR sequence shows the lesion brightest relative to the brain."""

from __future__ import annotations

from mmreason.backends.rules.common import failed, on_volume
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding


def plan_sequence(state: State) -> Action:
    """Which MR sequence shows the lesion brightest relative to the brain (see the module docstring).

    One turn segments the hyperintense lesion on every sequence; one views, on each sequence where
    it was found, the axial slice through its centre; one measures each lesion and the whole slice;
    the answer is the sequence with the highest lesion-to-slice ratio.
    """
    r = state.results
    mr = [v for v in state.volumes if not v.is_2d]
    names = state.sequence_names()
    if not r:
        calls = [("segment", on_volume(state, v, {"target": "lesion"})) for v in mr]
        return Action("I will segment the hyperintense lesion on every sequence.", calls[0][0], calls[0][1],
                      more_calls=calls[1:])
    if stop := failed(state):
        return stop
    segs = r[:len(mr)]
    found = [(v, seg) for v, seg in zip(mr, segs) if seg.fact("voxels")]
    if not found:
        return Action("No sequence shows a hyperintense lesion.",
                      answer=f"No hyperintense lesion was found on any sequence [{', '.join(state.cites())}].",
                      finding=Finding(state.cites(), present=False, none_text="no hyperintense lesion was found"))
    views = r[len(mr):len(mr) + len(found)]
    if not views:
        calls = []
        for v, seg in found:
            (z0, z1), _, _ = seg.fact("bbox_voxels")
            calls.append(("view", {"volume": v.id, "plane": "axial", "index": (z0 + z1 - 1) // 2}))
        return Action("I will view the axial slice through the lesion on each sequence where it was found.",
                      calls[0][0], calls[0][1], more_calls=calls[1:])
    measures = r[len(mr) + len(found):]
    if not measures:
        calls = []
        for (_, seg), view in zip(found, views):
            shown = view.images[0]
            calls.append(("measure", {"evidence_id": seg.evidence_id}))
            calls.append(("measure", {"view_id": shown.view_id,
                                      "bbox_2d": [0.0, 0.0, float(shown.size[0]), float(shown.size[1])]}))
        return Action("I will measure the mean intensity of each lesion and of the whole slice through it.",
                      calls[0][0], calls[0][1], more_calls=calls[1:])
    ratios, lines = {}, []
    for k, (v, seg) in enumerate(found):
        lesion, whole = measures[2 * k], measures[2 * k + 1]
        name = names.get(v.id, f"volume {v.id}")
        ratio = (lesion.measure("mean_intensity") or 0.0) / max(whole.measure("mean_intensity") or 0.0, 1e-6)
        ratios[name] = ratio
        lines.append(f"{name}: lesion {lesion.measure('mean_intensity'):.0f} / slice "
                     f"{whole.measure('mean_intensity'):.0f} = {ratio:.2f} [{lesion.evidence_id}, {whole.evidence_id}]")
    missing = [names.get(v.id, f"volume {v.id}") for v, seg in zip(mr, segs) if not seg.fact("voxels")]
    best = max(ratios, key=ratios.get)  # type: ignore[arg-type]
    text = ("Mean intensity of the lesion relative to the whole axial slice through it: " + "; ".join(lines)
            + (f"; not hyperintense on {', '.join(missing)}" if missing else "")
            + f". The lesion is brightest relative to the brain on {best}.")
    # the comparison rests on the sequences where the lesion was found: an empty search on a T1 (whose
    # quality says a bright-lesion search does not apply there) is what the question expects, not evidence
    used = [seg for _, seg in found] + list(views) + list(measures)
    cites = [x.evidence_id for x in used if x.evidence_id]
    return Action("Every sequence is measured.", answer=text, finding=Finding(cites, label=best, words=[best]))

