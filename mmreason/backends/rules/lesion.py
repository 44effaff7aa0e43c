"""The lesion families: a focal lesion in 3-D CT or MR (presence, side, size), and a lesion within
an abdominal organ (the organ first, then a lesion within it).

When the segmenter returns several candidates, the planner points (``point_2d``) at the largest
one and segments again, which keeps that one component. The largest is the largest 3-D connected
component of the segment's mask by volume (mm^3), pointed at where a shown view (the overlay, else
an axial slice viewed for it) shows its voxel nearest its centroid, through `imaging.locate`; only a
served conversation, which has no mask, falls back to the largest red region of the overlay image.
Candidates on both sides are reported as bilateral, never as the side of their combined centroid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from imaging.geometry import rescale_point
from imaging.locate import centre_to_edge, voxels_on_view
from mmreason.backends.rules.common import (
    cannot,
    failed,
    fmt_mm,
    fmt_mm3,
    is_mr,
    lesion_target,
    on_volume,
    organ_name,
    search_order,
)
from mmreason.backends.rules.state import Result, Shown, State, VolumeInfo
from mmreason.backends.rules.turn import Action, Finding

#: organs searched for a focal lesion by segmenting the organ, then a lesion within it
LESION_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")
#: the share of the largest candidate on one side that the largest on the other must reach for the
#: candidates to be called bilateral (MS lesions and metastases differ in size several-fold; a
#: phantom's false finds next to a solitary nodule are a few % of it)
SIDE_SHARE = 0.1
#: how the region each lesion search covers may be named (word stems): the unprompted search covers
#: the lungs on CT and the brain on MR; the organ search its organ ("on this abdominal CT" too)
LUNG_SITES = ("lung", "pulmonary", "chest", "thora")
BRAIN_SITES = ("brain", "cerebr", "hemisphere", "head")
ORGAN_SITES = {"liver": ("liver", "hepatic"), "spleen": ("spleen", "splenic"), "kidney_left": ("kidney", "renal"),
               "kidney_right": ("kidney", "renal")}


def searched_region(state: State) -> tuple[str, tuple[str, ...]]:
    """The region the lesion search of this question covers: its name and the word stems naming it."""
    organs = state.q.organs or ()
    if state.modality() == "CT" and organs and organs[0] in LESION_ORGANS:
        return f"the {organ_name(organs[0])}", ORGAN_SITES[organs[0]] + ("abdom",)
    first = state.three_d()[:1]
    guessed = any(v.modality_assumed for v in first)
    hint = "".join(f"; {v.modality_hint}" for v in first if v.modality_hint)
    modality = f"{state.modality()}, a modality guessed from the image values{hint}" if guessed else state.modality()
    return (f"the brain ({modality})", BRAIN_SITES) if is_mr(state) else (f"the lungs ({modality})", LUNG_SITES)


def searches(state: State, order: list[VolumeInfo]) -> tuple[int, Action | None]:
    """Run the unprompted lesion search over ``order`` until one finds something.

    Returns ``(n, action)``: ``n`` leading results are empty searches, and ``action`` is the next
    search (or None when a search found something or every volume was searched).
    """
    r = state.results
    target = lesion_target(state)
    n = 0
    while n < len(r) and n + 1 < len(order) and r[n].name == "segment" and not r[n].error and not r[n].fact("voxels"):
        n += 1
    if n == len(r) and n < len(order):
        where = f" on volume {order[n].id}" + (f" ({state.sequence_names()[order[n].id]})"
                                               if order[n].id in state.sequence_names() else "")
        first = "Nothing was found there; I will search the next sequence" if n else "I will segment"
        kind = "MR" if is_mr(state) else "CT"
        return n, Action(f"{first}{where if len(order) > 1 else ''}: {target} candidates in the whole {kind} "
                         f"volume.", "segment", on_volume(state, order[n], {"target": target}))
    return n, None


def plan_lesion(state: State) -> Action:
    """Segment candidates (3-D); if several, point at the largest on the overlay; measure; crop; answer."""
    target = lesion_target(state)
    mr = is_mr(state)
    order = search_order(state)
    empty, search = searches(state, order)
    if search is not None:
        return search
    if stop := failed(state):
        return stop
    r = state.results[empty:]
    seg_all = r[0]
    site = "hemisphere" if mr else "lung"
    if not seg_all.fact("voxels"):
        region = "the brain" if mr else "the lungs"
        cites = state.cites()
        return Action("The segmenter found no candidate.",
                      answer=f"No {target} was found in {region} by the {seg_all.fact('segmenter')} segmenter "
                             f"[{', '.join(cites)}].",
                      finding=Finding(cites, present=False, none_text=f"no {target} was found", site=site))
    n = seg_all.fact("components") or 1
    focus, rest = seg_all, r[1:]
    if n > 1 and not state.q.burden:
        viewed = rest[0].images[:1] if rest and rest[0].name == "view" else []
        if viewed:  # the slice through the largest candidate, viewed to point at it
            rest = rest[1:]
        if rest and rest[0].name == "segment":
            focus, rest = rest[0], rest[1:]
        elif not rest and (pick := _pick_largest(state, seg_all, target, n, viewed)):
            return pick
    if not rest:
        return Action(f"I will measure {focus.evidence_id}.", "measure", {"evidence_id": focus.evidence_id})
    meas = rest[0]
    if len(rest) == 1 and (zoom := _zoom(state, focus, "candidate")):
        return zoom
    side = _stated_side(meas.fact("laterality")) or _stated_side(focus.fact("laterality"))
    where = ("at the midline" if side == "midline" else f"in the {side} {site}" if side
             else f"in the {site} (its side is not stated: the image orientation is assumed)")
    both = _both_sides(seg_all, n, site)
    if focus is seg_all and n > 1:
        found = f"{n} candidate regions were found, measured together: they lie {both or where}"
    elif n > 1:
        found = (f"{n} candidate regions were found [{seg_all.evidence_id}]"
                 + (f", {both}" if both else "") + f"; the largest, the {target}, is {where}")
    else:
        found = f"There is one {target} {where}"
    action = _lesion_answer(state, found, meas, side, site)
    if both and action.finding is not None:
        # a side question gets both sides: the measured one's side (or the combined centroid's) is not the answer
        action.finding.side = "bilateral"
        action.finding.leaning = side if focus is not seg_all and side in ("left", "right") else None
    return action


def _both_sides(seg: Result, n: int, site: str) -> str:
    """Where ``seg``'s ``n`` candidates lie when they count on both sides ("on both sides (2 in the
    left lung, 1 in the right, 0 at the midline)"), else "". A side counts when its largest
    candidate is at least `SIDE_SHARE` of the largest on the other: a few voxels across the
    midline do not make a solitary lesion bilateral."""
    left, right = (int(seg.fact(f"components_{s}") or 0) for s in ("left", "right"))
    sizes = [float(seg.fact(f"largest_{s}_mm3") or 0.0) for s in ("left", "right")]
    if not (left and right) or min(sizes) < SIDE_SHARE * max(sizes):
        return ""
    return f"on both sides ({left} in the left {site}, {right} in the right, {n - left - right} at the midline)"


def _pick_largest(state: State, seg: Result, target: str, n: int, viewed: list[Shown]) -> Action | None:
    """Point at the largest of ``seg``'s ``n`` candidates, to segment it alone (None: no way to point).

    With the mask: the largest 3-D component by volume, at its voxel nearest its centroid (in mm)
    on the first view showing it (a view of its slice ``viewed`` for it, the overlay, the images
    shown first); when none does, the axial slice through that voxel is viewed first. Without
    (a served conversation): the largest red region of the overlay image.
    """
    vol = next((v for v in state.volumes if v.id == str(seg.fact("volume"))), None)
    if seg.mask is not None and vol is not None:
        bounds = seg.fact("bbox_voxels") or [[0, size] for size in seg.mask.shape]
        labels, count = ndimage.label(seg.mask[tuple(slice(a, b) for a, b in bounds)])
        sizes = np.bincount(labels.ravel())[1:]
        voxels = (np.argwhere(labels == int(np.argmax(sizes)) + 1) + [a for a, _ in bounds]).astype(np.float64)
        views = [s for s in viewed + seg.images[:1] + state.shown if s.geometry is not None and s.volume == vol.id]
        spacing = np.asarray(_first_panel(views[0].geometry).spacing) if views else np.ones(3)
        from_centroid_mm = np.linalg.norm((voxels - voxels.mean(axis=0)) * spacing, axis=1)
        by_distance = voxels[np.argsort(from_centroid_mm, kind="stable")]
        ml = f"{sizes.max() * vol.voxel_mm3 / 1000:.2f} mL"
        for shown in views:
            points = voxels_on_view(shown.geometry, by_distance, frame_size=shown.size)
            on_view = np.flatnonzero(np.isfinite(points[:, 0]))
            if on_view.size:
                point = [round(float(v), 1) for v in points[on_view[0]]]
                return Action(f"{count} candidates were found; I will select the largest in 3-D ({ml}), at "
                              f"{point} on {shown.view_id}.", "segment",
                              {"target": target, "view_id": shown.view_id, "point_2d": point})
        if viewed:  # the viewed slice does not show it either: nothing left to point on
            return None
        index = int(round(by_distance[0][0]))
        return Action(f"{count} candidates were found; the largest in 3-D ({ml}) is not on the images shown, so "
                      f"I will view the axial slice {index} through it.", "view",
                      {"plane": "axial", "index": index} | ({"volume": vol.id} if len(state.volumes) > 1 else {}))
    shown = seg.images[0] if seg.images else None
    if shown is None or shown.image is None:
        return None
    point = largest_overlay_blob(np.asarray(shown.image.convert("RGB")))
    if point is None:
        return None
    # The overlay is read at its own pixel size; the tool expects the model's frame.
    point = [round(v, 1) for v in rescale_point(point, shown.image.size, shown.size)]
    return Action(f"{n} candidates were found; I will select the largest on the overlay, at {point} on "
                  f"{shown.view_id}.", "segment", {"target": target, "view_id": shown.view_id, "point_2d": point})


def _first_panel(geometry: Any) -> Any:
    """The geometry of a view's first panel (the view itself unless a montage): its voxel spacing."""
    return geometry.panels()[0].geometry


