"""``segment``: a mask of a named structure or of a prompted region, with an overlay view.

The segmenter backend is the context's (``context.segmenter``, options in
``context.options["segmenter_options"]``). Boxes and points drawn on a view are mapped into voxel
prompts through the view's geometry; on a projection (MIP) a box covers every depth. Masks are
cached per (volume, segmenter, target, prompt, mode) in ``context.cache``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from grounding.evidence import Evidence, Measurement
from grounding.measurements import (
    SIDED_SUFFIXES,
    body_midline_x_mm,
    centroid_voxel,
    component_sides,
    laterality,
    mask_bbox,
    side_text,
    side_withheld,
)
from grounding.plausibility import (
    BRIGHT_LESION_SEQUENCES,
    CT_TARGETS,
    GROUND_GLASS_MIN_HU,
    SOLID_MIN_HU,
    FieldCut,
    fact_quality,
    lung_pair_quality,
    lung_scale_quality,
    missed_mass_quality,
    negative_quality,
    radiograph_quality,
    radiograph_view_quality,
    sequence_quality,
    structure_quality,
    touches_field_edge,
)
from grounding.quality import Quality
from grounding.segmenters import TARGETS, Prompt, SegmentationError, Segmenter, get_segmenter
from grounding.segmenters.agreement import assess_agreement
from grounding.segmenters.masses import MASS_MIN_DIAMETER_MM, ball_diameter_mm
from grounding.tool import Tool, ToolContext, ToolError
from grounding.tools.regions import (
    BBOX_SCHEMA,
    POINT_SCHEMA,
    VIEW_ID_SCHEMA,
    fmt_slices,
    resolve_box,
    resolve_point,
    view_slice_index,
)
from imaging.geometry import ViewGeometry
from imaging.views import PLANES, View, plane_geometry, render, sample_plane
from imaging.volume import Volume
from imaging.windowing import PRESETS, display_window

MODES = ("3d", "2d")
#: overlay colour (RGB) and opacity of the mask fill; the outline is drawn opaque
OVERLAY_RGB = (255, 48, 48)
OVERLAY_ALPHA = 0.4
#: how far apart the lower ends of two whole lungs may lie: the right dome sits 1-3 cm above the left
DOME_HEIGHT_MM = 40.0


def _description(targets: dict[str, str]) -> str:
    listed = "; ".join(f"{k}: {v}" for k, v in targets.items())
    return (
        "Segment a structure and get its mask, size, extent and side, plus an overlay image "
        "(the mask in red). Name a target, or prompt with a box (bbox_2d) or a point (point_2d) "
        "drawn on a view (view_id), or both; 'within' (an earlier segment result's evidence id) confines the "
        "search to that mask, e.g. a lesion within the liver. mode '3d' segments the whole volume (default for "
        "CT/MR); '2d' segments only the slice shown in view_id (2-D images are always 2d). The result's "
        "evidence id can be passed to measure. The classical segmenter's liver, spleen and kidneys on CT are a "
        "heuristic: HU bands read from the scan (fat edge, contrast phase from the aorta and liver) and position "
        "relative to body, spine and lungs; it handles plain, arterial and portal-venous CT, partial coverage "
        "and any slice thickness, but not fatty liver, situs inversus, organs far from their usual place or "
        "touching at the same HU without a constriction (pancreas and bowel may join the liver); on plain CT "
        "the spleen and kidneys are often mis-found (their result is doubtful where it cannot tell them "
        "apart); an organ it does not find is an error, not an absence. The classical MR 'lesion' search looks for "
        "lesions brighter than the brain (FLAIR or T2): on a T1 it does not apply, on T1 with contrast only "
        "enhancing lesions are seen, and on a scan whose sequence is not named 'nothing found' is doubtful. "
        f"Targets: {listed}."
    )


def _parameters(targets: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "target": {"type": "string", "enum": list(targets),
                       "description": "Structure to segment (see the list above)."},
            "view_id": {**VIEW_ID_SCHEMA,
                        "description": "View the box or point is drawn on (and, for mode '2d', the slice)."},
            "bbox_2d": {**BBOX_SCHEMA, "description": "Optional box prompt around the object: "
                        + BBOX_SCHEMA["description"]},
            "point_2d": {**POINT_SCHEMA, "description": "Optional point prompt on the object: "
                         + POINT_SCHEMA["description"]},
            "mode": {"type": "string", "enum": list(MODES),
                     "description": "'3d' (whole volume) or '2d' (the slice of view_id only)."},
            "within": {"type": "string", "description": "Optional evidence id of an earlier segment result, "
                       "e.g. 'E1': search only inside its mask (a lesion within the liver)."},
        },
        "required": [],
        "additionalProperties": False,
    }


def run_segment(
    context: ToolContext,
    target: str | None = None,
    view_id: str | None = None,
    bbox_2d: list[float] | None = None,
    point_2d: list[float] | None = None,
    mode: str | None = None,
    within: str | None = None,
    known_targets: tuple[str, ...] = tuple(TARGETS),
) -> Evidence:
    """Segment ``target`` and/or the prompted region; see `_description` for the contract.

    ``known_targets`` (bound by `segment_tool`) only words the error for a call without either.
    """
    if target is None and bbox_2d is None and point_2d is None:
        raise ToolError(f"give a target (one of: {', '.join(known_targets)}) or a view_id with a bbox_2d or "
                        f"point_2d prompt")
    if (bbox_2d is not None or point_2d is not None) and view_id is None:
        raise ToolError("bbox_2d and point_2d are pixels of a view: also give the view_id they were drawn on")
    prompt_geom: ViewGeometry | None = None
    box_zyx = point_zyx = None
    notes = ""
    if bbox_2d is not None:
        region = resolve_box(context, view_id, bbox_2d)  # type: ignore[arg-type]
        volume_id, vol, prompt_geom, box_zyx = region.volume_id, region.volume, region.geometry, region.voxels
        notes += region.clamp_note(bbox_2d)
    if point_2d is not None:
        _, volume_id, vol, geom, point = resolve_point(context, view_id, point_2d)  # type: ignore[arg-type]
        prompt_geom = prompt_geom or geom
        point_zyx = tuple(float(v) for v in point)
    within_ev = _within_evidence(context, within) if within is not None else None
    if prompt_geom is None:
        if view_id is not None:
            view = context.get_view(view_id)
            volume_id, vol = context.volume_of(view)
            panels = view.geometry.panels()
            if len(panels) == 1:  # a montage's panel is known only from a prompt drawn in it
                prompt_geom = panels[0].geometry
        else:
            volume_id, vol = context.get_volume(within_ev.mask_volume if within_ev is not None else None)
    if within_ev is not None and within_ev.mask_volume != volume_id:
        raise ToolError(f"{within} is a mask of volume {within_ev.mask_volume}, not of volume {volume_id}; "
                        f"segment the region on the same volume first")
    if target is not None and target.endswith(SIDED_SUFFIXES) and side_withheld(vol):
        raise ToolError(f"cannot segment '{target}': {side_withheld(vol)}. Segment the structure without a side "
                        f"(e.g. 'lungs') instead; its side will not be stated either")
    mode = "2d" if vol.is_2d else (mode or "3d")
    plane = _plane_of(vol, mode, prompt_geom, view_id)
    if mode == "3d":
        axis_info = view_slice_index(prompt_geom) if prompt_geom is not None else None
        prompt = Prompt(box_zyx=box_zyx, point_zyx=point_zyx, plane_axis=axis_info[0] if axis_info else None)
    else:
        prompt = _prompt_in_plane(box_zyx, point_zyx, plane)
    if within_ev is not None:
        in_plane = plane is not None and not vol.is_2d
        prompt.within = np.take(within_ev.mask, plane[1], axis=plane[0])[None] if in_plane else within_ev.mask
        notes += f" Searched within {within}."
    has_prompt = box_zyx is not None or point_zyx is not None or within_ev is not None
    result, cached = _segment_cached(context, volume_id, vol, target, prompt if has_prompt else None, mode, plane,
                                     within)
    mask = result.mask
    if within_ev is not None:
        mask = mask & within_ev.mask  # every backend's result stays inside the region
    if result.second is not None and within_ev is not None:
        result = replace(result, second=(result.second[0], result.second[1] & within_ev.mask))
    return _evidence(context, volume_id, vol, mask, target, mode, plane, prompt if has_prompt else None,
                     view_id, cached, notes, result)


def _within_evidence(context: ToolContext, evidence_id: str) -> Evidence:
    """The segment evidence whose mask a search is confined to."""
    ev = context.find(evidence_id)
    if ev is None or ev.mask is None:
        with_masks = [e.id for e in context.evidence if e.mask is not None]
        raise ToolError(f"'within' must be the id of a segment result with a mask; evidence with a mask: "
                        f"{', '.join(with_masks) or 'none yet (segment the region first)'}")
    if not ev.mask.any():
        raise ToolError(f"{evidence_id} found nothing (empty mask), so there is nowhere to search within")
    return ev


def _plane_of(vol: Volume, mode: str, geom: ViewGeometry | None, view_id: str | None) -> tuple[int, int] | None:
    """(normal axis, slice index) segmented in 2d mode; None in 3d mode."""
    if vol.is_2d:
        return 0, 0
    if mode == "3d":
        return None
    if geom is None:
        raise ToolError("mode '2d' segments the slice of a view: give the view_id of a slice view "
                        "(for a montage, draw a bbox_2d or point_2d inside one panel)")
    plane = view_slice_index(geom)
    if plane is None:
        raise ToolError(f"view {view_id} is a projection, not a slice, so mode '2d' has no slice to segment; "
                        f"use mode '3d' or view a slice first")
    return plane


def _prompt_in_plane(box_zyx: tuple[slice, ...] | None, point_zyx: tuple[float, ...] | None,
                     plane: tuple[int, int] | None) -> Prompt:
    """Re-index a prompt on the full volume into the single-slice volume of `_plane_volume`."""
    axis = plane[0] if plane else 0
    keep = [a for a in range(3) if a != axis]
    box = (slice(0, 1), box_zyx[keep[0]], box_zyx[keep[1]]) if box_zyx is not None else None
    point = (0.0, point_zyx[keep[0]], point_zyx[keep[1]]) if point_zyx is not None else None
    return Prompt(box_zyx=box, point_zyx=point, plane_axis=0)


def _plane_volume(vol: Volume, axis: int, k: int) -> Volume:
    """Slice ``k`` along ``axis`` as a one-slice volume (1, a, b), keeping its mm geometry.

    The remaining two axes keep their order; the affine maps the new indices to the same
    patient coordinates as the original voxels.
    """
    keep = [a for a in range(3) if a != axis]
    a = vol.affine
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = a[:3, axis], a[:3, keep[0]], a[:3, keep[1]]
    affine[:3, 3] = a[:3, 3] + k * a[:3, axis]
    spacing = (vol.spacing[axis], vol.spacing[keep[0]], vol.spacing[keep[1]])
    return Volume(data=np.take(vol.data, k, axis=axis)[None], spacing=spacing, affine=affine,
                  modality=vol.modality, metadata=vol.metadata, name=vol.name)


def segmenter_for(context: ToolContext) -> Segmenter:
    """The context's segmenter backend, built once per episode (model weights load once).

    Raises:
        SegmentationError: the backend cannot start (unknown name, missing package or checkpoint).
    """
    if context.segmenter_instance is not None:
        return context.segmenter_instance
    options = dict(context.options.get("segmenter_options", {}))
    key = f"segmenter|{context.segmenter}|{sorted(options.items())!r}"
    if key not in context.cache:
        context.cache[key] = get_segmenter(context.segmenter, **options)
    return context.cache[key]


@dataclass
class SegmentResult:
    """A mask and who made it: ``segmenter`` (for ``auto``, the one it chose, with ``reason``) and,
    when a second segmenter segmented the same request, its name and mask (``second``)."""

    mask: np.ndarray
    segmenter: str
    reason: str | None = None
    second: tuple[str, np.ndarray] | None = None


def _on_grid(sub: np.ndarray, vol: Volume, plane: tuple[int, int] | None) -> np.ndarray:
    """A segmenter's mask of the segmented (sub-)volume placed on the whole volume's grid."""
    sub = np.asarray(sub, dtype=bool)
    if plane is None or vol.is_2d:
        return sub
    axis, k = plane
    mask = np.zeros(vol.shape, dtype=bool)
    index: list[Any] = [slice(None)] * 3
    index[axis] = k
    mask[tuple(index)] = sub.reshape(mask[tuple(index)].shape)
    return mask


def _segment_cached(context: ToolContext, volume_id: str, vol: Volume, target: str | None,
                    prompt: Prompt | None, mode: str, plane: tuple[int, int] | None,
                    within: str | None = None) -> tuple[SegmentResult, bool]:
    key = f"segment|{context.segmenter}|{volume_id}|{target}|{mode}|{plane}|{_prompt_key(prompt)}|{within}"
    if key in context.cache:
        return context.cache[key], True
    try:
        segmenter = segmenter_for(context)
        source = vol if plane is None or vol.is_2d else _plane_volume(vol, *plane)
        mask = _on_grid(segmenter.segment(source, target=target, prompt=prompt), vol, plane)
    except SegmentationError as exc:
        raise ToolError(str(exc)) from None
    if mask.shape != vol.shape:
        raise ToolError(f"segmenter '{context.segmenter}' returned a mask of shape {mask.shape} for a volume "
                        f"of shape {vol.shape}; this is a bug in the segmenter")
    choice = getattr(segmenter, "last_choice", None)
    second = getattr(segmenter, "last_cross_check", None)
    result = SegmentResult(mask=mask, segmenter=choice.segmenter if choice else segmenter.name,
                           reason=choice.reason if choice else None,
                           second=(second[0], _on_grid(second[1], vol, plane)) if second else None)
    context.cache[key] = result
    return result, False


def _prompt_key(prompt: Prompt | None) -> str:
    if prompt is None:
        return "none"
    box = None if prompt.box_zyx is None else [(s.start, s.stop) for s in prompt.box_zyx]
    point = None if prompt.point_zyx is None else [round(v, 2) for v in prompt.point_zyx]
    return f"{box}|{point}|{prompt.plane_axis}"


def _evidence(context: ToolContext, volume_id: str, vol: Volume, mask: np.ndarray, target: str | None,
              mode: str, plane: tuple[int, int] | None, prompt: Prompt | None, view_id: str | None,
              cached: bool, notes: str, result: SegmentResult) -> Evidence:
    what = f"'{target}'" if target else "the prompted object"
    if prompt is not None and target and (prompt.box_zyx is not None or prompt.point_zyx is not None):
        what += " in the prompted region"
    where = "" if plane is None or vol.is_2d else f" on {PLANES[plane[0]]} slice {plane[1]}"
    used = result.segmenter
    data: dict[str, Any] = {"target": target, "mode": mode, "segmenter": used, "volume": volume_id, "cached": cached,
                            "plane_axis": None if plane is None else plane[0],
                            "slice_index": None if plane is None else plane[1],
                            "prompt": _prompt_dict(prompt)}
    if used != context.segmenter:
        data["segmenter_requested"] = context.segmenter
    if result.reason:
        data["segmenter_reason"] = result.reason
        notes = f" Segmenter: {used}, chosen by {context.segmenter} because {result.reason}.{notes}"
    voxels = int(np.count_nonzero(mask))
    data["voxels"] = voxels
    ev = Evidence(id="", tool="segment", arguments={}, text="", mask=mask, mask_volume=volume_id, data=data)
    if voxels == 0:
        searched = _searched(context, volume_id, vol, target, prompt)
        data["searched"] = searched
        ev.quality = negative_quality(vol, searched, searched.pop("region_quality", None))
        if lungs := searched.get("lung_mask_ml"):  # nothing found is smaller than a mass a shrunken lung may hide
            ev.quality.merge(missed_mass_quality(lungs["lung_right"], lungs["lung_left"], 0.0, MASS_MIN_DIAMETER_MM,
                                                 cut=bool(searched.get("region_cut"))))
        _check_sequence(ev.quality, context, vol, target, result.segmenter, found=False)
        _flag_weak_search(ev.quality, context, vol, target, prompt)
        if target in ("lung_left", "lung_right") and prompt is None and mode == "3d":
            other = _lung_ml(context, volume_id, vol, "lung_right" if target == "lung_left" else "lung_left")
            if other:  # one lung without the other: the split, not the patient, is at fault
                ev.quality.merge(lung_pair_quality(0.0, other) if target == "lung_right"
                                 else lung_pair_quality(other, 0.0))
        notes += _cross_check(ev, vol, result)
        ev.text = ev.summary = (f"Nothing found for {what}{where} ({mode.upper()}, {used} segmenter): the mask "
                                f"is empty. Searched: {searched['what']}. Try another target, a box around the "
                                f"object, or a different slice.{notes} {ev.quality.describe()}.")
        return ev
    bbox = mask_bbox(mask)
    n_components = ndimage.label(mask[bbox])[1]
    spacing = np.asarray(vol.spacing)
    extent_mm = [float((s.stop - s.start) * spacing[a]) for a, s in enumerate(bbox)]  # z, y, x
    cz = centroid_voxel(mask, bbox)
    centroid = vol.voxel_to_world([cz])[0]
    midline, _ = body_midline_x_mm(vol, int(round(cz[0])))
    side, fraction_left = laterality(mask, vol, midline, float(centroid[0]), bbox)
    withheld = side_withheld(vol)
    if withheld:
        side, fraction_left = "unknown", None
    elif n_components > 1:  # each lesion has its side; their combined centroid may lie on none of them
        sides = component_sides(mask, vol, midline, bbox)
        for s in ("left", "right", "midline"):
            data[f"components_{s}"] = sum(1 for side, _ in sides if side == s)
        for s in ("left", "right"):  # how much lies on each side: a few voxels there are not a lesion there
            data[f"largest_{s}_mm3"] = round(max((n for side, n in sides if side == s), default=0)
                                             * vol.voxel_volume_mm3, 1)
    if mode == "3d":
        vol_mm3 = voxels * vol.voxel_volume_mm3
        ev.measurements = {"volume_mm3": Measurement(vol_mm3, "mm3"), "volume_ml": Measurement(vol_mm3 / 1000, "mL")}
        size = f"{vol_mm3 / 1000:.2f} mL ({vol_mm3:.0f} mm3)"
        dims = f"{extent_mm[2]:.1f} x {extent_mm[1]:.1f} x {extent_mm[0]:.1f} mm (x, y, z)"
    else:
        keep = [a for a in range(3) if a != plane[0]]  # type: ignore[index]
        area = voxels * vol.pixel_area_mm2(plane[0])  # type: ignore[index]
        ev.measurements = {"area_mm2": Measurement(area, "mm2")}
        size = f"{area:.1f} mm2"
        dims = " x ".join(f"{extent_mm[a]:.1f}" for a in reversed(keep)) + " mm"
    overlay = _overlay(vol, mask, plane, context.views.get(view_id or ""), volume_id, what)
    overlay_id = context.add_view(overlay)
    ev.views = [overlay]
    data.update({"bbox_voxels": [[s.start, s.stop] for s in bbox], "extent_mm_zyx": extent_mm,
                 "components": int(n_components), "laterality": side, "overlay_view_id": overlay_id,
                 "centroid_mm": [round(float(v), 3) for v in centroid]})
    side_words = side_text(side, fraction_left, withheld)
    if data.get("components_left") and data.get("components_right"):
        side_words += (f" (its components lie on both sides: {data['components_left']} left, "
                       f"{data['components_right']} right, {data['components_midline']} at the midline)")
    ev.quality, cut = _assess(context, volume_id, vol, target, mask, bbox, side, mode, prompt, used)
    if cut:
        data["field_cut"] = cut.to_dict()
    _check_sequence(ev.quality, context, vol, target, used, found=True)
    _flag_weak_search(ev.quality, context, vol, target, prompt)
    notes += _cross_check(ev, vol, result)
    where_px = (f"rows {bbox[1].start}-{bbox[1].stop - 1}, columns {bbox[2].start}-{bbox[2].stop - 1}"
                if vol.is_2d else f"voxels {fmt_slices(bbox)}")
    found = (f"Segmented {what}{where} ({mode.upper()}, {used} segmenter): {size}, "
             f"{n_components} connected component(s), extent {dims}, {where_px}; {side_words}.")
    after = f"{notes} {ev.quality.describe()}."
    # the overlay's view id means something only inside the episode: the summary leaves it out
    ev.text = f"{found} Overlay {overlay_id}: {overlay.description}.{after}"
    ev.summary = found + after
    return ev


def _assess(context: ToolContext, volume_id: str, vol: Volume, target: str | None, mask: np.ndarray,
            bbox: tuple[slice, slice, slice], side: str, mode: str, prompt: Prompt | None,
            used: str) -> tuple[Quality, FieldCut]:
    """The quality of a non-empty segmentation by segmenter ``used`` (see `grounding.plausibility`), and
    where the field of view cuts it (a whole named structure only)."""
    # the classical search reads values as the modality says: HU bands on CT, a hyperintense
    # lesion (FLAIR/T2) otherwise, so a guessed modality (sequence unknown) is held against both
    by_values = used == "classical" and (target in CT_TARGETS and vol.modality == "CT" or target == "lesion")
    q = fact_quality(vol, uses_side=True, uses_hu=by_values)
    whole = mode == "3d" and prompt is None and target is not None
    sub = mask[bbox]
    step = max(1, int(round((sub.size / 2_000_000) ** (1 / 3))))  # sampled mean: lungs are large
    values = vol.data[bbox][::step, ::step, ::step][sub[::step, ::step, ::step]]
    mean_hu = float(values.mean()) if values.size else None
    solid_share = float(np.mean(values >= SOLID_MIN_HU)) if values.size else None
    opaque_share = float(np.mean(values >= GROUND_GLASS_MIN_HU)) if values.size else None
    volume_ml = _mask_ml(sub, vol) if mode == "3d" else None
    cut = touches_field_edge(mask, bbox, vol) if whole else FieldCut()
    q.merge(structure_quality(vol, target, volume_ml=volume_ml, side=side if not vol.is_2d else None,
                              mean_hu=mean_hu, cut_at=cut, whole_target=whole, solid_share=solid_share,
                              opaque_share=opaque_share))
    if vol.is_2d and vol.modality == "XR" and prompt is None:
        q.merge(radiograph_quality(target, mask, vol.data))
        q.merge(radiograph_view_quality(vol, target))
    if whole and target in ("nodule", "lesion") and vol.modality == "CT" and not vol.is_2d:
        lungs, lungs_cut = _lung_region(context, volume_id, vol)
        if lungs:
            q.merge(lung_scale_quality(sum(lungs.values()), lungs_cut))
        if len(lungs) == 2:
            q.merge(missed_mass_quality(lungs["lung_right"], lungs["lung_left"], _largest_mm(sub, vol),
                                        MASS_MIN_DIAMETER_MM, cut=lungs_cut.through_slices))
    if whole and target in ("lung_left", "lung_right") and volume_ml is not None:
        other_mask = _lung_mask(context, volume_id, vol, "lung_right" if target == "lung_left" else "lung_left")
        if other_mask is not None:
            other = _mask_ml(other_mask, vol)
            right, left = (volume_ml, other) if target == "lung_right" else (other, volume_ml)
            bases = cut.through_slices and _bases_shown(mask, other_mask, vol.spacing[0])
            q.merge(lung_pair_quality(right, left, cut=bases))
    return q, cut


def _largest_mm(mask: np.ndarray, vol: Volume) -> float:
    """The diameter (mm) of a ball of the volume of ``mask``'s largest 3-D component."""
    labels, n = ndimage.label(mask)
    voxels = np.bincount(labels.ravel())[1:].max() if n else 0
    return float(ball_diameter_mm(voxels, vol.voxel_volume_mm3))


