"""Boxes and points a model draws on a view, resolved to voxels through the view's geometry.

Shared by ``crop``, ``segment`` and ``measure``. Every failure is a `ToolError` whose message
tells the model the valid range, so it can correct the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding.tool import ToolContext, ToolError
from imaging.geometry import GeometryError, MontageGeometry, ViewGeometry, check_box_in_image, clamp_box_to_image
from imaging.views import View
from imaging.volume import Volume


@dataclass
class BoxRegion:
    """A model's box on a view, clamped to the image and mapped to voxels.

    Attributes:
        view: the view the box was drawn on; volume_id, volume: the volume it shows.
        geometry: the geometry the box is in (a montage's panel for montages).
        pixels: the clamped box in the view's own pixels (edges, [x1, y1, x2, y2]).
        local: the same box in ``geometry``'s pixels (differs from ``pixels`` on montages).
        clamped: whether the requested box extended past the image.
        voxels: index slices (z, y, x) of the voxels whose centres fall in the box.
    """

    view: View
    volume_id: str
    volume: Volume
    geometry: ViewGeometry
    pixels: tuple[float, float, float, float]
    local: tuple[float, float, float, float]
    clamped: bool
    voxels: tuple[slice, slice, slice]

    def to_box_dict(self) -> dict[str, Any]:
        """The ``Evidence.box`` record: view id, pixels, half-open voxel ranges and mm."""
        return {
            "view_id": self.view.view_id,
            "pixels": [round(v, 3) for v in self.pixels],
            "voxels": [[s.start, s.stop] for s in self.voxels],
            "mm": self.geometry.box_to_mm(self.local),
        }

    def clamp_note(self, requested: Any) -> str:
        if not self.clamped:
            return ""
        w, h = self.view.size
        return (f" The box {list(requested)} extended past the {w}x{h} image and was clamped to "
                f"{[round(v, 1) for v in self.pixels]}.")


def resolve_box(context: ToolContext, view_id: str, bbox: Any) -> BoxRegion:
    """Clamp ``bbox`` to view ``view_id`` and map it to voxel index slices.

    Raises:
        ToolError: unknown view, malformed/zero-area box, box wholly outside the image, or a
            montage box that spans several panels.
    """
    view = context.get_view(view_id)
    volume_id, volume = context.volume_of(view)
    w, h = view.size
    geom = view.geometry
    try:
        requested = check_box_in_image(bbox, w, h, name="bbox_2d", image=view_id)
    except GeometryError as exc:
        raise ToolError(str(exc)) from None
    pixels = clamp_box_to_image(requested, w, h)
    try:
        if isinstance(geom, MontageGeometry):
            tile, local = geom.tile_for_box(pixels)
            geom = tile.geometry
        else:
            local = pixels
        voxels = geom.box_to_voxel_slices(local, depth=_depth(geom, volume))
    except GeometryError as exc:
        raise ToolError(f"{exc} (view {view_id})") from None
    clamped = pixels != requested
    return BoxRegion(view, volume_id, volume, geom, pixels, local, clamped, voxels)


def resolve_point(context: ToolContext, view_id: str, point: Any) -> tuple[View, str, Volume, ViewGeometry, np.ndarray]:
    """Map ``point_2d`` [x, y] (pixel coordinates, same frame as bbox_2d) to a voxel (z, y, x).

    On a projection (MIP) view the depth is taken where the projected maximum lies, i.e. the
    voxel the model actually saw at that pixel.
    """
    view = context.get_view(view_id)
    volume_id, volume = context.volume_of(view)
    w, h = view.size
    try:
        x, y = (float(v) for v in point)
    except (TypeError, ValueError):
        raise ToolError(f"point_2d must be two numbers [x, y], got {point!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)) or not (0 <= x <= w and 0 <= y <= h):
        raise ToolError(f"point_2d {list(point)} lies outside {view_id}, which is {w}x{h} px: "
                        f"x must be within 0..{w} and y within 0..{h}")
    geom = view.geometry
    if isinstance(geom, MontageGeometry):
        try:
            tile, _ = geom.tile_for_box((x, y, x, y))
        except GeometryError as exc:
            raise ToolError(f"{exc} (view {view_id})") from None
        geom, x, y = tile.geometry, x - tile.x0, y - tile.y0
    # points are in the same edge frame as boxes: pixel i spans [i, i + 1), its centre is i + 0.5
    zyx = geom.pixel_to_voxel([[x - 0.5, y - 0.5]])[0]
    zyx = np.clip(zyx, 0, np.asarray(volume.shape) - 1)
    if geom.projection_axis is not None:
        idx = [int(round(v)) for v in zyx]
        idx[geom.projection_axis] = slice(None)  # type: ignore[call-overload]
        zyx[geom.projection_axis] = float(np.nanargmax(volume.data[tuple(idx)]))
    return view, volume_id, volume, geom, zyx


def view_slice_index(geom: ViewGeometry) -> tuple[int, int] | None:
    """``(normal axis, slice index)`` of an axis-aligned slice view; None for projections/oblique."""
    if geom.projection_axis is not None:
        return None
    axis = geom.normal_axis()
    if axis is None:
        return None
    return axis, int(round(geom.origin[axis]))


def region_mask(shape: tuple[int, int, int], voxels: tuple[slice, slice, slice]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[voxels] = True
    return mask


def _depth(geom: ViewGeometry, volume: Volume) -> int | None:
    return volume.shape[geom.projection_axis] if geom.projection_axis is not None else None


def fmt_slices(voxels: tuple[slice, slice, slice]) -> str:
    """``z 40, y 100-149, x 200-249`` (inclusive voxel index ranges)."""
    parts = []
    for name, s in zip("zyx", voxels):
        parts.append(f"{name} {s.start}" if s.stop - s.start == 1 else f"{name} {s.start}-{s.stop - 1}")
    return ", ".join(parts)


#: JSON Schema fragments shared by the tools (descriptions are written for a VLM)
BBOX_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "number"},
    "minItems": 4,
    "maxItems": 4,
    "description": "Box [x1, y1, x2, y2] in absolute pixels of the view named by view_id "
                   "(x to the right, y down; x2 > x1, y2 > y1).",
}
POINT_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
    "description": "Point [x, y] in absolute pixels of the view named by view_id.",
}
VIEW_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "Id of a view shown earlier, e.g. 'V1'.",
}
