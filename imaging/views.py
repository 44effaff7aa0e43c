"""Rendered 2-D views of a volume, each carrying its exact pixel -> voxel -> mm geometry.

Rendering samples the volume at exactly the voxel coordinates the geometry assigns to each pixel
centre (bilinear, clamped at the border), so what the model sees and what the geometry claims can
never drift apart. Slices are resampled to square pixels whose size is the finer of the two
in-plane spacings, so anisotropic CT does not look squashed.

Display conventions (radiological): axial - patient right on the image left, anterior up;
coronal - patient right on the image left, superior up; sagittal - anterior on the left,
superior up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from imaging.geometry import GeometryError, MontageGeometry, Tile, ViewGeometry, clamp_box_to_image
from imaging.volume import Volume
from imaging.windowing import Window, apply_window, resolve_window

PLANES = ("axial", "coronal", "sagittal")
#: voxel axis that is constant on each plane
PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
#: largest side of a rendered view before it is scaled down (keeps model inputs bounded)
MAX_SIDE = 1024


@dataclass
class View:
    """One rendered image and its geometry.

    Attributes:
        image: the rendered PIL image (mode ``L`` or ``RGB``).
        geometry: pixel -> voxel -> mm map (`ViewGeometry`, or `MontageGeometry` for montages).
        description: a short text for the model ("axial slice 40/80 at z=+12.0 mm, lung window").
        plane: ``axial``/``coronal``/``sagittal``/``projection``/``montage``/``crop``.
        window: the window preset name used.
        view_id: assigned by the tool context when the view is shown to a model.
    """

    image: Image.Image
    geometry: ViewGeometry | MontageGeometry
    description: str = ""
    plane: str = ""
    window: str = ""
    view_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def sample_plane(volume_data: np.ndarray, geometry: ViewGeometry) -> np.ndarray:
    """Sample ``volume_data`` (z, y, x) at every pixel centre of ``geometry`` -> (H, W) float32.

    Axis-aligned geometries (the common case) use two separable 1-D linear interpolations; any
    other uses `scipy.ndimage.map_coordinates`. A projection samples the maximum along its axis.
    """
    data = volume_data
    geom = geometry
    if geometry.projection_axis is not None:
        data = np.expand_dims(volume_data.max(axis=geometry.projection_axis), geometry.projection_axis)
        origin = list(geometry.origin)
        origin[geometry.projection_axis] = 0.0
        geom = ViewGeometry(
            origin=origin, col_step=geometry.col_step, row_step=geometry.row_step,
            width=geometry.width, height=geometry.height, spacing=geometry.spacing,
        )
    col, row, org = (np.asarray(v) for v in (geom.col_step, geom.row_step, geom.origin))
    col_axes, row_axes = np.flatnonzero(np.abs(col) > 1e-12), np.flatnonzero(np.abs(row) > 1e-12)
    if len(col_axes) == 1 and len(row_axes) == 1 and col_axes[0] != row_axes[0]:
        ca, ra = int(col_axes[0]), int(row_axes[0])
        fa = 3 - ca - ra
        plane = _interp_axis(data, fa, np.array([org[fa]]))  # fixed axis, kept as length 1
        plane = np.take(plane, 0, axis=fa)
        # after removing fa, the remaining axes keep their relative order
        ca2, ra2 = (ca - (ca > fa)), (ra - (ra > fa))
        plane = _interp_axis(plane, ra2, org[ra] + row[ra] * np.arange(geom.height))
        plane = _interp_axis(plane, ca2, org[ca] + col[ca] * np.arange(geom.width))
        return (plane if ra2 == 0 else plane.T).astype(np.float32, copy=False)
    from scipy.ndimage import map_coordinates

    ys, xs = np.mgrid[0 : geom.height, 0 : geom.width]
    coords = geom.pixel_to_voxel(np.column_stack([xs.ravel(), ys.ravel()])).T
    out = map_coordinates(np.nan_to_num(data), coords, order=1, mode="nearest")
    return out.reshape(geom.height, geom.width).astype(np.float32)


def _interp_axis(data: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``data`` along ``axis`` at continuous ``coords`` (clamped)."""
    n = data.shape[axis]
    c = np.clip(coords, 0, n - 1)
    i0 = np.floor(c).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (c - i0).astype(np.float32)
    if np.all(w == 0):
        return np.take(data, i0, axis=axis)
    shape = [1] * data.ndim
    shape[axis] = len(c)
    w = w.reshape(shape)
    a, b = np.take(data, i0, axis=axis), np.take(data, i1, axis=axis)
    return a * (1 - w) + b * w


