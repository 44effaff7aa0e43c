"""The exact map between a rendered view's pixels and the volume's voxels and millimetres.

Conventions (all transforms in the project go through this module):

* **Continuous pixel coordinates** put the centre of pixel column ``i``/row ``j`` at ``(i, j)``;
  **continuous voxel coordinates** put the centre of voxel ``(k, j, i)`` at ``(k, j, i)``.
* A **box** ``[x1, y1, x2, y2]`` (Qwen ``bbox_2d``) is in pixel *edge* coordinates: the box
  ``[0, 0, 10, 10]`` covers exactly the pixels 0..9 in x and y. Edge ``e`` is centre coordinate
  ``e - 0.5``.
* A view's pixel ``(x, y)`` maps to voxel ``origin + x * col_step + y * row_step``: an affine map,
  so axis-aligned slices, spacing-corrected resampling, flips and crops of crops compose exactly.
  A maximum-intensity projection records the ``projection_axis`` whose coordinate the pixel does
  not determine.

Locating what a model writes on a view (its frame, clamping, montage panels, projection depth)
builds on this map in `imaging.locate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from imaging.errors import MMReasonError

Box = tuple[float, float, float, float]


class GeometryError(MMReasonError, ValueError):
    """A coordinate or box cannot be mapped (outside the view, degenerate, wrong tile)."""


def _vec(v: Any) -> tuple[float, float, float]:
    return tuple(float(a) for a in v)  # type: ignore[return-value]


# -- boxes in an image frame (no geometry needed) ---------------------------------------------
def parse_box(box: Any, name: str = "box") -> Box:
    """``box`` as four finite floats ``(x1, y1, x2, y2)``.

    Raises:
        GeometryError: not four numbers, or a NaN/inf among them; the message calls it ``name``.
    """
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise GeometryError(f"{name} must be four numbers [x1, y1, x2, y2], got {box!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise GeometryError(f"{name} {box!r} has non-finite values")
    return x1, y1, x2, y2


def check_box_in_image(box: Any, width: int, height: int, *, name: str = "box", image: str = "the image") -> Box:
    """`parse_box`, then require positive area and overlap with a ``width`` x ``height`` px image.

    The box (edges, pixels) may extend past the image; `clamp_box_to_image` cuts it to it.

    Raises:
        GeometryError: the message names the box ``name`` and the image ``image`` (e.g. ``"bbox_2d"``
            on ``"view V2"``) and gives the valid range, so a model can correct its call.
    """
    x1, y1, x2, y2 = parse_box(box, name)
    if x2 <= x1 or y2 <= y1:
        raise GeometryError(f"{name} {list(box)} has zero or negative area: need x2 > x1 and y2 > y1, in pixels "
                            f"of {image} ({width}x{height})")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise GeometryError(f"{name} {list(box)} lies outside {image}, which is {width}x{height} px: x must be "
                            f"within 0..{width} and y within 0..{height}")
    return x1, y1, x2, y2


def clamp_box_to_image(box: Box, width: float, height: float) -> Box:
    """The part of an edge box inside the image ``[0, width] x [0, height]`` (pixels)."""
    x1, y1, x2, y2 = box
    return max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))


def rescale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    """An edge box on an image of ``from_size`` (width, height) px, on the same image resized to ``to_size``.

    Edges scale exactly (edge 0 stays 0, edge ``width`` becomes the new width), as when a model's
    processor resizes a view: see `ViewGeometry.scaled` for the matching pixel -> voxel map.
    """
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    x1, y1, x2, y2 = box
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def rescale_point(point: tuple[float, float], from_size: tuple[int, int], to_size: tuple[int, int]) -> tuple[float, float]:
    """A point in the edge frame of boxes (``[x, y]``, pixel i spans [i, i + 1)) after a resize, as `rescale_box`."""
    x, y = point
    return x * to_size[0] / from_size[0], y * to_size[1] / from_size[1]


@dataclass(frozen=True)
class ViewGeometry:
    """Affine map from view pixels (x = column, y = row) to voxel (z, y, x) and to LPS mm.

    Attributes:
        origin: voxel coordinate (z, y, x) of the centre of pixel (0, 0).
        col_step: voxel displacement for one pixel to the right.
        row_step: voxel displacement for one pixel down.
        width, height: the rendered image size in pixels.
        spacing: the volume's voxel spacing (z, y, x) in mm.
        affine: the volume's 4x4 index->LPS-mm affine (as nested lists, JSON-friendly).
        projection_axis: for a projection (MIP), the voxel axis collapsed into each pixel.
        volume: the id of the volume this view was rendered from.
    """

    origin: tuple[float, float, float]
    col_step: tuple[float, float, float]
    row_step: tuple[float, float, float]
    width: int
    height: int
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...] = field(
        default=((1.0, 0, 0, 0), (0, 1.0, 0, 0), (0, 0, 1.0, 0), (0, 0, 0, 1.0))
    )
    projection_axis: int | None = None
    volume: str = "0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _vec(self.origin))
        object.__setattr__(self, "col_step", _vec(self.col_step))
        object.__setattr__(self, "row_step", _vec(self.row_step))
        object.__setattr__(self, "spacing", _vec(self.spacing))
        object.__setattr__(self, "affine", tuple(tuple(float(a) for a in r) for r in np.asarray(self.affine)))
        if self.width <= 0 or self.height <= 0:
            raise GeometryError(f"view size must be positive, got {self.width}x{self.height}")

    # -- matrices --------------------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """3x3 matrix M with voxel = M @ (x, y, 1)."""
        return np.column_stack([self.col_step, self.row_step, self.origin])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """Size in mm of one pixel along x (columns) and y (rows)."""
        a = np.asarray(self.affine)[:3, :3]
        return (
            float(np.linalg.norm(a @ np.asarray(self.col_step))),
            float(np.linalg.norm(a @ np.asarray(self.row_step))),
        )

    # -- points ----------------------------------------------------------------------------
    def pixel_to_voxel(self, xy: Any) -> np.ndarray:
        """Continuous pixel centre coordinates (N, 2) -> continuous voxel (z, y, x) (N, 3)."""
        pts = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        homog = np.column_stack([pts, np.ones(len(pts))])
        return homog @ self.matrix.T

    def voxel_to_pixel(self, zyx: Any) -> np.ndarray:
        """Continuous voxel (N, 3) -> pixel (N, 2), projecting along the view normal.

        Exact for points on the view's plane; points off the plane land where they project.
        """
        pts = np.atleast_2d(np.asarray(zyx, dtype=np.float64)) - np.asarray(self.origin)
        basis = np.column_stack([self.col_step, self.row_step])
        if self.projection_axis is not None:
            keep = [a for a in range(3) if a != self.projection_axis]
            basis, pts = basis[keep], pts[:, keep]
        sol, *_ = np.linalg.lstsq(basis, pts.T, rcond=None)
        return sol.T

    def voxel_to_mm(self, zyx: Any) -> np.ndarray:
        """Continuous voxel (z, y, x) (N, 3) -> LPS patient mm (x, y, z) (N, 3) through ``affine``."""
        pts = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
        a = np.asarray(self.affine)
        return pts @ a[:3, :3].T + a[:3, 3]

    def pixel_to_mm(self, xy: Any) -> np.ndarray:
        """Pixel centre coordinates (N, 2) -> LPS patient mm (x, y, z) (N, 3)."""
        return self.voxel_to_mm(self.pixel_to_voxel(xy))

    def mm_to_pixel(self, xyz: Any) -> np.ndarray:
        """LPS patient mm (x, y, z) (N, 3) -> pixel centre coordinates (N, 2), as `voxel_to_pixel`."""
        a = np.asarray(self.affine)
        pts = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        zyx = np.linalg.solve(a[:3, :3], (pts - a[:3, 3]).T).T
        return self.voxel_to_pixel(zyx)

    # -- boxes -----------------------------------------------------------------------------
    def validate_box(self, box: Any) -> Box:
        """Check a box ``[x1, y1, x2, y2]`` (edges) lies in the view and has area; return floats."""
        return check_box_in_image(box, self.width, self.height)

    def clamp_box(self, box: Box) -> Box:
        """`validate_box`, then cut the box to the view."""
        return clamp_box_to_image(self.validate_box(box), self.width, self.height)

    def box_corners_voxel(self, box: Box) -> np.ndarray:
        """The four corners of an edge box as continuous voxel coordinates (4, 3)."""
        x1, y1, x2, y2 = box
        corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], dtype=np.float64) - 0.5
        return self.pixel_to_voxel(corners)

    def box_to_voxel_slices(self, box: Box, depth: int | None = None) -> tuple[slice, slice, slice]:
        """Index slices (z, y, x) of the voxels whose centres fall inside the box.

        The axis the view does not span (slice normal) gets the view's own slice, or the whole
        ``depth`` for a projection. ``depth`` is the size of that axis (needed for projections).
        """
        corners = self.box_corners_voxel(self.clamp_box(box))
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        out = []
        for axis in range(3):
            if axis == self.projection_axis:
                if depth is None:
                    raise GeometryError("a projection box needs the depth of the projected axis")
                out.append(slice(0, depth))
                continue
            if math.isclose(lo[axis], hi[axis], abs_tol=1e-9):  # the slice normal
                k = int(round(lo[axis]))
                out.append(slice(k, k + 1))
                continue
            start = math.ceil(lo[axis] - 1e-6)
            stop = math.floor(hi[axis] + 1e-6) + 1
            if stop <= start:  # no voxel centre inside (a box in a zoomed crop): the voxel holding it
                start = math.floor((lo[axis] + hi[axis]) / 2 + 0.5)
                stop = start + 1
            out.append(slice(max(start, 0), max(stop, 1)))
        return tuple(out)  # type: ignore[return-value]

    def box_to_mm(self, box: Box) -> dict[str, list[float]]:
        """Corners of the box in LPS mm and its size along the view's axes in mm."""
        corners = self.box_corners_voxel(box)
        mm = self.voxel_to_mm(corners)
        sx, sy = self.pixel_spacing_mm
        return {
            "min_mm": mm.min(axis=0).round(3).tolist(),
            "max_mm": mm.max(axis=0).round(3).tolist(),
            "size_mm": [round((box[2] - box[0]) * sx, 3), round((box[3] - box[1]) * sy, 3)],
        }

    def crop(self, box: Box, out_width: int, out_height: int) -> "ViewGeometry":
        """Geometry of the region ``box`` (edges, this view's pixels) resampled to a new size.

        Exact: the new view's pixel (i, j) maps to the same voxel as this view's pixel
        ``(x1 - 0.5 + (i + 0.5) * sx, y1 - 0.5 + (j + 0.5) * sy)``, so crops of crops compose.
        """
        x1, y1, x2, y2 = box
        sx, sy = (x2 - x1) / out_width, (y2 - y1) / out_height
        origin = self.pixel_to_voxel([[x1 - 0.5 + 0.5 * sx, y1 - 0.5 + 0.5 * sy]])[0]
        return replace(
            self,
            origin=tuple(origin),
            col_step=tuple(np.asarray(self.col_step) * sx),
            row_step=tuple(np.asarray(self.row_step) * sy),
            width=int(out_width),
            height=int(out_height),
        )

    def scaled(self, out_width: int, out_height: int) -> "ViewGeometry":
        """Geometry of this whole view resized (e.g. by a model's processor) to a new size."""
        return self.crop((0.0, 0.0, float(self.width), float(self.height)), out_width, out_height)

    def panels(self) -> tuple["Tile", ...]:
        """The panels of the image: this view alone, at offset (0, 0) (a montage has several)."""
        return (Tile(0, 0, self),)

    def tile_for_box(self, box: Box) -> tuple["Tile", Box]:
        """The panel holding ``box`` and the box in its pixels: this view and the box itself."""
        return Tile(0, 0, self), box

    def normal_axis(self) -> int | None:
        """The voxel axis along which the view is a single slice, if axis-aligned."""
        if self.projection_axis is not None:
            return self.projection_axis
        spanned = np.abs(np.asarray(self.col_step)) + np.abs(np.asarray(self.row_step))
        zero = [a for a in range(3) if spanned[a] < 1e-12]
        return zero[0] if len(zero) == 1 else None

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": list(self.origin),
            "col_step": list(self.col_step),
            "row_step": list(self.row_step),
            "width": self.width,
            "height": self.height,
            "spacing": list(self.spacing),
            "affine": [list(r) for r in self.affine],
            "projection_axis": self.projection_axis,
            "volume": self.volume,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViewGeometry":
        return cls(
            origin=d["origin"],
            col_step=d["col_step"],
            row_step=d["row_step"],
            width=int(d["width"]),
            height=int(d["height"]),
            spacing=d["spacing"],
            affine=d["affine"],
            projection_axis=d.get("projection_axis"),
            volume=str(d.get("volume", "0")),
        )


