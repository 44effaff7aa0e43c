"""Bring any (array, index->LPS affine) pair to the canonical (z, y, x) = (S, P, L) layout.

The array is only transposed and flipped (numpy views, no copy), so the loaders copy the voxels
exactly once, when they convert to float32. The affine is updated so that every voxel keeps its
exact world position: oblique and sheared affines stay oblique and sheared; only the axis order
and signs change to the closest canonical ones (nibabel's `io_orientation`).
"""

from __future__ import annotations

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from imaging.io.errors import CorruptFileError

#: array axis 0 -> world z (S), axis 1 -> world y (P), axis 2 -> world x (L), all increasing
CANONICAL_ORNT = np.array([[2.0, 1.0], [1.0, 1.0], [0.0, 1.0]])

#: RAS (NIfTI world) <-> LPS (DICOM world): negate x and y
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_canonical(
    array: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    source: str,
    color: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], np.ndarray | None]:
    """Reorder a 3-D ``array`` whose indices map to LPS mm through ``affine``.

    Args:
        array: voxels in any axis order (3-D).
        affine: 4x4 map from that array's indices to LPS mm.
        spacing: the voxel size along each of ``array``'s axes, in mm.
        source: label for error messages.
        color: optional ``array.shape + (3,)`` colour copy, reoriented the same way.

    Returns:
        ``(view, canonical_affine, canonical_spacing, color_view)``; views are transposed/flipped.
    """
    if not np.all(np.isfinite(affine)):
        raise CorruptFileError(f"{source}: the image geometry (position, orientation or spacing in the header) "
                               "holds NaN or infinite values, so voxels cannot be placed in patient space; fix "
                               "the header or re-export the file")
    ornt = io_orientation(affine)
    if np.isnan(ornt).any():
        raise CorruptFileError(
            f"{source}: the affine {np.round(affine[:3, :3], 4).tolist()} has a zero or degenerate column, "
            "so voxel axes cannot be placed in patient space; fix the header (pixdim/sform/qform)"
        )
    xform = ornt_transform(ornt, CANONICAL_ORNT)
    view = apply_orientation(array, xform)
    new_affine = affine @ inv_ornt_aff(xform, array.shape)
    new_spacing = [0.0, 0.0, 0.0]
    for axis, (target, _flip) in enumerate(xform):
        new_spacing[int(target)] = float(spacing[axis])
    color_view = apply_orientation(color, xform) if color is not None else None
    return view, new_affine, (new_spacing[0], new_spacing[1], new_spacing[2]), color_view


def axis_codes(affine: np.ndarray) -> str:
    """Closest patient direction of each (z, y, x) voxel axis, e.g. ``"SPL"`` for canonical volumes."""
    ornt = io_orientation(affine)
    labels = (("R", "L"), ("A", "P"), ("I", "S"))
    return "".join(labels[int(a)][int(f > 0)] for a, f in ornt)


def obliquity_degrees(affine: np.ndarray) -> float:
    """Largest angle (degrees) between a voxel axis and its closest patient axis (0 = axis-aligned)."""
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    cosines = np.abs(cols).max(axis=0).clip(0.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def as_float32(view: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """One C-contiguous float32 copy of ``view * slope + intercept`` (the loaders' only copy)."""
    out = np.empty(view.shape, dtype=np.float32)
    np.copyto(out, view, casting="unsafe")
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
    return out