def plane_geometry(
    volume: Volume, plane: str, index: float | None = None, max_side: int = MAX_SIDE, volume_id: str = "0"
) -> ViewGeometry:
    """Geometry of a full slice through ``volume`` with square pixels.

    Args:
        plane: ``axial``, ``coronal`` or ``sagittal``.
        index: slice index along the plane's normal (continuous; default the central slice).
        max_side: the longest image side is scaled down to this many pixels if larger.
    """
    if plane not in PLANES:
        raise GeometryError(f"unknown plane '{plane}'; choose one of {', '.join(PLANES)}")
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing
    axis = PLANE_AXIS[plane]
    n_axis = volume.shape[axis]
    if index is None:
        index = n_axis // 2
    if not (-0.5 <= index <= n_axis - 0.5):
        raise GeometryError(f"{plane} slice index {index} is outside 0..{n_axis - 1}")
    # (voxel axis, count, spacing, flip) for image columns and rows
    if plane == "axial":
        col_ax, row_ax, flip_rows = (2, nx, sx), (1, ny, sy), False
    elif plane == "coronal":
        col_ax, row_ax, flip_rows = (2, nx, sx), (0, nz, sz), True
    else:
        col_ax, row_ax, flip_rows = (1, ny, sy), (0, nz, sz), True
    pix = min(col_ax[2], row_ax[2])
    width_f, height_f = col_ax[1] * col_ax[2] / pix, row_ax[1] * row_ax[2] / pix
    scale = min(1.0, max_side / max(width_f, height_f))
    width, height = max(1, round(width_f * scale)), max(1, round(height_f * scale))
    # pixel i centre -> voxel (i + 0.5) * n / width - 0.5 (edges of the image on voxel edges)
    col_step = np.zeros(3)
    row_step = np.zeros(3)
    origin = np.zeros(3)
    origin[axis] = index
    col_step[col_ax[0]] = col_ax[1] / width
    origin[col_ax[0]] = 0.5 * col_ax[1] / width - 0.5
    r = row_ax[1] / height
    if flip_rows:
        row_step[row_ax[0]] = -r
        origin[row_ax[0]] = row_ax[1] - 0.5 - 0.5 * r
    else:
        row_step[row_ax[0]] = r
        origin[row_ax[0]] = 0.5 * r - 0.5
    return ViewGeometry(
        origin=origin, col_step=col_step, row_step=row_step, width=width, height=height,
        spacing=volume.spacing, affine=volume.affine, volume=volume_id,
    )


def render(
    volume: Volume,
    geometry: ViewGeometry,
    window: str | Window | None = None,
    description: str = "",
    plane: str = "",
) -> View:
    """Sample and window ``volume`` on ``geometry``; colour volumes keep their colour."""
    if volume.color is not None:
        channels = [sample_plane(volume.color[..., c].astype(np.float32), geometry) for c in range(3)]
        image = Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8), "RGB")
        win_name = "color"
    else:
        win = resolve_window(window, volume.modality, volume.data)
        win_name = window if isinstance(window, str) else ("auto" if window is None else "custom")
        image = Image.fromarray(apply_window(sample_plane(volume.data, geometry), win), "L")
    return View(image=image, geometry=geometry, description=description, plane=plane, window=win_name)


def slice_view(
    volume: Volume,
    plane: str = "axial",
    index: float | None = None,
    window: str | Window | None = None,
    max_side: int = MAX_SIDE,
    volume_id: str = "0",
) -> View:
    """Render one axial, coronal or sagittal slice at voxel ``index`` (default: central)."""
    geom = plane_geometry(volume, plane, index, max_side=max_side, volume_id=volume_id)
    axis = PLANE_AXIS[plane]
    k = geom.origin[axis]
    pos_mm = float(volume.voxel_to_world([geom.origin])[0][[2, 1, 0][axis]])
    label = {0: "z", 1: "y", 2: "x"}[axis]
    win_label = window if isinstance(window, str) else "auto"
    desc = f"{plane} slice {k:g} of 0..{volume.shape[axis] - 1} ({label}={pos_mm:+.1f} mm), {win_label} window"
    return render(volume, geom, window, description=desc, plane=plane)


def mm_to_index(volume: Volume, plane: str, position_mm: float) -> float:
    """Slice index along ``plane``'s normal for an LPS position in mm along that world axis."""
    axis = PLANE_AXIS[plane]
    world_axis = [2, 1, 0][axis]  # voxel z -> world z (index 2), y -> y, x -> x
    a = volume.affine
    step = a[world_axis, axis]
    if abs(step) < 1e-9:
        raise GeometryError(f"the volume is oblique; give a slice index for the {plane} plane instead of mm")
    return float((position_mm - a[world_axis, 3]) / step)