def _stated_side(side: Any) -> str | None:
    """A side the tools stated (``unknown``, from an assumed orientation, is none)."""
    return side if side in ("left", "right", "midline") else None


def _lesion_answer(state: State, found: str, meas: Result, side: str | None, site: str) -> Action:
    """The answer about a measured lesion: position, diameters, volume, mean intensity, citations."""
    cx, cy, cz = (meas.measure(f"centroid_{a}_mm") for a in "xyz")
    cites = state.cites()
    mean = meas.measure("mean_intensity")
    unit = "HU" if meas.payload.get("measurements", {}).get("mean_intensity", [0, "HU"])[1] == "HU" else "a.u."
    text = (f"{found}, centred at x={cx:+.1f}, y={cy:+.1f}, z={cz:+.1f} mm (LPS); "
            f"longest axial diameter {fmt_mm(meas.measure('longest_diameter_mm'))} x "
            f"{fmt_mm(meas.measure('perpendicular_diameter_mm'))}, volume {fmt_mm3(meas.measure('volume_mm3'))}"
            + (f", mean {mean:.0f} {unit}" if mean is not None else "") + f" [{', '.join(cites)}].")
    fraction_left = meas.fact("fraction_left")
    leaning = None if fraction_left is None else ("left" if fraction_left > 0.5 else "right")
    return Action("The measurements give the side, position and size.", answer=text,
                  finding=Finding(cites, present=True, site=site, side=side, leaning=leaning,
                                  diameter_mm=meas.measure("longest_diameter_mm"),
                                  volume_mm3=meas.measure("volume_mm3")))