def _bases_shown(mask: np.ndarray, other: np.ndarray, slice_mm: float) -> bool:
    """Whether two lungs the scan range cuts end low within `DOME_HEIGHT_MM` of each other: then
    the parts shown differ by the heights of the two domes, not by a lost piece (a lung whose
    lower part was lost ends far above the other)."""
    ends = [np.flatnonzero(m.any(axis=(1, 2))) for m in (mask, other)]
    if any(e.size == 0 for e in ends):
        return False
    return abs(int(ends[0][0]) - int(ends[1][0])) * slice_mm <= DOME_HEIGHT_MM


def _flag_weak_search(quality: Quality, context: ToolContext, vol: Volume, target: str | None,
                      prompt: Prompt | None) -> None:
    """A search its segmenter says is weak on this volume (e.g. thick slices, or a nodule it found
    or rejected on a borderline test) is at best doubtful, found something or not: what it did not
    search may hold another lesion, and what it found may be a vessel."""
    for weak in getattr(segmenter_for(context), "search_weakness", lambda v, t, p: [])(vol, target, prompt):
        quality.flag("doubtful", weak)


def _check_sequence(quality: Quality, context: ToolContext, vol: Volume, target: str | None, used: str,
                    found: bool) -> None:
    """The classical MR lesion search looks for bright lesions: held against the sequence
    (`sequence_quality`) and against the image's own contrast, which decides an unnamed sequence
    and catches a T1 named FLAIR/T2 (a mislabelled series, a wrong ``--sequence``)."""
    if used != "classical" or target != "lesion" or vol.modality != "MR":
        return
    contrast = None
    if vol.facts["sequence"].assumed or vol.facts["sequence"].value in BRIGHT_LESION_SEQUENCES:
        contrast = getattr(segmenter_for(context), "mr_contrast", lambda v: None)(vol)
    quality.merge(sequence_quality(vol, found=found, weighting=contrast.weighting if contrast else None,
                                   contrast=contrast.describe() if contrast else ""))


