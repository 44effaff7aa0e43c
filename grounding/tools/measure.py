"""``measure``: size, diameters, intensity, centroid and side of a segmented mask or a box."""

from __future__ import annotations

from typing import Any

import numpy as np

from grounding.evidence import Evidence, Measurement
from grounding.measurements import MeasurementError, RegionMeasurements, interior_intensity, measure_region
from grounding.plausibility import fact_quality
from grounding.tool import Tool, ToolContext, ToolError
from grounding.tools.regions import BBOX_SCHEMA, VIEW_ID_SCHEMA, region_mask, resolve_box
from imaging.volume import Volume

DESCRIPTION = (
    "Measure a region in millimetres: area (2-D) or volume (3-D), the longest diameter (of a 3-D region: on "
    "its axial slice of largest area) and the diameter perpendicular to it, the left-right width (width_mm), mean/std/min/max intensity (HU for CT), centroid (patient LPS mm) "
    "and side (patient left/right/midline). Give either evidence_id of a segment result, or view_id "
    "and bbox_2d for a box region on that view's slice. interior: also the mean/std intensity of the region "
    "without its edge layer (partial volume with the surroundings), e.g. a small lesion's attenuation."
)

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "evidence_id": {"type": "string", "description": "Id of a segment result to measure, e.g. 'E2'."},
        "view_id": VIEW_ID_SCHEMA,
        "bbox_2d": {**BBOX_SCHEMA, "description": "Box region to measure on the slice shown in view_id: "
                    + BBOX_SCHEMA["description"]},
        "interior": {"type": "boolean", "description": "Also measure the intensity of the region's interior "
                     "(one voxel layer eroded: free of partial volume at its edge). Default false."},
    },
    "required": [],
    "additionalProperties": False,
}


def run_measure(context: ToolContext, evidence_id: str | None = None, view_id: str | None = None,
                bbox_2d: list[float] | None = None, interior: bool = False) -> Evidence:
    """Measure the mask of ``evidence_id``, or the box ``bbox_2d`` on ``view_id``'s slice; with
    ``interior``, also the intensity of its interior (`grounding.measurements.interior_intensity`)."""
    if evidence_id is not None and (view_id is not None or bbox_2d is not None):
        raise ToolError("give either evidence_id, or view_id with bbox_2d, not both")
    if evidence_id is not None:
        volume_id, volume, mask, plane_axis, what, box = _from_evidence(context, evidence_id)
    elif view_id is not None and bbox_2d is not None:
        region = resolve_box(context, view_id, bbox_2d)
        if region.geometry.projection_axis is not None:
            raise ToolError(f"view {view_id} is a projection (MIP), which has no single slice to measure; "
                            f"view a slice and draw the box there, or segment and measure the evidence")
        volume_id, volume = region.volume_id, region.volume
        mask = region_mask(volume.shape, region.voxels)
        plane_axis = region.geometry.normal_axis()
        x1, y1, x2, y2 = (round(v, 1) for v in region.pixels)
        what = f"box [{x1}, {y1}, {x2}, {y2}] on {view_id}" + region.clamp_note(bbox_2d)
        box = region.to_box_dict()
    else:
        raise ToolError("give evidence_id (a segment result, e.g. 'E2'), or view_id together with bbox_2d")
    try:
        result = measure_region(volume, mask, plane_axis)
    except MeasurementError as exc:
        raise ToolError(f"{exc} ({what})") from None
    quality = fact_quality(volume, uses_side=True)
    source = context.find(evidence_id) if evidence_id is not None else None
    if source is not None:
        for reason in source.quality.reasons:
            quality.flag(source.quality.level, reason)
    summary = result.summary()
    numbers = measurements_of(result)
    extra: dict[str, Any] = {}
    if interior:
        stats, core = interior_intensity(volume, mask, plane_axis)
        extra["interior_voxels"] = core
        if core:
            unit = result.intensity_unit
            numbers |= {"interior_mean_intensity": Measurement(stats["mean"], unit),
                        "interior_std_intensity": Measurement(stats["std"], unit)}
            summary += (f" Interior ({core} voxels clear of the edge): intensity mean {stats['mean']:.1f} +/- "
                        f"{stats['std']:.1f} {unit}.")
        else:
            summary += " Interior: none (no voxel of the region is clear of its edge)."
    if "orientation assumed" in " ".join(quality.reasons):
        summary += " The side is not trusted: the orientation was assumed."
    summary += f" {quality.describe()}."
    return Evidence(id="", tool="measure", arguments={}, text=f"Measured {what}: {summary}", summary=summary,
                    box=box, measurements=numbers, quality=quality,
                    data={**result.as_dict(), **extra, "volume": volume_id, "source": evidence_id or view_id})


def measurements_of(result: RegionMeasurements) -> dict[str, Measurement]:
    return {name: Measurement(value, unit) for name, (value, unit) in result.numbers().items()}


def _from_evidence(
    context: ToolContext, evidence_id: str
) -> tuple[str, Volume, np.ndarray, int | None, str, dict[str, Any] | None]:
    """(volume id, volume, mask, plane axis of a 2-D mask, label, box) of a segment evidence."""
    ev = context.find(evidence_id)
    if ev is None:
        with_masks = [e.id for e in context.evidence if e.mask is not None]
        raise ToolError(f"unknown evidence_id '{evidence_id}'; evidence with a mask: "
                        f"{', '.join(with_masks) or 'none yet (call segment first)'}")
    if ev.mask is None:
        raise ToolError(f"{evidence_id} ({ev.tool}) has no mask to measure; pass the id of a segment result, "
                        f"or give view_id and bbox_2d to measure a box")
    volume_id, volume = context.get_volume(ev.mask_volume)
    if not ev.mask.any():
        raise ToolError(f"{evidence_id} found nothing (empty mask), so there is nothing to measure; "
                        f"segment again with another target or prompt")
    plane_axis = ev.data.get("plane_axis") if ev.data.get("mode") == "2d" else None
    target = ev.data.get("target")
    what = f"{evidence_id}" + (f" ({target})" if target else "")
    return volume_id, volume, ev.mask, plane_axis, what, ev.box


MEASURE = Tool(name="measure", description=DESCRIPTION, parameters=PARAMETERS, fn=run_measure)