def projection_view(
    volume: Volume, plane: str = "coronal", window: str | Window | None = None, max_side: int = MAX_SIDE,
    volume_id: str = "0",
) -> View:
    """Maximum-intensity projection along the normal of ``plane`` (e.g. coronal MIP)."""
    geom = plane_geometry(volume, plane, None, max_side=max_side, volume_id=volume_id)
    geom = ViewGeometry(**{**geom.__dict__, "projection_axis": PLANE_AXIS[plane]})
    return render(volume, geom, window, description=f"{plane} maximum-intensity projection", plane="projection")


def key_slice_indices(n: int, count: int) -> list[int]:
    """``count`` evenly spaced slice indices strictly inside 0..n-1 (the documented key slices)."""
    count = max(1, min(count, n))
    return sorted({int(round((i + 1) * n / (count + 1) - 0.5)) for i in range(count)})


def montage_view(
    volume: Volume,
    plane: str = "axial",
    indices: list[int] | None = None,
    count: int = 9,
    window: str | Window | None = None,
    tile_side: int = 256,
    volume_id: str = "0",
) -> View:
    """A grid of slices; each panel keeps its own geometry inside a `MontageGeometry`."""
    axis = PLANE_AXIS[plane]
    indices = indices if indices is not None else key_slice_indices(volume.shape[axis], count)
    geoms = [plane_geometry(volume, plane, i, max_side=tile_side, volume_id=volume_id) for i in indices]
    cols = math.ceil(math.sqrt(len(geoms)))
    rows = math.ceil(len(geoms) / cols)
    tw, th = max(g.width for g in geoms), max(g.height for g in geoms)
    canvas = Image.new("L" if volume.color is None else "RGB", (cols * tw, rows * th))
    # one window for every panel: an auto (percentile) window is a pass over the whole volume
    win = window if volume.color is not None else resolve_window(window, volume.modality, volume.data)
    tiles = []
    for n, g in enumerate(geoms):
        x0, y0 = (n % cols) * tw, (n // cols) * th
        canvas.paste(render(volume, g, win).image, (x0, y0))
        tiles.append(Tile(x0, y0, g))
    geom = MontageGeometry(tiles=tuple(tiles), width=cols * tw, height=rows * th)
    desc = f"montage of {len(indices)} {plane} slices {indices} (row by row, left to right)"
    return View(image=canvas, geometry=geom, description=desc, plane="montage",
                window=window if isinstance(window, str) else "auto")


def crop_view(
    volume: Volume,
    parent: View,
    box: tuple[float, float, float, float],
    margin: float = 0.1,
    max_pixels: int = 448 * 448,
    min_side: int = 56,
    max_zoom: float = 4.0,
    window: str | Window | None = None,
) -> View:
    """Zoomed crop of ``box`` (edges, parent pixels) re-sampled from the volume at full detail.

    The box grows by ``margin`` (fraction of its size) on each side, is clipped to the parent,
    and is rendered with square pixels so that its area is at most ``max_pixels``. The detail is
    re-sampled from the volume, not up-scaled from the parent image, and magnified at most
    ``max_zoom`` times the finest voxel spacing.
    """
    tile, box = parent.geometry.tile_for_box(box)
    geom = tile.geometry
    x1, y1, x2, y2 = geom.validate_box(box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    x1, y1, x2, y2 = clamp_box_to_image((x1 - mx, y1 - my, x2 + mx, y2 + my), geom.width, geom.height)
    # square output pixels in mm: choose the scale from the box's extent in mm
    psx, psy = geom.pixel_spacing_mm
    w_mm, h_mm = (x2 - x1) * psx, (y2 - y1) * psy
    fine = min(volume.spacing[a] for a in range(3) if volume.shape[a] > 1) if not volume.is_2d else min(volume.spacing[1:])
    out_w, out_h = w_mm / fine, h_mm / fine
    scale = min(math.sqrt(max_pixels / (out_w * out_h)), max_zoom)
    out_w, out_h = out_w * scale, out_h * scale
    if min(out_w, out_h) < min_side:
        k = min_side / min(out_w, out_h)
        out_w, out_h = out_w * k, out_h * k
    cw, ch = max(1, round(out_w)), max(1, round(out_h))
    cgeom = geom.crop((x1, y1, x2, y2), cw, ch)
    win = window if window is not None else (parent.window if parent.window not in ("", "custom", "color") else None)
    desc = f"zoomed crop [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}] of {parent.view_id or 'a view'}"
    return render(volume, cgeom, win, description=desc, plane="crop")