def _lung_mask(context: ToolContext, volume_id: str, vol: Volume, target: str) -> np.ndarray | None:
    """One lung's mask from the same segmenter (cached), None when it cannot say."""
    try:
        result, _ = _segment_cached(context, volume_id, vol, target, None, "3d", None)
    except ToolError:
        return None
    return result.mask


def _lung_ml(context: ToolContext, volume_id: str, vol: Volume, target: str) -> float | None:
    """Volume (mL) of one lung from the same segmenter (cached), None when it cannot say."""
    mask = _lung_mask(context, volume_id, vol, target)
    return None if mask is None else _mask_ml(mask, vol)


def _mask_ml(mask: np.ndarray, vol: Volume) -> float:
    return float(np.count_nonzero(mask)) * vol.voxel_volume_mm3 / 1000.0


def _searched(context: ToolContext, volume_id: str, vol: Volume, target: str | None,
              prompt: Prompt | None) -> dict[str, Any]:
    """What an empty search covered, and the quality of the region it searched (lung mask)."""
    segmenter = segmenter_for(context)
    what = getattr(segmenter, "search_description", lambda t, p: None)(target, prompt)
    out: dict[str, Any] = {"what": what or (f"'{target}' over the whole volume" if prompt is None
                                            else f"'{target}' inside the prompt")}
    if target in ("nodule", "lesion") and prompt is None and vol.modality == "CT":
        lungs, cut = _lung_region(context, volume_id, vol)
        if cut:
            out["region_cut"] = cut.describe()
        if len(lungs) == 2:
            region = lung_pair_quality(lungs["lung_right"], lungs["lung_left"])
            total = sum(lungs.values())
            region.merge(structure_quality(vol, "lungs", volume_ml=total, side=None, mean_hu=None, cut_at=FieldCut(),
                                           whole_target=True))
            out["lung_mask_ml"] = {k: round(v, 1) for k, v in lungs.items()}
            out["what"] += f" (lung mask {total:.0f} mL: right {lungs['lung_right']:.0f}, left {lungs['lung_left']:.0f})"
            out["region_quality"] = region
        else:
            out["region_quality"] = Quality("doubtful", ["no lung mask was found to search in"])
    return out


