"""Volumes to and from the NIfTI images model toolkits read, and a content key for caching.

Our arrays are LPS ``(z, y, x)`` (`imaging.volume`); NIfTI stores ``(x, y, z)`` with a RAS
affine. `to_nifti` converts as `imaging.writers.write_nifti` does, so a toolkit that reorients to
its own canonical space (TotalSegmentator, a MONAI bundle's ``Orientationd``) and inverts back
returns labels on our grid, which `labels_from_nifti` transposes back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from grounding.segmenters.base import SegmentationError
from imaging.io.orientation import RAS_TO_LPS
from imaging.volume import Volume


def to_nifti(volume: Volume):
    """An in-memory ``nibabel.Nifti1Image`` of ``volume`` ((x, y, z) array, RAS affine)."""
    import nibabel as nib

    return nib.Nifti1Image(volume.data.transpose(2, 1, 0), RAS_TO_LPS @ volume.affine[:, [2, 1, 0, 3]])


def write_temp_nifti(volume: Volume, folder: str | Path) -> Path:
    """`to_nifti` saved as ``folder/image.nii.gz`` (for toolkits whose loaders read files)."""
    import nibabel as nib

    path = Path(folder) / "image.nii.gz"
    nib.save(to_nifti(volume), path)
    return path


def labels_from_nifti(array: np.ndarray, shape: tuple[int, int, int], who: str) -> np.ndarray:
    """A label array on the `to_nifti` grid ``(x, y, z)`` -> integer labels ``(z, y, x)``.

    Raises:
        SegmentationError: the model returned another grid (``who`` names it).
    """
    labels = np.rint(np.asarray(array)).astype(np.int32).transpose(2, 1, 0)
    if labels.shape != tuple(shape):
        raise SegmentationError(f"{who} returned labels of shape {labels.shape}, expected {tuple(shape)}")
    return labels


def volume_key(volume: Volume) -> str:
    """A content key of a volume (data, grid and affine) for caching model outputs."""
    digest = hashlib.blake2b(volume.data.tobytes(), digest_size=16)
    digest.update(np.asarray(volume.affine, dtype=np.float64).tobytes())
    return f"{volume.shape}|{digest.hexdigest()}"
