"""Size limits and the policy for NaN/inf voxels, applied by every loader."""

from __future__ import annotations

import math

import numpy as np

from imaging.io.errors import EmptyImageError, ImageTooLargeError, InvalidOptionError, NonFiniteValuesError

#: Largest number of voxels a loader allocates unless the caller passes ``max_voxels=``:
#: 1.5e9 float32 voxels are 6 GB, beyond any clinical CT (a 512x512x2000 CT is 5.2e8).
DEFAULT_MAX_VOXELS = 1_500_000_000

#: What to do with NaN/inf voxels: raise, replace by 0, or replace by the smallest finite value.
NONFINITE_POLICIES = ("error", "zero", "min")


def check_shape(shape: tuple[int, ...], max_voxels: int, source: str) -> None:
    """Refuse empty or oversized shapes (from a header, before any pixel is read).

    Args:
        shape: the array shape announced by the header.
        max_voxels: the largest accepted number of voxels.
        source: a short label for messages (file or folder name).
    """
    if any(int(n) <= 0 for n in shape):
        raise EmptyImageError(
            f"{source}: the image has a zero-sized dimension (shape {tuple(shape)}); it holds no pixels"
        )
    n = math.prod(int(s) for s in shape)
    if n > max_voxels:
        raise ImageTooLargeError(
            f"{source}: the header announces shape {tuple(shape)} = {n:.3g} voxels "
            f"({n * 4 / 1e9:.1f} GB as float32), above the limit of {max_voxels:.3g}; "
            "if the file is genuine and memory allows, pass a larger max_voxels= (CLI: --max-voxels)"
        )


def handle_nonfinite(data: np.ndarray, policy: str, source: str) -> int:
    """Apply ``policy`` to NaN/inf voxels of float ``data`` in place; return how many were replaced.

    ``error`` (the default everywhere) raises `NonFiniteValuesError`; ``zero`` writes 0;
    ``min`` writes the smallest finite value (so background stays background in windows).
    """
    if policy not in NONFINITE_POLICIES:
        raise InvalidOptionError(f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {policy!r}")
    if not np.issubdtype(data.dtype, np.floating):
        return 0
    # min/max propagate NaN and expose inf without a full-size mask: the common clean case is O(1) memory
    if np.isfinite(data.min()) and np.isfinite(data.max()):
        return 0
    bad = ~np.isfinite(data)
    count = int(np.count_nonzero(bad))
    if count == 0:
        return 0
    if policy == "error":
        raise NonFiniteValuesError(
            f"{source}: {count} voxel(s) are NaN or infinite; pass nonfinite='zero' or nonfinite='min' "
            "(CLI: --nonfinite) to replace them"
        )
    if policy == "zero":
        data[bad] = 0.0
    else:
        finite = data[~bad]
        data[bad] = finite.min() if finite.size else 0.0
    return count