def _lung_region(context: ToolContext, volume_id: str, vol: Volume) -> tuple[dict[str, float], FieldCut]:
    """The volume (mL) of each lung the same segmenter finds (cached; a lung it cannot find is left
    out), and where the scan's field cuts either of them (`touches_field_edge`)."""
    masks = {side: _lung_mask(context, volume_id, vol, side) for side in ("lung_right", "lung_left")}
    lungs = {side: _mask_ml(m, vol) for side, m in masks.items() if m is not None}
    cuts = [touches_field_edge(m, box, vol) for m in masks.values() if m is not None and (box := mask_bbox(m)) is not None]
    cut = FieldCut(first_slice=any(c.first_slice for c in cuts), last_slice=any(c.last_slice for c in cuts),
                   image_border=any(c.image_border for c in cuts))
    return lungs, cut


def _cross_check(ev: Evidence, vol: Volume, result: SegmentResult) -> str:
    """Agreement with a second segmenter's mask into ``ev`` (data and quality); the sentence for its text."""
    if result.second is None:
        return ""
    other, other_mask = result.second
    record = assess_agreement(ev, other_mask, other, vol.voxel_volume_mm3)
    ratio = "n/a" if record["volume_ratio"] is None else f"{record['volume_ratio']:.2f}"
    return f" Cross-check with the {other} segmenter: Dice {record['dice']:.2f}, volume ratio {ratio}."