@dataclass(frozen=True)
class Tile:
    """One panel of a montage: its top-left offset in the montage and its own geometry."""

    x0: int
    y0: int
    geometry: ViewGeometry


@dataclass(frozen=True)
class MontageGeometry:
    """A grid of tiles; each pixel maps through the geometry of the tile it falls in."""

    tiles: tuple[Tile, ...]
    width: int
    height: int

    @property
    def volume(self) -> str:
        """The id of the volume shown (every tile of a montage shows the same volume)."""
        return self.tiles[0].geometry.volume

    def panels(self) -> tuple[Tile, ...]:
        return self.tiles

    def tile_for_box(self, box: Box) -> tuple[Tile, Box]:
        """The tile that wholly holds ``box`` and the box in that tile's own pixels."""
        x1, y1, x2, y2 = box
        for tile in self.tiles:
            g = tile.geometry
            if tile.x0 <= x1 and x2 <= tile.x0 + g.width and tile.y0 <= y1 and y2 <= tile.y0 + g.height:
                return tile, (x1 - tile.x0, y1 - tile.y0, x2 - tile.x0, y2 - tile.y0)
        raise GeometryError(
            f"box {list(box)} does not lie inside a single montage panel; draw it inside one panel "
            f"(panels: {[(t.x0, t.y0, t.geometry.width, t.geometry.height) for t in self.tiles]})"
        )

    def pixel_to_voxel(self, xy: Any) -> np.ndarray:
        """Montage pixel centre coordinates (N, 2) -> continuous voxel (z, y, x) (N, 3) of their tiles."""
        pts = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        out = []
        for x, y in pts:
            tile, _ = self.tile_for_box((x + 0.5, y + 0.5, x + 0.5, y + 0.5))
            out.append(tile.geometry.pixel_to_voxel([[x - tile.x0, y - tile.y0]])[0])
        return np.array(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "montage": True,
            "width": self.width,
            "height": self.height,
            "tiles": [{"x0": t.x0, "y0": t.y0, "geometry": t.geometry.to_dict()} for t in self.tiles],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MontageGeometry":
        tiles = tuple(Tile(t["x0"], t["y0"], ViewGeometry.from_dict(t["geometry"])) for t in d["tiles"])
        return cls(tiles=tiles, width=int(d["width"]), height=int(d["height"]))


def geometry_from_dict(d: dict[str, Any]) -> ViewGeometry | MontageGeometry:
    """The geometry a ``to_dict`` wrote: a `MontageGeometry` when marked ``montage``, else a `ViewGeometry`."""
    return MontageGeometry.from_dict(d) if d.get("montage") else ViewGeometry.from_dict(d)
