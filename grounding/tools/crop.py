"""``crop``: a zoomed view of a box, re-sampled from the volume at full detail."""

from __future__ import annotations

from typing import Any

import numpy as np

from grounding.evidence import Evidence
from grounding.tool import Tool, ToolContext
from grounding.tools.regions import BBOX_SCHEMA, VIEW_ID_SCHEMA, fmt_slices, resolve_box
from imaging.locate import map_box
from imaging.views import crop_view

DESCRIPTION = (
    "Zoom into a box of a view to see detail. The crop is re-sampled from the original image (not "
    "enlarged from the view), keeps the view's window, and is itself a new view (V...) you can crop "
    "again or draw boxes on. Returns the new view id and the box's size in mm."
)

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "view_id": VIEW_ID_SCHEMA,
        "bbox_2d": BBOX_SCHEMA,
        "margin": {"type": "number", "minimum": 0, "maximum": 1,
                   "description": "Extra context around the box, as a fraction of its size; default 0.1."},
    },
    "required": ["view_id", "bbox_2d"],
    "additionalProperties": False,
}


def run_crop(context: ToolContext, view_id: str, bbox_2d: list[float], margin: float = 0.1) -> Evidence:
    """Crop ``bbox_2d`` (edges, pixels of ``view_id``) plus ``margin``; register the zoomed view."""
    region = resolve_box(context, view_id, bbox_2d)
    crop = crop_view(region.volume, region.view, region.pixels, margin=margin)
    # where the crop (with its margin) lies in the parent view, mapped back exactly: through the
    # panel's geometry, then shifted by the panel's place in a montage
    cg, pg = crop.geometry, region.geometry
    x0, y0 = region.located.offset
    shown = np.add(map_box((0.0, 0.0, cg.width, cg.height), cg, pg), (x0, y0, x0, y0))  # type: ignore[arg-type]
    new_id = context.add_view(crop)
    x1, y1, x2, y2 = (round(v, 1) for v in region.pixels)
    size_w, size_h = region.geometry.box_to_mm(region.local)["size_mm"]
    psx, _ = cg.pixel_spacing_mm  # type: ignore[union-attr]
    zoom = pg.pixel_spacing_mm[0] / psx
    crop.description = f"zoomed crop of {view_id} box [{x1}, {y1}, {x2}, {y2}]"
    text = (f"{new_id}: zoomed crop of {view_id} box [{x1}, {y1}, {x2}, {y2}] (+{margin:.0%} margin), "
            f"{crop.size[0]}x{crop.size[1]} px at {psx:.2f} mm/px ({zoom:.1f}x); box {size_w:.1f} x "
            f"{size_h:.1f} mm, voxels {fmt_slices(region.voxels)}.{region.clamp_note(bbox_2d)}")
    return Evidence(id="", tool="crop", arguments={}, text=text, views=[crop], box=region.to_box_dict(),
                    data={"view_id": new_id, "parent_view_id": view_id, "clamped": region.clamped,
                          "shown_pixels": [round(float(v), 3) for v in shown], "zoom": round(zoom, 4)})


CROP = Tool(name="crop", description=DESCRIPTION, parameters=PARAMETERS, fn=run_crop)