def _prompt_dict(prompt: Prompt | None) -> dict[str, Any] | None:
    if prompt is None:
        return None
    return {"box_zyx": None if prompt.box_zyx is None else [[s.start, s.stop] for s in prompt.box_zyx],
            "point_zyx": None if prompt.point_zyx is None else [float(v) for v in prompt.point_zyx],
            "plane_axis": prompt.plane_axis, "within": prompt.within is not None}


def _overlay(vol: Volume, mask: np.ndarray, plane: tuple[int, int] | None, view: View | None,
             volume_id: str, what: str) -> View:
    """The mask in colour over a full slice: the segmented slice (2d) or the axial slice of largest area."""
    if plane is None:
        axis, k = 0, int(np.argmax(np.count_nonzero(mask, axis=(1, 2))))
    else:
        axis, k = plane
    geom = plane_geometry(vol, PLANES[axis], k, volume_id=volume_id)
    # the window of the view the call named, else the study's own: an overlay beside
    # lung-window views must not switch to soft tissue and turn the lungs black
    window = view.window if view is not None and view.window in PRESETS else display_window(vol.modality, vol.data)
    base = render(vol, geom, window, plane=PLANES[axis])
    # sample only the one slice the overlay shows (a float copy of a whole CT mask is large)
    origin = list(geom.origin)
    origin[axis] = 0.0
    inside = sample_plane(np.take(mask, [k], axis=axis).astype(np.float32), replace(geom, origin=tuple(origin))) >= 0.5
    outline = inside & ~ndimage.binary_erosion(inside)
    rgb = np.asarray(base.image.convert("RGB"), dtype=np.float32)
    rgb[inside] = (1 - OVERLAY_ALPHA) * rgb[inside] + OVERLAY_ALPHA * np.asarray(OVERLAY_RGB, dtype=np.float32)
    rgb[outline] = OVERLAY_RGB
    base.image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    n = vol.shape[axis] - 1
    slice_text = "the 2-D image" if vol.is_2d else f"{PLANES[axis]} slice {k}/{n}"
    base.description = f"{what} in red on {slice_text}, {window} window"
    return base


def segment_tool(targets: dict[str, str] | None = None) -> Tool:
    """The ``segment`` tool; ``targets`` (name -> description) defaults to the segmenters' `TARGETS`."""
    targets = dict(TARGETS if targets is None else targets)
    return Tool(name="segment", description=_description(targets), parameters=_parameters(targets),
                fn=partial(run_segment, known_targets=tuple(targets)))