def organ_search(state: State, why: str) -> Action | None:
    """The first two steps of a lesion search within the organ the question names: segment the organ
    (``why`` says what for), then the lesions within it; None once both results are in."""
    organs = state.q.organs or ("",)
    organ, r = organs[0], state.results
    name = organ_name(organ)
    if len(organs) > 1:
        return cannot(f"a lesion is searched within one organ at a time; ask about the {name} or "
                      f"the {organ_name(organs[1])}")
    if state.targets and organ not in state.targets:
        return cannot(f"the segment tool has no '{organ}' target with this segmenter")
    if not r:
        return Action(f"I will segment the {name} first, {why}.", "segment", {"target": organ})
    if stop := failed(state):
        return stop
    if not r[0].fact("voxels"):
        return Action("The organ mask is empty.",
                      answer=f"I cannot answer: the {name} was not found [{r[0].evidence_id}].")
    if len(r) == 1:
        return Action(f"I will segment a focal lesion within the {name} ({r[0].evidence_id}).", "segment",
                      {"target": "lesion", "within": r[0].evidence_id})
    return None


def plan_organ_lesion(state: State) -> Action:
    """Segment the organ the question names, then a lesion within it; measure it, show it, answer."""
    if search := organ_search(state, "to search it for a lesion"):
        return search
    r = state.results
    name = organ_name((state.q.organs or ("",))[0])
    seg = r[1]
    if not seg.fact("voxels"):
        cites = state.cites()
        return Action("Nothing in the organ differs from it.",
                      answer=f"No focal lesion was found in the {name} [{', '.join(cites)}].",
                      finding=Finding(cites, present=False, none_text=f"no focal lesion was found in the {name}"))
    if len(r) == 2:
        return Action(f"I will measure the lesion ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    meas = r[2]
    if len(r) == 3 and (zoom := _zoom(state, seg, "lesion")):
        return zoom
    n = seg.fact("components") or 1
    found = f"There is one lesion in the {name}" if n == 1 else \
        f"{n} candidate lesions were found in the {name}, measured together"
    action = _lesion_answer(state, found, meas, meas.fact("laterality"), "")
    finding = action.finding
    assert finding is not None
    finding.side = None  # the organ says where it is
    asked = state.q.asked
    if n > 1 and not state.q.burden and (asked.size or asked.diameter or asked.volume or asked.unit):
        finding.caveat = f"the {n} candidates are measured together, not one lesion alone"
    return action


def largest_overlay_blob(rgb: np.ndarray) -> list[float] | None:
    """Centre ``[x, y]`` (pixel edge frame) of the largest red region of a segment overlay image.

    The segment tool paints the mask red (fill blends (255, 48, 48) at 40 %, outline opaque), so
    red exceeds green by more than 80 inside the mask and by much less elsewhere.
    """
    red = (rgb[..., 0].astype(np.int16) - rgb[..., 1].astype(np.int16)) >= 60
    labels, n = ndimage.label(red)
    if n == 0:
        return None
    sizes = ndimage.sum(red, labels, range(1, n + 1))
    ys, xs = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return [round(centre_to_edge(float(xs.mean())), 1), round(centre_to_edge(float(ys.mean())), 1)]


def _voxel_box(vol: VolumeInfo, size: tuple[int, int], bbox_voxels: list[list[int]], scale: float,
               min_pad: float = 8.0) -> list[float]:
    """A box (pixels of an axial image of ``size`` showing ``vol``) around voxel bounds (z, y, x),
    padded on each side by ``scale`` times the region's size (at least ``min_pad`` pixels)."""
    (_, _), (y0, y1), (x0, x1) = bbox_voxels
    w, h = size
    sx, sy = w / vol.shape_xyz[0], h / vol.shape_xyz[1]
    pad_x, pad_y = max(min_pad, scale * (x1 - x0) * sx), max(min_pad, scale * (y1 - y0) * sy)
    return [round(max(0.0, x0 * sx - pad_x), 1), round(max(0.0, y0 * sy - pad_y), 1),
            round(min(float(w), x1 * sx + pad_x), 1), round(min(float(h), y1 * sy + pad_y), 1)]


def _zoom(state: State, seg: Result, what: str) -> Action | None:
    """A crop of the overlay of ``seg`` around the segmented region (None when there is no 3-D overlay)."""
    box = _overlay_box(state, seg) if seg.images and seg.fact("bbox_voxels") else None
    if box is None:
        return None
    return Action(f"I will zoom into the {what} on the overlay to show it.", "crop",
                  {"view_id": seg.images[0].view_id, "bbox_2d": box})


def _overlay_box(state: State, seg: Result) -> list[float] | None:
    """Box (overlay pixels) around the segmented region, with a margin, on the axial overlay."""
    vol = next((v for v in state.volumes if v.id == str(seg.fact("volume"))), None)
    if vol is None or vol.is_2d:
        return None
    return _voxel_box(vol, seg.images[0].size, seg.fact("bbox_voxels"), 1.0)

