"""FreeSurfer MGH/MGZ (.mgh, .mgz; 3-D, and 4-D with ``frame=``) through nibabel.

The header's vox2ras matrix maps voxels to RAS+ mm like a NIfTI affine, so the geometry takes the
NIfTI path: x and y rows negated for LPS, then `imaging.io.orientation.to_canonical`. A header
whose ``goodRASFlag`` is not set carries no direction cosines (FreeSurfer then assumes coronal
slices), which is recorded so the orientation is reported as assumed.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.freesurfer.mghformat import MGHImage

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import CorruptFileError, UnsupportedFormatError
from imaging.io.limits import check_shape
from imaging.io.nifti import READ_ERRORS, select_shape
from imaging.io.orientation import RAS_TO_LPS, to_canonical
from imaging.volume import Volume



def load_mgh(path: Path, options: LoadOptions) -> Volume:
    """Read an MGH/MGZ file into a canonical `Volume` (see `imaging.io.load` for ``options``)."""
    source = path.name
    try:
        img = MGHImage.from_filename(str(path))
    except READ_ERRORS as exc:
        raise CorruptFileError(f"{source}: cannot read the MGH header ({exc}); the file is truncated or not "
                               "MGH/MGZ, re-export or re-download it") from exc
    spatial, frame = select_shape(tuple(int(n) for n in img.shape), options.frame, source, kind="MGH")
    check_shape(spatial, options.max_voxels, source)
    index = (Ellipsis,) if frame is None else (slice(None),) * 3 + (frame,)
    try:
        raw = np.asanyarray(img.dataobj[index])
    except READ_ERRORS as exc:
        raise CorruptFileError(f"{source}: the voxel data are truncated or damaged ({exc}); re-export or "
                               "re-download the file") from exc
    if raw.dtype.kind not in "biuf":
        raise UnsupportedFormatError(f"{source}: MGH data type {raw.dtype} is not supported")
    raw = raw.reshape(spatial)
    lps = RAS_TO_LPS @ img.affine
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    view, affine, spacing, _ = to_canonical(raw, lps, tuple(zooms), source)
    good_ras = int(img.header["goodRASFlag"]) > 0
    metadata = {
        "format": "MGH",
        "source_shape": list(img.shape),
        "source_orientation": "".join(nib.aff2axcodes(img.affine)) + " (RAS world)",
        "stored_dtype": str(raw.dtype),
        "spacing_source": "MGH header voxel sizes",
        "geometry_source": ("MGH header vox2ras (direction cosines and centre)" if good_ras else
                            "assumed: the MGH header's goodRASFlag is 0, so it holds no direction cosines and "
                            "FreeSurfer's default coronal orientation is taken"),
    }
    if frame is not None:
        metadata["frame"] = frame
    stem = path.name[: -len(path.suffix)]
    return build_volume(view, affine, spacing, options, source=source, name=stem, metadata=metadata)
