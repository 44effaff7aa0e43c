"""Boxes and points a model draws on a view, resolved to voxels through the view's geometry.

Shared by ``crop``, ``segment`` and ``measure``. Every failure is a `ToolError` whose message
tells the model the valid range, so it can correct the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding.tool import ToolContext, ToolError
from imaging.geometry import GeometryError, ViewGeometry
from imaging.locate import LocatedBox, locate_box, locate_point
from imaging.views import View
from imaging.volume import Volume


@dataclass
class BoxRegion:
    """A model's box on a view, clamped to the image and mapped to voxels.

    Attributes:
        view: the view the box was drawn on; volume_id, volume: the volume it shows.
        located: where the box lies (`imaging.locate.LocatedBox`: pixels, panel, voxels).
    """

    view: View
    volume_id: str
    volume: Volume
    located: LocatedBox

    @property
    def geometry(self) -> ViewGeometry:
        """The geometry the box is in (a montage's panel for montages)."""
        return self.located.geometry

    @property
    def pixels(self) -> tuple[float, float, float, float]:
        """The clamped box in the view's own pixels (edges, [x1, y1, x2, y2])."""
        return self.located.pixels

    @property
    def local(self) -> tuple[float, float, float, float]:
        """The same box in ``geometry``'s pixels (differs from ``pixels`` on montages)."""
        return self.located.local

    @property
    def clamped(self) -> bool:
        """Whether the requested box extended past the image."""
        return self.located.box.was_clamped

    @property
    def voxels(self) -> tuple[slice, slice, slice]:
        """Index slices (z, y, x) of the voxels whose centres fall in the box."""
        return self.located.voxels  # type: ignore[return-value]  # the volume gives a projection's depth

    def to_box_dict(self) -> dict[str, Any]:
        """The ``Evidence.box`` record: view id, pixels, half-open voxel ranges and mm."""
        return {
            "view_id": self.view.view_id,
            "pixels": [round(v, 3) for v in self.pixels],
            "voxels": self.located.ranges,
            "mm": self.located.mm(),
        }

    def clamp_note(self, requested: Any) -> str:
        if not self.clamped:
            return ""
        w, h = self.view.size
        return (f" The box {list(requested)} extended past the {w}x{h} image and was clamped to "
                f"{[round(v, 1) for v in self.pixels]}.")


def resolve_box(context: ToolContext, view_id: str, bbox: Any) -> BoxRegion:
    """Clamp ``bbox`` to view ``view_id`` and map it to voxel index slices (`imaging.locate.locate_box`).

    Raises:
        ToolError: unknown view, malformed/zero-area box, box wholly outside the image, or a
            montage box that spans several panels.
    """
    view = context.get_view(view_id)
    volume_id, volume = context.volume_of(view)
    try:
        located = locate_box(view.geometry, bbox, shape=volume.shape, image=view_id)
    except GeometryError as exc:
        raise ToolError(str(exc)) from None
    return BoxRegion(view, volume_id, volume, located)


def resolve_point(context: ToolContext, view_id: str, point: Any) -> tuple[View, str, Volume, ViewGeometry, np.ndarray]:
    """Map ``point_2d`` [x, y] (pixel coordinates, same frame as bbox_2d) to a voxel (z, y, x).

    On a projection (MIP) view the depth is taken where the projected maximum lies, i.e. the
    voxel the model actually saw at that pixel.
    """
    view = context.get_view(view_id)
    volume_id, volume = context.volume_of(view)
    try:
        located = locate_point(view.geometry, point, image=view_id)
    except GeometryError as exc:
        raise ToolError(str(exc)) from None
    return view, volume_id, volume, located.geometry, located.on_volume(volume.data)


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
