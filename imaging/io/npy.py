"""NumPy ``.npy`` arrays (the preprocessed volumes of M3D-VQA and 3D-RAD) as volumes.

An ``.npy`` file holds voxels and nothing else: no spacing, no orientation, no modality, no
intensity unit. The published 3-D VQA sets store ``(1, 32, 256, 256)`` float arrays (channel,
slices, rows, columns) min-max normalised to 0..1 (M3D's ``m3d_cap_data_prepare.py``), so:

* a leading axis of length 1 (the channel) is dropped; a 2-D array is one slice; other shapes
  are refused;
* the axes are read as (slice, row, column) -> (z, y, x), rows and columns as a viewer shows them
  (the raster convention: patient's left on the image right); the direction of the slice axis
  is unknown (the source stacks were axial, coronal or sagittal), so the orientation is recorded
  as assumed;
* the spacing is 1.0 mm on every axis unless ``spacing=(row_mm, col_mm)`` is given, and even
  then the slice spacing is 1.0 mm: the spacing fact is always **assumed** (source ``default``,
  `imaging.provenance`), so every millimetre figure computed on these volumes is flagged as such
  by evidence quality;
* the modality is the caller's, else the usual heuristic (normalised values are not HU: they are
  guessed as MR, never as CT); ``metadata["intensity"]`` records that the values are unitless.

Arrays are opened memory-mapped (``allow_pickle=False``: an ``.npy`` holding Python objects is
refused, it could run code) and checked against ``max_voxels`` before reading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import CorruptFileError, EmptyImageError, FrameSelectionError, cause
from imaging.io.limits import check_shape
from imaging.volume import Volume, axis_aligned_affine

#: the slice spacing taken for every .npy volume (nothing in the file states one)
ASSUMED_MM = 1.0


def _array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise CorruptFileError(f"{path.name}: the .npy file holds Python objects, not a numeric array; it is "
                                   "refused because unpickling can run code") from None
        raise CorruptFileError(f"{path.name}: not a readable .npy array ({cause(exc)}); re-export it") from None
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"{path.name}: the .npy file is truncated or damaged ({cause(exc)}); "
                               "re-download it") from None


def load_npy(path: Path, options: LoadOptions) -> Volume:
    """Read an ``.npy`` array into a `Volume` (see the module docstring and `imaging.io.load`)."""
    source = path.name
    arr = _array(path)
    if arr.dtype.kind not in "biuf":
        raise CorruptFileError(f"{source}: the array has dtype {arr.dtype}, not numbers; it is not an image")
    shape = arr.shape
    while len(shape) > 3 and shape[0] == 1:  # (1, D, H, W) channel-first volumes
        arr, shape = arr[0], shape[1:]
    if len(shape) == 2:
        arr, shape = arr[None], (1, *shape)
    if len(shape) != 3:
        raise FrameSelectionError(f"{source}: an array of shape {tuple(arr.shape)} is not one volume; mmreason reads "
                                  "(z, y, x), (1, z, y, x) or (y, x) arrays: save one channel of one volume")
    if 0 in shape:
        raise EmptyImageError(f"{source}: the array has a zero-sized axis {tuple(shape)}")
    check_shape(tuple(int(n) for n in shape), options.max_voxels, source)
    dy, dx = options.spacing if options.spacing is not None else (ASSUMED_MM, ASSUMED_MM)
    spacing = (ASSUMED_MM, dy, dx)
    given = "in-plane spacing from the argument, " if options.spacing is not None else ""
    metadata = {
        "format": "NPY",
        "dtype": str(arr.dtype),
        "spacing_assumed": (f"a .npy array states no spacing: {given}{ASSUMED_MM:g} mm "
                            f"{'slice spacing' if given else 'on every axis'} assumed"),
        "geometry_source": "assumed: a .npy array states no axes; (slice, row, column) read as (z, y, x) with "
                           "rows and columns as displayed",
        "intensity": "unitless values as stored (not HU)",
    }
    return build_volume(np.asarray(arr), axis_aligned_affine(spacing), spacing, options, source=source,
                        name=path.stem, metadata=metadata)
