"""Measurements of a region (a boolean mask on a volume's grid), in millimetres and HU.

Plain functions on arrays so the ``measure`` tool, the verifiers and the rules planner share one
definition of every number. Conventions:

* Masks are boolean ``(z, y, x)`` arrays on the volume's grid (canonical LPS, see
  `imaging.volume`). A region is **2-D** when it lies on one plane (``plane_axis`` = the voxel axis
  normal to that plane, e.g. 0 for an axial slice or a 2-D X-ray) and **3-D** otherwise.
* Sizes come from voxel counts times the voxel size; diameters come from the sub-voxel boundary
  (the 0.5 iso-contour between inside and outside voxel centres) mapped through the affine, so
  they are in mm whatever the spacing, and agree between isotropic and anisotropic grids within
  sampling error.
* ``width_mm`` is the region's left-right extent (along the x voxel axis, the patient's
  right-left on canonical grids): ``(last column - first column + 1) * column step``, the
  horizontal width a reader measures on a radiograph (cardiac and thoracic diameters).
* Laterality is the patient's side (LPS: world ``x`` grows towards the patient's left) of the
  region's centroid relative to the body midline; see `body_midline_x_mm`. It is stated only when
  the volume's orientation came from the file, DICOM geometry, the caller or the user
  (``--assume-orientation``); from an assumed orientation the side is ``unknown`` and
  `side_withheld` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from imaging.errors import MMReasonError
from imaging.volume import Volume

#: centroids closer than this to the midline (mm) are called "midline"
MIDLINE_TOLERANCE_MM = 5.0
#: a region with at least this fraction of its voxels on each side of the midline is "midline"
BILATERAL_FRACTION = 0.25
#: HU above which a CT voxel counts as body when finding the midline (air is -1000, fat -100)
BODY_HU_THRESHOLD = -500.0
#: the largest above-threshold region counts as the body only if it fills this share of the slice
MIN_BODY_FRACTION = 0.1
#: MR voxels above this share of the slice's 99th percentile are the patient, not background
MR_FOREGROUND_FRACTION = 0.1
PLANE_NAMES = {0: "axial", 1: "coronal", 2: "sagittal"}
#: name endings of targets that are one side of the patient (lung_left, kidney_right ...)
SIDED_SUFFIXES = ("_left", "_right")


class MeasurementError(MMReasonError, ValueError):
    """A region cannot be measured (empty, or not on the volume's grid)."""


def check_mask(mask: np.ndarray, volume: Volume) -> tuple[np.ndarray, tuple[slice, slice, slice]]:
    """Return ``mask`` as bool and its bounding box, checking it is on ``volume``'s grid and not empty."""
    mask = np.asarray(mask)
    if mask.shape != volume.shape:
        raise MeasurementError(
            f"mask shape {tuple(mask.shape)} does not match the volume grid {volume.shape} (z, y, x)"
        )
    mask = mask.astype(bool, copy=False)
    bbox = mask_bbox(mask)
    if bbox is None:
        raise MeasurementError("the region is empty: there is nothing to measure")
    return mask, bbox


def mask_bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Tight index slices (z, y, x) around the true voxels of ``mask``; None when it is empty.

    Each axis is searched only inside the range already found for the previous ones, so a
    small region in a large volume costs about one pass over the array.
    """
    out: list[slice] = []
    sub = mask
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(sub.any(axis=others))
        if hits.size == 0:
            return None
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
        sub = mask[tuple(out) + (slice(None),) * (2 - axis)]
    return tuple(out)  # type: ignore[return-value]


def axis_lengths_mm(affine: np.ndarray) -> np.ndarray:
    """Length in mm of one step along each voxel axis (z, y, x), read from the affine."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def boundary_points_mm(mask2d: np.ndarray, row_vec_mm: np.ndarray, col_vec_mm: np.ndarray) -> np.ndarray:
    """Sub-pixel boundary points of a 2-D mask as in-plane mm coordinates (N, 3).

    The boundary is the 0.5 iso-contour of the mask (halfway between inside and outside pixel
    centres). ``row_vec_mm`` and ``col_vec_mm`` are the mm displacements of one row / one column
    step (columns of the affine), so non-square pixels and oblique planes are handled.
    """
    from skimage.measure import find_contours

    rows, cols = np.nonzero(mask2d)
    r0, c0 = rows.min(), cols.min()
    # crop to the region plus a one-pixel frame so the contour closes and the cost scales with it
    sub = np.pad(mask2d[r0 : rows.max() + 1, c0 : cols.max() + 1], 1).astype(np.float32)
    contours = find_contours(sub, 0.5)
    pts = np.concatenate(contours) if contours else np.empty((0, 2))
    if len(pts) == 0:
        pts = np.column_stack([rows - r0 + 1.0, cols - c0 + 1.0])
    pts = pts + [r0 - 1, c0 - 1]
    return pts[:, :1] * row_vec_mm + pts[:, 1:] * col_vec_mm


def diameters_mm(points_mm: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Longest diameter of a planar point set and its perpendicular extent, in mm.

    The longest diameter is the largest distance between two points of the convex hull; the
    perpendicular is the extent of the points along the in-plane direction orthogonal to it.

    Returns:
        ``(longest, perpendicular, endpoints)`` with ``endpoints`` the two points (2, 3) in mm.
    """
    pts = np.unique(np.asarray(points_mm, dtype=np.float64), axis=0)
    if len(pts) < 2:
        return 0.0, 0.0, np.vstack([pts, pts])[:2]
    hull_pts = _hull_points(pts)
    d = np.linalg.norm(hull_pts[:, None, :] - hull_pts[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    longest = float(d[i, j])
    axis = (hull_pts[j] - hull_pts[i]) / max(longest, 1e-12)
    centred = pts - pts.mean(axis=0)
    # the plane's normal is the smallest principal direction of the points
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    perp = np.cross(normal, axis)
    proj = pts @ perp
    return longest, float(proj.max() - proj.min()), np.vstack([hull_pts[i], hull_pts[j]])


def _hull_points(pts: np.ndarray) -> np.ndarray:
    """Vertices of the 2-D convex hull of coplanar 3-D points (all points if degenerate)."""
    from scipy.spatial import ConvexHull, QhullError

    centred = pts - pts.mean(axis=0)
    basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
    try:
        return pts[ConvexHull(centred @ basis.T).vertices]
    except (QhullError, ValueError):  # collinear or too few points: every point is extreme
        return pts


def intensity_stats(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, minimum and maximum of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


def interior_intensity(volume: Volume, mask: np.ndarray, plane_axis: int | None = None) -> tuple[dict[str, float], int]:
    """Intensity statistics (`intensity_stats`) of a region's interior, and its voxel count.

    The interior is the region less one face-connected layer (a voxel all of whose face neighbours
    are in the region; in its plane only for a 2-D region): the edge layer averages the region with
    its surroundings (partial volume), which on thick slices is most of a small lesion. A region
    too thin to have an interior gives NaN statistics and 0 voxels.
    """
    mask, bbox = check_mask(mask, volume)
    if volume.is_2d:
        plane_axis = 0
    grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in bbox)
    structure = ndimage.generate_binary_structure(3, 1)
    if plane_axis is not None:  # no neighbours across the plane of a 2-D region
        index: list[Any] = [slice(None)] * 3
        for k in (0, 2):
            index[plane_axis] = k
            structure[tuple(index)] = False
    core = ndimage.binary_erosion(mask[grown], structure=structure, border_value=0)
    return intensity_stats(volume.data[grown][core]), int(np.count_nonzero(core))


def centroid_voxel(mask: np.ndarray, bbox: tuple[slice, slice, slice] | None = None) -> np.ndarray:
    """Mean voxel index (z, y, x) of the mask (``bbox``: its `mask_bbox`, to skip the empty rest)."""
    bbox = bbox or (slice(None),) * 3  # type: ignore[assignment]
    offset = [s.start or 0 for s in bbox]  # type: ignore[union-attr]
    return np.array([float(np.mean(idx)) + o for idx, o in zip(np.nonzero(mask[bbox]), offset)])


def body_midline_x_mm(volume: Volume, z_index: int) -> tuple[float, str]:
    """World x (mm, LPS) of the patient's midline, and how it was found.

    For CT: the centre of the left-right extent of the largest connected region above
    `BODY_HU_THRESHOLD` on axial slice ``z_index`` (the body; the table and air are excluded),
    if it fills at least `MIN_BODY_FRACTION` of the slice. For MR the same with the threshold
    `MR_FOREGROUND_FRACTION` of the slice's 99th percentile (the head or body against the dark
    background), so an off-centre patient keeps the sides right near the midline. Otherwise
    (radiographs, or no body found): the centre of the volume in world x.

    Returns:
        ``(x_mm, source)`` with source ``"body"`` or ``"volume_center"``.
    """
    nz, ny, nx = volume.shape
    z_index = int(np.clip(z_index, 0, nz - 1))
    plane = volume.data[z_index]
    body = None
    if volume.modality == "CT":
        body = plane > BODY_HU_THRESHOLD
    elif volume.modality == "MR" and not volume.is_2d:
        finite = plane[np.isfinite(plane)]
        top = float(np.percentile(finite, 99)) if finite.size else 0.0
        body = plane > MR_FOREGROUND_FRACTION * top if top > 0 else None
    if body is not None:
        labels, n = ndimage.label(body)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            cols = np.nonzero((labels == 1 + int(np.argmax(sizes))).any(axis=0))[0]
            if sizes.max() >= MIN_BODY_FRACTION * body.size:
                x_mid = (cols.min() + cols.max()) / 2.0
                return float(volume.voxel_to_world([[z_index, (ny - 1) / 2, x_mid]])[0, 0]), "body"
    centre = [(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2]
    return float(volume.voxel_to_world([centre])[0, 0]), "volume_center"


def spacing_note(volume: Volume) -> str:
    """The `imaging.provenance.Fact.describe` text of an assumed spacing ("" when the file states it)."""
    fact = volume.facts["spacing"]
    return fact.describe() if fact.assumed else ""


def side_withheld(volume: Volume) -> str:
    """Why the patient's left and right cannot be read from ``volume`` ("" when they can).

    A side read from an assumed orientation (see `imaging.provenance`) is a guess that looks like a
    finding: a right-lung nodule reported in the left lung. Such volumes get no side at all.
    """
    fact = volume.facts["orientation"]
    if not fact.assumed:
        return ""
    return f"left/right not stated because the orientation is assumed ({fact.detail})"


def laterality(
    mask: np.ndarray, volume: Volume, midline_x_mm: float, centroid_x_mm: float,
    bbox: tuple[slice, slice, slice] | None = None,
) -> tuple[str, float]:
    """Patient side of a region: ``"left"``, ``"right"`` or ``"midline"``.

    ``midline`` when the centroid is within `MIDLINE_TOLERANCE_MM` of the midline or at least
    `BILATERAL_FRACTION` of the region lies on each side (it straddles the midline).

    ``bbox`` (the mask's `mask_bbox`) only saves time.

    Returns:
        ``(side, fraction_left)`` with ``fraction_left`` the share of voxels left of the midline.
    """
    bbox = bbox or (slice(None),) * 3  # type: ignore[assignment]
    cols = np.arange(volume.shape[2])[bbox[2]]  # type: ignore[index]
    # world x of each voxel column; on canonical grids x depends on the column index only
    x_of_col = volume.voxel_to_world(np.column_stack([np.zeros(cols.size), np.zeros(cols.size), cols]))[:, 0]
    per_col = np.count_nonzero(mask[bbox], axis=(0, 1))
    fraction_left = float(per_col[x_of_col > midline_x_mm].sum() / max(per_col.sum(), 1))
    return _side(centroid_x_mm - midline_x_mm, fraction_left), fraction_left


def _side(dx: float, fraction_left: float) -> str:
    """The side of a region whose centroid is ``dx`` mm left of the midline (see `laterality`)."""
    if abs(dx) <= MIDLINE_TOLERANCE_MM or min(fraction_left, 1 - fraction_left) >= BILATERAL_FRACTION:
        return "midline"
    return "left" if dx > 0 else "right"


def component_sides(mask: np.ndarray, volume: Volume, midline_x_mm: float,
                    bbox: tuple[slice, slice, slice] | None = None) -> list[tuple[str, int]]:
    """The side (as `laterality` reads it) and voxel count of each connected component of ``mask``
    (default 6-connectivity, as the segment tool counts them), largest first: several lesions have
    a side each, and the side of their combined centroid is none of them (bilateral lesions read
    "midline").

    ``bbox`` (the mask's `mask_bbox`) only saves time.
    """
    bbox = bbox or tuple(slice(0, n) for n in mask.shape)  # type: ignore[assignment]
    labels, _ = ndimage.label(mask[bbox])
    cols = np.arange(volume.shape[2])[bbox[2]]  # type: ignore[index]
    x_of_col = volume.voxel_to_world(np.column_stack([np.zeros(cols.size), np.zeros(cols.size), cols]))[:, 0]
    out = []
    # each component within its own box: a lesion search over a whole brain finds dozens of small ones
    for i, own in enumerate(ndimage.find_objects(labels), start=1):
        voxels = np.argwhere(labels[own] == i) + [s.start for s in own]
        centroid = voxels.mean(axis=0) + [s.start for s in bbox]  # type: ignore[union-attr]
        fraction_left = float(np.mean(x_of_col[voxels[:, 2]] > midline_x_mm))
        side = _side(float(volume.voxel_to_world([centroid])[0][0]) - midline_x_mm, fraction_left)
        out.append((side, len(voxels)))
    return sorted(out, key=lambda c: -c[1])


@dataclass
class RegionMeasurements:
    """Everything `measure_region` computes about one region.

    Sizes are in mm, mm^2, mm^3 and mL; intensities in ``intensity_unit`` (``HU`` for CT,
    ``a.u.`` otherwise); ``centroid_mm`` is LPS (x, y, z); ``spacing_mm`` is the (z, y, x)
    voxel size used; ``width_mm`` is the left-right extent (see the module docstring).
    ``diameter_endpoints_mm`` and ``width_endpoints_mm`` are the two ends (LPS mm) of the longest
    diameter and of the left-right width (outer column edges, on the row through the region's
    centroid, in the plane of the diameters), so a report draws the calipers of the numbers it
    shows. ``image_2d``: the region lies on a 2-D image (no slices, no axial plane to speak of).
    ``laterality`` is ``unknown`` and ``fraction_left`` None when ``side_withheld`` says why;
    ``spacing_note`` says when the spacing was assumed.
    """

    dims: int
    voxels: int
    spacing_mm: tuple[float, float, float]
    area_mm2: float | None
    volume_mm3: float | None
    longest_diameter_mm: float
    perpendicular_diameter_mm: float
    diameter_plane: str
    diameter_slice: int
    diameter_endpoints_mm: list[list[float]]
    intensity: dict[str, float]
    intensity_unit: str
    centroid_mm: tuple[float, float, float]
    centroid_voxel: tuple[float, float, float]
    laterality: str
    fraction_left: float | None
    midline_x_mm: float
    midline_source: str
    extent_voxels: list[list[int]] = field(default_factory=list)
    width_mm: float = 0.0
    width_endpoints_mm: list[list[float]] = field(default_factory=list)
    image_2d: bool = False
    side_withheld: str = ""
    spacing_note: str = ""

    @property
    def volume_ml(self) -> float | None:
        return None if self.volume_mm3 is None else self.volume_mm3 / 1000.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-native record (tuples become lists) including ``volume_ml``."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["volume_ml"] = self.volume_ml
        return d

    def numbers(self) -> dict[str, tuple[float, str]]:
        """Named values with units, in the order they are reported."""
        out: dict[str, tuple[float, str]] = {}
        if self.dims == 2:
            out["area_mm2"] = (self.area_mm2 or 0.0, "mm2")
        else:
            out["volume_mm3"] = (self.volume_mm3 or 0.0, "mm3")
            out["volume_ml"] = (self.volume_ml or 0.0, "mL")
        out["longest_diameter_mm"] = (self.longest_diameter_mm, "mm")
        out["perpendicular_diameter_mm"] = (self.perpendicular_diameter_mm, "mm")
        out["width_mm"] = (self.width_mm, "mm")
        for k in ("mean", "std", "min", "max"):
            out[f"{k}_intensity"] = (self.intensity[k], self.intensity_unit)
        for k, v in zip("xyz", self.centroid_mm):
            out[f"centroid_{k}_mm"] = (v, "mm")
        return out

    def summary(self) -> str:
        """One or two sentences for a model or a terminal; a 2-D image is described as an image
        (no axial plane, slice or LPS axes)."""
        size = (f"area {self.area_mm2:.1f} mm2" if self.dims == 2
                else f"volume {self.volume_mm3:.1f} mm3 ({self.volume_ml:.2f} mL)")
        i = self.intensity
        x, y, z = self.centroid_mm
        sz, sy, sx = self.spacing_mm
        side = side_text(self.laterality, self.fraction_left, self.side_withheld)
        intensity = (f"intensity mean {i['mean']:.1f} +/- {i['std']:.1f} {self.intensity_unit} "
                     f"(range {i['min']:.0f}..{i['max']:.0f})")
        if self.image_2d:
            _, row, col = self.centroid_voxel
            return (
                f"{size}; longest diameter {self.longest_diameter_mm:.1f} mm x "
                f"{self.perpendicular_diameter_mm:.1f} mm perpendicular; left-right width {self.width_mm:.1f} mm; "
                f"{intensity}; centre at column {col:.0f}, row {row:.0f} of the image; {side}; "
                f"pixel spacing {sy:g} x {sx:g} mm (rows, columns)."
            )
        return (
            f"{size}; longest {self.diameter_plane} diameter {self.longest_diameter_mm:.1f} mm x "
            f"{self.perpendicular_diameter_mm:.1f} mm perpendicular (slice {self.diameter_slice}); "
            f"left-right width {self.width_mm:.1f} mm; "
            f"{intensity}; centroid (x={x:+.1f}, y={y:+.1f}, z={z:+.1f}) mm LPS; {side}; "
            + (f"{self.spacing_note}: every size above rests on it." if self.spacing_note
               else f"spacing {sz:g} x {sy:g} x {sx:g} mm (z, y, x).")
        )


def side_text(side: str, fraction_left: float | None = None, withheld: str = "") -> str:
    """Words for a laterality: a region with a good share on each side (both lungs) is on both
    sides, not "at the midline"; ``withheld`` (see `side_withheld`) replaces any side."""
    if withheld:
        return withheld
    if side != "midline":
        return f"on the patient's {side}"
    if fraction_left is not None and min(fraction_left, 1 - fraction_left) >= BILATERAL_FRACTION:
        return "on both sides of the midline"
    return "at the midline"


def measure_region(volume: Volume, mask: np.ndarray, plane_axis: int | None = None) -> RegionMeasurements:
    """Measure a region of ``volume``.

    Args:
        volume: the volume the mask lies on (its spacing/affine give the mm).
        mask: boolean (z, y, x) mask on ``volume``'s grid.
        plane_axis: the voxel axis normal to the plane of a 2-D region (0 = axial; a 2-D image
            is always axial). ``None`` measures a 3-D region. For 3-D regions the diameters are
            taken on the axial slice of largest area.

    Raises:
        MeasurementError: the mask is empty or not on the volume's grid.
    """
    mask, bbox = check_mask(mask, volume)
    if volume.is_2d:
        plane_axis = 0
    dims = 3 if plane_axis is None else 2
    axis = 0 if plane_axis is None else plane_axis
    steps = axis_lengths_mm(volume.affine)
    in_plane = [a for a in range(3) if a != axis]
    sub = mask[bbox]  # everything below works inside the bounding box
    k = int(np.argmax(np.count_nonzero(sub, axis=tuple(in_plane)))) + bbox[axis].start
    plane_index: list[Any] = list(bbox)
    plane_index[axis] = k
    plane_mask = mask[tuple(plane_index)]
    cols = np.asarray(volume.affine)[:3, :3]
    pts = boundary_points_mm(plane_mask, cols[:, in_plane[0]], cols[:, in_plane[1]])
    longest, perp, ends = diameters_mm(pts)
    # endpoints are relative to the plane crop's first voxel; shift to patient coordinates
    corner = [float(k) if a == axis else float(bbox[a].start) for a in range(3)]
    offset = volume.voxel_to_world([corner])[0]
    cz = centroid_voxel(mask, bbox)
    centroid = volume.voxel_to_world([cz])[0]
    midline, source = body_midline_x_mm(volume, int(round(cz[0])))
    side, frac_left = laterality(mask, volume, midline, float(centroid[0]), bbox)
    withheld = side_withheld(volume)
    if withheld:
        side, frac_left = "unknown", None
    extent = [[s.start, s.stop] for s in bbox]
    row = int(np.clip(round(cz[in_plane[0]]), bbox[in_plane[0]].start, bbox[in_plane[0]].stop - 1))
    width_ends = [[float(k) if a == axis else float(row) if a == in_plane[0] else edge for a in range(3)]
                  for edge in (bbox[2].start - 0.5, bbox[2].stop - 0.5)] if 2 in in_plane else []
    voxels = int(np.count_nonzero(sub))
    return RegionMeasurements(
        dims=dims,
        voxels=voxels,
        spacing_mm=tuple(float(s) for s in volume.spacing),  # type: ignore[arg-type]
        area_mm2=voxels * volume.pixel_area_mm2(axis) if dims == 2 else None,
        volume_mm3=voxels * volume.voxel_volume_mm3 if dims == 3 else None,
        longest_diameter_mm=longest,
        perpendicular_diameter_mm=perp,
        diameter_plane=PLANE_NAMES[axis],
        diameter_slice=k,
        diameter_endpoints_mm=(ends + offset).round(3).tolist(),
        intensity=intensity_stats(volume.data[bbox][sub]),
        intensity_unit="HU" if volume.modality == "CT" else "a.u.",
        centroid_mm=tuple(float(v) for v in centroid),  # type: ignore[arg-type]
        centroid_voxel=tuple(float(v) for v in cz),  # type: ignore[arg-type]
        laterality=side,
        fraction_left=frac_left,
        midline_x_mm=midline,
        midline_source=source,
        extent_voxels=extent,
        width_mm=float((bbox[2].stop - bbox[2].start) * steps[2]),
        width_endpoints_mm=volume.voxel_to_world(width_ends).round(3).tolist() if width_ends else [],
        image_2d=volume.is_2d,
        side_withheld=withheld,
        spacing_note=spacing_note(volume),
    )
