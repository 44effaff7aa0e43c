"""Locating what a model points at: a box or a point written on any view, to voxels and mm.

Every box and point takes one road, whether it is an argument of a tool call or a claim in an
answer:

1. **Model frame.** It is read in the frame the model saw the image in (`ModelFrame`: the image
   as the processor resized it, a fixed square, or the relative 1000x1000 square), checked there
   (finite numbers, positive area, on the image), clamped to the image and, where asked, enlarged
   to a smallest side; then rescaled to the view's pixels (`frame_box_to_view`,
   `frame_point_to_view`).
2. **Montage panel.** On a montage it must lie in one panel and goes on in that panel's pixels
   (`ViewGeometry.tile_for_box` / `MontageGeometry.tile_for_box`).
3. **Half-pixel rule.** Boxes and points are in pixel *edge* coordinates (pixel ``i`` spans
   ``[i, i + 1)``) while the geometry maps pixel *centres*: edge coordinate ``e`` is centre
   coordinate ``e - 0.5`` (`edge_to_centre`, `centre_to_edge`); the continuous voxel coordinate
   ``v`` lies in voxel ``floor(v + 0.5)`` (`voxel_index`), and a half-open index range
   ``[lo, hi)`` spans ``[lo - 0.5, hi - 0.5]`` (`ranges_hold`).
4. **Projection depth.** A box on a projection (MIP) spans the whole projected axis, whose length
   is the volume's along that axis (``shape``); a point on a projection lies at the voxel whose
   maximum the pixel shows (`LocatedPoint.on_volume`).
5. **Voxels and mm** through the panel's `ViewGeometry`.

The other way, `voxels_on_view` is where a view shows voxels (the point a model would write),
`mask_footprint` a voxel mask's footprint on a view and `map_box` a box's extent on another view
of the same volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from imaging.geometry import (
    Box,
    GeometryError,
    MontageGeometry,
    Tile,
    ViewGeometry,
    check_box_in_image,
    clamp_box_to_image,
    rescale_box,
    rescale_point,
)
from imaging.views import sample_plane

Geometry = ViewGeometry | MontageGeometry
Size = tuple[int, int]
#: a voxel region as half-open index ranges ``[[z0, z1], [y0, y1], [x0, x1]]``
Ranges = list[list[int]]

HALF_PIXEL = 0.5


# -- the half-pixel rule ----------------------------------------------------------------------
def edge_to_centre(v: Any) -> Any:
    """An edge-frame coordinate (boxes, points: pixel ``i`` spans [i, i + 1)) in the centre frame."""
    return v - HALF_PIXEL


def centre_to_edge(v: Any) -> Any:
    """A centre-frame coordinate (pixel ``i``'s centre at ``i``) in the edge frame of boxes and points."""
    return v + HALF_PIXEL


def voxel_index(v: float) -> int:
    """The index of the voxel (or pixel) whose extent holds the continuous centre-frame coordinate ``v``."""
    return int(math.floor(v + HALF_PIXEL))


def ranges_hold(ranges: Ranges, zyx: Any, skip_axis: int | None = None) -> bool:
    """Whether half-open voxel index ranges hold the continuous voxel point ``zyx`` (``skip_axis`` ignored)."""
    return all(edge_to_centre(lo) <= v <= edge_to_centre(hi)
               for k, ((lo, hi), v) in enumerate(zip(ranges, zyx)) if k != skip_axis)


# -- the model's frame ------------------------------------------------------------------------
#: the coordinate range of models that write boxes relative to the image, not in its pixels
RELATIVE_SCALE = 1000


def qwen_resized_size(width: int, height: int, factor: int, min_pixels: int, max_pixels: int) -> Size:
    """(width, height) in pixels a Qwen-VL processor resizes a ``width`` x ``height`` image to.

    ``qwen_vl_utils.smart_resize``: both sides become multiples of ``factor`` pixels and the area
    stays within ``min_pixels``..``max_pixels``, keeping the aspect ratio as closely as it can.
    """
    from qwen_vl_utils import smart_resize

    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return w, h


def size_field(size: Any, key: str) -> Any:
    """A field of an image processor's ``size`` (a dict, or a ``SizeDict`` in transformers 5)."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def qwen_geometry(image_processor: Any) -> dict[str, int] | None:
    """Patch size, resize factor and pixel budget of a Qwen-VL image processor; None for other families."""
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    size = getattr(image_processor, "size", None)
    if not (isinstance(patch, int) and isinstance(merge, int) and size is not None):
        return None
    min_pixels, max_pixels = size_field(size, "shortest_edge"), size_field(size, "longest_edge")
    if not (min_pixels and max_pixels):
        return None
    return {"patch": patch, "factor": patch * merge, "min_pixels": min_pixels, "max_pixels": max_pixels}


def set_pixel_budget(image_processor: Any, min_pixels: int | None, max_pixels: int | None) -> dict[str, int] | None:
    """Give a Qwen-VL image processor the pixel budget ``min_pixels``..``max_pixels`` (None keeps
    its own bound), which decides its resize and so the model's frame; returns the budget set, or
    None (nothing changed) for processors without one.
    """
    size = getattr(image_processor, "size", None)
    if getattr(image_processor, "merge_size", None) is None or size is None:
        return None
    budget = {"shortest_edge": min_pixels or size_field(size, "shortest_edge"),
              "longest_edge": max_pixels or size_field(size, "longest_edge")}
    # Qwen processors read their pixel budget from `size` (min_pixels/max_pixels are deprecated)
    image_processor.size = budget if isinstance(size, dict) else type(size)(**budget)
    return budget


@dataclass(frozen=True)
class ModelFrame:
    """The frame a model sees an image in and writes its boxes and points in.

    Called as ``frame(width, height) -> (width, height)``. Rules (``rule``):

    - ``identity``: the image as it is (a backend that cannot know the resize, the rules planner).
    - ``relative``: ``(1000, 1000)`` whatever the image (Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL).
    - ``qwen``: ``qwen_vl_utils.smart_resize`` with ``factor`` and the ``min_pixels``..``max_pixels``
      budget (Qwen2.5-VL, Lingshu).
    - ``fixed``: every image resized to ``size`` (Gemma 3 / MedGemma's SigLIP 896x896).
    - ``tiles``: the canvas of whole ``size`` tiles, ``min_tiles``..``max_tiles`` of them, an image is
      resized to before it is cut (InternVL's GotOcr2 processor with absolute boxes).
    """

    rule: str = "identity"
    factor: int = 0
    min_pixels: int = 0
    max_pixels: int = 0
    size: Size = (0, 0)
    min_tiles: int = 0
    max_tiles: int = 0

    RULES = ("identity", "relative", "qwen", "fixed", "tiles")

    def __post_init__(self) -> None:
        if self.rule not in self.RULES:
            raise GeometryError(f"unknown model frame rule {self.rule!r}; choose one of {', '.join(self.RULES)}")

    def __call__(self, width: int, height: int) -> Size:
        if self.rule == "relative":
            return RELATIVE_SCALE, RELATIVE_SCALE
        if self.rule == "qwen":
            return qwen_resized_size(width, height, self.factor, self.min_pixels, self.max_pixels)
        if self.rule == "fixed":
            return self.size
        if self.rule == "tiles":
            from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

            tile_w, tile_h = self.size
            columns, rows = get_optimal_tiled_canvas((height, width), (tile_h, tile_w), self.min_tiles,
                                                     self.max_tiles)
            return columns * tile_w, rows * tile_h
        return width, height

    @classmethod
    def relative(cls) -> "ModelFrame":
        return cls("relative")

    @classmethod
    def qwen(cls, factor: int, min_pixels: int, max_pixels: int) -> "ModelFrame":
        return cls("qwen", factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)

    @classmethod
    def fixed(cls, width: int, height: int) -> "ModelFrame":
        return cls("fixed", size=(width, height))

    @classmethod
    def from_processor(cls, processor: Any, relative: bool = False) -> "ModelFrame":
        """The frame read from a transformers processor (its ``image_processor``'s attributes).

        ``relative``: the model writes 0..1000 coordinates, whatever the processor does. Else a
        Qwen-VL processor (``patch_size``, ``merge_size``, a ``size`` pixel budget) smart-resizes,
        a tiling one (``crop_to_patches``) resizes to a canvas of tiles, a fixed-size one
        (``do_resize`` to ``size = {height, width}``) to that size; anything else is the identity.
        """
        if relative:
            return cls.relative()
        image_processor = getattr(processor, "image_processor", None)
        qwen = qwen_geometry(image_processor)
        if qwen is not None:
            return cls.qwen(qwen["factor"], qwen["min_pixels"], qwen["max_pixels"])
        size = getattr(image_processor, "size", None)
        fixed = (size_field(size, "width"), size_field(size, "height")) if size is not None else (None, None)
        if not (getattr(image_processor, "do_resize", False) and all(isinstance(v, int) for v in fixed)):
            return cls()
        if getattr(image_processor, "crop_to_patches", False):
            return cls("tiles", size=fixed, min_tiles=image_processor.min_patches,
                       max_tiles=image_processor.max_patches)
        return cls.fixed(*fixed)

    @classmethod
    def from_resize_rule(cls, name: str | None, relative: bool = False, min_pixels: int | None = None,
                         max_pixels: int | None = None) -> "ModelFrame":
        """The frame of a served model named by its resize rule (`RESIZE_RULES`; None: the identity).

        ``min_pixels``/``max_pixels`` override a Qwen rule's budget; ``relative`` wins over any rule.
        """
        if relative:
            return cls.relative()
        frame = RESIZE_RULES.get(name or "", cls())
        if frame.rule == "qwen":
            return cls.qwen(frame.factor, min_pixels or frame.min_pixels, max_pixels or frame.max_pixels)
        return frame


#: resize rules of served model families (the published preprocessor configs); a family missing
#: here (InternVL) sends its images as they are and needs ``relative`` for its 0..1000 boxes
RESIZE_RULES: dict[str, ModelFrame] = {
    "qwen2_5_vl": ModelFrame.qwen(28, 4 * 28 * 28, 16384 * 28 * 28),
    "qwen": ModelFrame.qwen(28, 4 * 28 * 28, 16384 * 28 * 28),
    "qwen3_vl": ModelFrame.qwen(32, 64 * 32 * 32, 16384 * 32 * 32),
    "gemma3": ModelFrame.fixed(896, 896),
}


# -- a box or point in the model's frame, on the view ----------------------------------------
@dataclass(frozen=True)
class FramedBox:
    """A box as written in a frame and as it lands on the view.

    Attributes:
        requested: the box as written (four floats, in the frame).
        clamped: ``requested`` cut to the frame's image.
        framed: ``clamped`` enlarged to the smallest side asked for (in the frame).
        pixels: ``framed`` in the view's pixels (edges).
    """

    requested: Box
    clamped: Box
    framed: Box
    pixels: Box

    @property
    def was_clamped(self) -> bool:
        return self.clamped != self.requested

    @property
    def was_enlarged(self) -> bool:
        return self.framed != self.clamped


def enlarge_box(box: Box, min_side: float, width: float, height: float) -> Box:
    """``box`` grown about its centre to at least ``min_side`` (or the whole image side) per side,
    staying inside the ``width`` x ``height`` image."""
    grown = list(box)
    for lo, hi, side in ((0, 2, width), (1, 3, height)):
        need = min(float(min_side), float(side))
        if grown[hi] - grown[lo] < need:
            centre = (grown[lo] + grown[hi]) / 2
            a = min(max(centre - need / 2, 0.0), side - need)
            grown[lo], grown[hi] = a, a + need
    return tuple(grown)  # type: ignore[return-value]


def frame_box_to_view(box: Any, view_size: Size, frame_size: Size | None = None, *, min_side: float = 0.0,
                      name: str = "bbox_2d", image: str = "the image") -> FramedBox:
    """A box written in ``frame_size`` (default: the view's own pixels), checked, clamped and
    enlarged to ``min_side`` there, then rescaled to the view's ``view_size`` pixels.

    Raises:
        GeometryError: not four finite numbers, no area, or wholly off the image; the message names
            the box ``name``, the image ``image`` and the frame's size.
    """
    fw, fh = frame_size or view_size
    requested = check_box_in_image(box, fw, fh, name=name, image=image)
    clamped = clamp_box_to_image(requested, fw, fh)
    framed = enlarge_box(clamped, min_side, fw, fh)
    return FramedBox(requested, clamped, framed, rescale_box(framed, (fw, fh), view_size))


def frame_point_to_view(point: Any, view_size: Size, frame_size: Size | None = None, *, name: str = "point_2d",
                        image: str = "the image") -> tuple[float, float]:
    """A point ``[x, y]`` (edge frame) written in ``frame_size`` (default: the view), checked to lie on
    the image there, in the view's ``view_size`` pixels.

    Raises:
        GeometryError: not two finite numbers, or off the image.
    """
    fw, fh = frame_size or view_size
    try:
        x, y = (float(v) for v in point)
    except (TypeError, ValueError):
        raise GeometryError(f"{name} must be two numbers [x, y], got {point!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)) or not (0 <= x <= fw and 0 <= y <= fh):
        raise GeometryError(f"{name} {list(point)} lies outside {image}, which is {fw}x{fh} px: "
                            f"x must be within 0..{fw} and y within 0..{fh}")
    return rescale_point((x, y), (fw, fh), view_size)


# -- located on the volume ----------------------------------------------------------------------
@dataclass(frozen=True)
class LocatedBox:
    """A box located on a view's volume.

    Attributes:
        box: the box in the model's frame and on the view (`FramedBox`); ``box.pixels`` is on the view.
        geometry: the geometry of the panel holding it (the view itself unless a montage).
        offset: that panel's top-left corner in the view's pixels.
        voxels: index slices (z, y, x) of the voxels whose centres fall in the box; None on a
            projection whose depth was not given.
    """

    box: FramedBox
    geometry: ViewGeometry
    offset: tuple[int, int]
    voxels: tuple[slice, slice, slice] | None

    @property
    def pixels(self) -> Box:
        return self.box.pixels

    @property
    def local(self) -> Box:
        """The box in the panel's own pixels."""
        x1, y1, x2, y2 = self.box.pixels
        x0, y0 = self.offset
        return x1 - x0, y1 - y0, x2 - x0, y2 - y0

    @property
    def ranges(self) -> Ranges | None:
        return None if self.voxels is None else [[s.start, s.stop] for s in self.voxels]

    def mm(self) -> dict[str, list[float]]:
        """Corners in LPS mm and the size along the view's axes (`ViewGeometry.box_to_mm`)."""
        return self.geometry.box_to_mm(self.local)


def locate_box(geometry: Geometry, box: Any, *, frame_size: Size | None = None, min_side: float = 0.0,
               shape: tuple[int, ...] | None = None, name: str = "bbox_2d", image: str = "the image") -> LocatedBox:
    """Locate ``box`` written on a view of ``geometry`` (in ``frame_size``; default the view's pixels).

    ``shape``: the volume's (z, y, x) size, whose projected axis a box on a projection spans;
    without it such a box has no voxels (``voxels`` None).

    Raises:
        GeometryError: the box is malformed or off the image (`frame_box_to_view`), or spans
            several montage panels.
    """
    framed = frame_box_to_view(box, (geometry.width, geometry.height), frame_size, min_side=min_side, name=name,
                               image=image)
    tile, local = _panel(geometry, framed.pixels, image)
    geom = tile.geometry
    voxels = None
    if geom.projection_axis is None:
        voxels = geom.box_to_voxel_slices(local)
    elif shape is not None:
        voxels = geom.box_to_voxel_slices(local, depth=int(shape[geom.projection_axis]))
    return LocatedBox(framed, geom, (tile.x0, tile.y0), voxels)


def _panel(geometry: Geometry, box: Box, image: str) -> tuple[Tile, Box]:
    try:
        return geometry.tile_for_box(box)
    except GeometryError as exc:
        raise GeometryError(f"{exc} ({image})") from None


@dataclass(frozen=True)
class LocatedPoint:
    """A point located on a view's volume.

    Attributes:
        pixel: the point in the view's pixels (edge frame).
        geometry: the panel holding it; offset: that panel's top-left corner in the view.
        voxel: the continuous voxel (z, y, x) under the point; on a projection its projected
            coordinate is the geometry's, not a depth (`on_volume` finds the depth).
    """

    pixel: tuple[float, float]
    geometry: ViewGeometry
    offset: tuple[int, int]
    voxel: np.ndarray

    @property
    def projection_axis(self) -> int | None:
        return self.geometry.projection_axis

    def index(self) -> list[int]:
        """The voxel index (z, y, x) holding the point (the projected axis as in ``voxel``)."""
        return [voxel_index(v) for v in self.voxel]

    def on_volume(self, data: np.ndarray) -> np.ndarray:
        """``voxel`` clipped to ``data``'s (z, y, x) grid; on a projection, at the depth of the
        maximum the pixel shows (the voxel the model actually saw there)."""
        zyx = np.clip(self.voxel, 0, np.asarray(data.shape[:3]) - 1)
        axis = self.projection_axis
        if axis is not None:
            idx: list[Any] = [int(round(v)) for v in zyx]
            idx[axis] = slice(None)
            zyx[axis] = float(np.nanargmax(data[tuple(idx)]))
        return zyx


def locate_point(geometry: Geometry, point: Any, *, frame_size: Size | None = None, name: str = "point_2d",
                 image: str = "the image") -> LocatedPoint:
    """Locate ``point`` ``[x, y]`` (edge frame) written on a view of ``geometry`` (in ``frame_size``).

    Raises:
        GeometryError: the point is malformed, off the image, or between montage panels.
    """
    x, y = frame_point_to_view(point, (geometry.width, geometry.height), frame_size, name=name, image=image)
    tile, _ = _panel(geometry, (x, y, x, y), image)
    lx, ly = x - tile.x0, y - tile.y0
    voxel = tile.geometry.pixel_to_voxel([[edge_to_centre(lx), edge_to_centre(ly)]])[0]
    return LocatedPoint((x, y), tile.geometry, (tile.x0, tile.y0), voxel)


# -- the other way: voxels on a view -------------------------------------------------------------
def map_box(box: Box, source: ViewGeometry, target: ViewGeometry) -> Box:
    """The extent on ``target`` (edges, pixels) of the edge box ``box`` on ``source``, both views of
    one volume (e.g. where a crop lies in the view it was cut from)."""
    pixels = target.voxel_to_pixel(source.box_corners_voxel(box))
    lo, hi = centre_to_edge(pixels.min(axis=0)), centre_to_edge(pixels.max(axis=0))
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def voxels_on_view(geometry: Geometry, zyx: Any, *, frame_size: Size | None = None) -> np.ndarray:
    """Where a view shows each continuous voxel of ``zyx`` (N, 3): the points ``[x, y]`` (edge
    frame, in ``frame_size``; default the view's pixels) a model would write to name it, (N, 2), the
    inverse of `locate_point`. NaN where the view does not show the voxel: more than half a voxel
    off a slice's plane (another slice), or off the image; on a montage, the first panel showing it.
    """
    pts = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
    out = np.full((len(pts), 2), np.nan)
    for tile in geometry.panels():
        g = tile.geometry
        pixel = g.voxel_to_pixel(pts)
        off_plane = g.pixel_to_voxel(pixel) - pts
        if g.projection_axis is not None:  # a projection shows every depth
            off_plane[:, g.projection_axis] = 0.0
        edge = centre_to_edge(pixel)
        shown = ((np.abs(off_plane).max(axis=1) <= HALF_PIXEL) & (edge >= 0).all(axis=1)
                 & (edge[:, 0] <= g.width) & (edge[:, 1] <= g.height) & np.isnan(out[:, 0]))
        out[shown] = edge[shown] + (tile.x0, tile.y0)
    view_size = (geometry.width, geometry.height)
    return np.column_stack(rescale_point((out[:, 0], out[:, 1]), view_size, frame_size or view_size))


def mask_coverage(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The (H, W) share of ``mask`` (z, y, x) under each pixel centre of a view (linearly sampled;
    a projection shows the mask's projection along its axis; a montage each panel's slice)."""
    out = np.zeros((geometry.height, geometry.width), dtype=np.float32)
    values = mask.astype(np.float32)
    for tile in geometry.panels():
        g = tile.geometry
        out[tile.y0:tile.y0 + g.height, tile.x0:tile.x0 + g.width] = sample_plane(values, g)
    return out


def mask_footprint(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The (H, W) boolean footprint of a voxel mask on a view: the pixels whose centre's voxel is
    at least half inside the mask (`mask_coverage` >= 0.5)."""
    return mask_coverage(mask, geometry) >= 0.5

