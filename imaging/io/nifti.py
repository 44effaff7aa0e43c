"""NIfTI-1/2 (.nii, .nii.gz; 2-D, 3-D and 4-D with ``frame=``) through nibabel.

NIfTI world coordinates are RAS+ in the header's spatial unit (``xyzt_units``: millimetres, or
metres and microns, converted to mm as ITK does; unknown is read as mm); they become LPS+ by
negating the x and y rows of the affine, then the array is reoriented (views only) to the canonical (z, y, x) = (S, P, L) layout.
Integer data are read unscaled and scaled once during the single float32 conversion.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import is_proxy
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nibabel.imageglobals import logger as nibabel_logger
from nibabel.openers import ImageOpener

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import CorruptFileError, FrameSelectionError, UnsupportedFormatError, cause
from imaging.io.limits import check_shape
from imaging.io.orientation import RAS_TO_LPS, to_canonical
from imaging.volume import Volume

#: errors nibabel/gzip/numpy raise on short or damaged files
READ_ERRORS = (EOFError, OSError, OverflowError, zlib.error, ValueError, ImageFileError, HeaderDataError)

#: millimetres per spatial unit a header's ``xyzt_units`` may state other than mm (unknown is read as mm)
MM_PER_UNIT = {"meter": 1000.0, "micron": 0.001}

#: prefix of the NIfTI ``descrip`` note written by `imaging.writers.write_nifti`
MODALITY_NOTE = "modality="


def nifti_stem(path: Path) -> str:
    """``scan.nii.gz`` -> ``scan``."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def select_shape(shape: tuple[int, ...], frame: int | None, source: str,
                 kind: str = "NIfTI") -> tuple[tuple[int, int, int], int | None]:
    """The 3-D shape that will be read and the 4th-axis frame index to read (None: no 4th axis)."""
    if len(shape) < 2:
        raise UnsupportedFormatError(f"{source}: a {len(shape)}-D {kind} is not an image; expected 2-D, 3-D or 4-D")
    if len(shape) > 4 and any(n != 1 for n in shape[4:]):
        raise UnsupportedFormatError(f"{source}: {len(shape)}-D {kind} (shape {shape}) is not supported; "
                                     "split it into 3-D or 4-D files first")
    spatial = tuple(shape[:3]) + (1,) * (3 - min(3, len(shape)))
    frames = shape[3] if len(shape) >= 4 else 1
    if len(shape) >= 4 and frames > 1:
        if frame is None:
            raise FrameSelectionError(
                f"{source}: 4-D {kind} with {frames} frames (shape {shape}); pick one with frame=0..{frames - 1} "
                "(CLI: --frame N)"
            )
    if frame is not None and frame >= frames:
        what = f"{frames} frames" if len(shape) >= 4 else "a single frame (3-D)"
        raise FrameSelectionError(f"{source}: frame={frame} is out of range; the file has {what}")
    return spatial, (frame or 0) if len(shape) >= 4 else None  # type: ignore[return-value]


@contextmanager
def _nibabel_quiet() -> Iterator[None]:
    """Silence nibabel's header-fix log lines (printed raw on stderr); `_check_geometry` judges them."""
    level = nibabel_logger.level
    nibabel_logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        nibabel_logger.setLevel(level)


def _stored_pixdim(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """pixdim[1:4] as written in the file: nibabel's header check silently turns 0 into 1 and
    negative values into their absolute value, which would hide a header that states no spacing."""
    with ImageOpener(str(path)) as fh:
        raw = type(img.header).from_fileobj(fh, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=np.float64)


def _check_geometry(img: nib.Nifti1Image, path: Path, spatial: tuple[int, int, int]) -> dict[str, str]:
    """Refuse a header whose affine or spacing is unusable; notes on what had to be assumed.

    A NaN/inf affine cannot place a voxel. Without an sform the affine is built from pixdim (the
    qform, or nibabel's pixdim-only fallback), so a pixdim of 0 along an axis that has more than one
    voxel states no spacing (nibabel would use 1.0 mm); a negative pixdim leaves the direction of
    that axis ambiguous (a flip, or an error nibabel discards), so left/right cannot be trusted.
    """
    source = path.name
    if not np.all(np.isfinite(img.affine)):
        raise CorruptFileError(f"{source}: the header's voxel-to-world transform (sform/qform) holds NaN or "
                               "infinite values, so no voxel can be placed in patient space; fix the header "
                               "(e.g. nibabel set_sform/set_qform) or re-export the file")
    notes: dict[str, str] = {}
    if int(img.header["sform_code"]) > 0:
        return notes
    pixdim = _stored_pixdim(img, path)
    bad = [i for i, (p, n) in enumerate(zip(pixdim, spatial)) if n > 1 and (not np.isfinite(p) or p == 0)]
    if bad:
        axes = ", ".join(f"pixdim[{i + 1}] = {pixdim[i]:g}" for i in bad)
        raise CorruptFileError(f"{source}: the header states no voxel size ({axes}) and has no sform, so no "
                               "size in mm can be computed (1.0 mm would be a guess); fix the header's pixdim "
                               "(e.g. nibabel img.header.set_zooms) or set an sform")
    negative = [i for i, p in enumerate(pixdim) if p < 0]
    if negative:
        axes = ", ".join(f"pixdim[{i + 1}] = {pixdim[i]:g}" for i in negative)
        notes["orientation_doubt"] = (f"negative voxel size in the header ({axes}) without an sform: whether that "
                                      "axis is flipped is ambiguous, left/right cannot be trusted; fix the header "
                                      "or give --assume-orientation to accept the axes as loaded")
    return notes


def load_nifti(path: Path, options: LoadOptions) -> Volume:
    """Read a NIfTI file into a canonical `Volume` (see `imaging.io.load` for ``options``)."""
    source = path.name
    try:
        with _nibabel_quiet():
            img = nib.load(str(path))
    except READ_ERRORS as exc:
        raise CorruptFileError(f"{source}: cannot read the NIfTI header ({cause(exc)}); the file is truncated or not "
                               "NIfTI, re-export or re-download it") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise UnsupportedFormatError(f"{source}: nibabel read it as {type(img).__name__}, not NIfTI")
    spatial, frame = select_shape(tuple(int(n) for n in img.shape), options.frame, source)
    check_shape(spatial, options.max_voxels, source)
    notes = _check_geometry(img, path, spatial)
    proxy = img.dataobj
    slope, intercept = 1.0, 0.0
    try:
        if frame is None and is_proxy(proxy):
            raw = np.asanyarray(proxy.get_unscaled())
            slope, intercept = float(proxy.slope), float(proxy.inter)
        else:
            index = (Ellipsis,) if frame is None else (slice(None),) * 3 + (frame,)
            raw = np.asanyarray(proxy[index])
    except READ_ERRORS as exc:
        raise CorruptFileError(f"{source}: the voxel data are truncated or damaged ({cause(exc)}); re-export or "
                               "re-download the file") from exc
    if raw.dtype.kind not in "biuf":
        raise UnsupportedFormatError(f"{source}: NIfTI data type {raw.dtype} (complex or RGB) is not supported; "
                                     "convert it to a scalar image first")
    raw = raw.reshape(spatial)  # 2-D and trailing singleton axes -> 3-D (a view)
    unit = str(img.header.get_xyzt_units()[0])
    lps = RAS_TO_LPS @ img.affine
    if unit in MM_PER_UNIT:  # the header's spatial unit (xyzt_units), as ITK reads it; nibabel ignores it
        lps = np.diag([MM_PER_UNIT[unit]] * 3 + [1.0]) @ lps
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    view, affine, spacing, _ = to_canonical(raw, lps, tuple(zooms), source)
    descrip = img.header.get("descrip")
    text = bytes(np.asarray(descrip).tobytes()).split(b"\0")[0].decode("latin-1") if descrip is not None else ""
    # our writer's note: ``modality=MR sequence=FLAIR`` (older files: the modality alone)
    words = text[len(MODALITY_NOTE):].split() if text.startswith(MODALITY_NOTE) else []
    note = words[0].upper() if words else None
    header = img.header
    metadata = {
        "format": "NIfTI-2" if isinstance(img, nib.Nifti2Image) else "NIfTI-1",
        "source_shape": list(img.shape),
        "source_orientation": "".join(nib.aff2axcodes(img.affine)) + " (RAS world)",
        "stored_dtype": str(raw.dtype),
        "scl_slope": slope,
        "scl_inter": intercept,
        "sform_code": int(header["sform_code"]),
        "qform_code": int(header["qform_code"]),
        "spacing_source": "affine column norms" + (f" in {unit}s (xyzt_units), converted to mm"
                                                   if unit in MM_PER_UNIT else ""),
        **notes,
    }
    if frame is not None:
        metadata["frame"] = frame
    return build_volume(view, affine, spacing, options, source=source, name=nifti_stem(path), metadata=metadata,
                        slope=slope, intercept=intercept, modality_note=note, header_text=text)
