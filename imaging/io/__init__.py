"""Image loaders: every supported file or folder becomes one canonical `imaging.volume.Volume`.

Formats: NIfTI (.nii, .nii.gz) and FreeSurfer MGH/MGZ through nibabel; NRRD (.nrrd, .nhdr) and
MetaImage (.mha, .mhd) through SimpleITK; DICOM (a series folder, or one file: CT/MR
slice, CR/DX X-ray, one frame of a multi-frame object) through pydicom, compressed syntaxes through
the pylibjpeg plugins (``pip install 'mmreason[dicom-codecs]'``); PNG/JPEG/TIFF/BMP through Pillow.

The result is always float32 ``(z, y, x)`` in the canonical LPS orientation (see
`imaging.volume`), spacing in mm, the index -> LPS mm affine, a modality, allow-listed technical
metadata (never patient identifiers, see `imaging.io.metadata`) and a de-identified ``name``
(the file stem, or the folder name for a series).

Every failure a user can fix raises a subclass of `imaging.io.errors.LoadError` (itself an
`MMReasonError`) whose message names the option or action that fixes it.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaging.io.errors import InputNotFoundError, LoadError, NoDicomError, UnreadableFileError, UnsupportedFormatError
from imaging.io.formats import (
    DICOM_SUFFIXES,
    ITK_SUFFIXES,
    MGH_SUFFIXES,
    NIFTI_SUFFIXES,
    NPY_SUFFIXES,
    RASTER_SUFFIXES,
)
from imaging.io.limits import DEFAULT_MAX_VOXELS, NONFINITE_POLICIES

if TYPE_CHECKING:
    from imaging.io.build import LoadOptions
    from imaging.io.dicom import SeriesInfo
    from imaging.volume import Volume

__all__ = [
    "DEFAULT_MAX_VOXELS", "NONFINITE_POLICIES", "LoadError", "LoadOptions", "SeriesInfo", "detect_format",
    "list_series", "load",
]

# The loaders (nibabel, pydicom, SimpleITK, Pillow) are imported on first use: a command that only
# registers loader options (``infer --help``) should not pay for them.
_LAZY = {"LoadOptions": "imaging.io.build", "SeriesInfo": "imaging.io.dicom"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detect_format(path: Path) -> str:
    """``dicom-folder``, ``nifti``, ``itk`` (NRRD, MetaImage), ``mgh``, ``dicom``, ``raster`` or ``npy`` for an existing
    path (by extension, then content)."""
    if path.is_dir():
        return "dicom-folder"
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    if name.endswith(MGH_SUFFIXES):
        return "mgh"
    if name.endswith(RASTER_SUFFIXES):
        return "raster"
    if name.endswith(NPY_SUFFIXES):
        return "npy"
    from imaging.io.dicom import is_dicom_file

    if name.endswith(DICOM_SUFFIXES) or is_dicom_file(path):
        return "dicom"
    supported = ", ".join(NIFTI_SUFFIXES + ITK_SUFFIXES + MGH_SUFFIXES + DICOM_SUFFIXES + RASTER_SUFFIXES
                          + NPY_SUFFIXES)
    raise UnsupportedFormatError(f"{path.name}: unsupported file type; mmreason reads {supported}, DICOM files "
                                 "with the DICM preamble, and folders of DICOM files")


def _existing(path: str | PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file or folder; check the path")
    check_readable(p)
    return p


def check_readable(path: Path) -> None:
    """Raise `UnreadableFileError` when ``path`` (a file, or a folder's listing) cannot be read.

    Opening is the only reliable test (``os.access`` ignores ACLs and root), and it tells a
    permission problem apart from a damaged file before any loader blames the content.
    """
    what = "folder" if path.is_dir() else "file"
    try:
        if path.is_dir():
            next(iter(path.iterdir()), None)
        else:
            with open(path, "rb") as fh:
                fh.read(1)
    except PermissionError:
        raise UnreadableFileError(f"{path.name}: permission denied, this user may not read the {what}; fix its "
                                  f"permissions (e.g. chmod u+r) or run as a user who can read it") from None


def load(
    path: str | PathLike[str],
    *,
    frame: int | None = None,
    series: int | str | None = None,
    modality: str | None = None,
    sequence: str | None = None,
    color: bool = False,
    spacing: tuple[float, float] | None = None,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    nonfinite: str = "error",
    allow_uneven: bool = False,
    assume_orientation: bool = False,
) -> Volume:
    """Load an image file or DICOM folder as a canonical `Volume`.

    Args:
        path: a .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd, .mgz/.mgh, .dcm (or any file with the DICM
            preamble), .png/.jpg/.tif/.bmp, .npy file, or a folder of DICOM files (searched recursively).
        frame: index of the frame to read from a 4-D NIfTI/NRRD/MetaImage/MGH, a vector NRRD or
            MetaImage (one component), a multi-frame DICOM or a multi-page TIFF (required there when
            it has more than one frame; 0 is accepted for 3-D inputs).
        series: which series of a DICOM folder holding several: its index in `list_series` order
            its SeriesInstanceUID, or the short token listings show for it (required when the folder
            holds more than one).
        modality: ``CT``, ``MR``, ``XR``, ``PT``, ``US`` or ``OT``; overrides the DICOM tag and the
            heuristic described in `imaging.io.metadata`.
        sequence: an MR volume's sequence (`imaging.io.sequence.SEQUENCES`: ``FLAIR``, ``T2``,
            ``T1``, ``T1C`` ...); overrides what DICOM tags, the NIfTI description or the file name say.
        color: keep colour images as an RGB uint8 copy in `Volume.color` (``data`` is always the
            luminance).
        spacing: ``(row_mm, col_mm)`` pixel size for inputs that lack one (PNG/JPEG/TIFF, DICOM
            without PixelSpacing/ImagerPixelSpacing); default 1.0 mm, recorded as unknown.
        max_voxels: refuse inputs whose header announces more voxels (checked before reading);
            default `DEFAULT_MAX_VOXELS` (1.5e9).
        nonfinite: NaN/inf voxels: ``error`` (default), ``zero`` or ``min`` (smallest finite value).
        allow_uneven: resample a DICOM series with uneven slice spacing (e.g. a missing slice)
            onto a regular grid instead of raising `UnevenSlicesError`.
        assume_orientation: accept an orientation the file does not state (NIfTI with sform and
            qform codes 0, images without patient axes): the caller takes responsibility, so
            left/right is reported from it (recorded as ``metadata["orientation_argument"]``).

    Raises:
        LoadError: a specific subclass (see `imaging.io.errors`) whose message says what to do.
    """
    from imaging.io.build import LoadOptions
    from imaging.io.dicom import load_dicom_file, load_dicom_series

    p = _existing(path)
    options = LoadOptions(frame=frame, series=series, modality=modality, sequence=sequence, color=color,
                          spacing=spacing,
                          max_voxels=max_voxels, nonfinite=nonfinite, allow_uneven=allow_uneven,
                          assume_orientation=assume_orientation)
    kind = detect_format(p)
    if kind == "dicom-folder":
        return load_dicom_series(p, options)
    if kind == "nifti":
        from imaging.io.nifti import load_nifti

        return load_nifti(p, options)
    if kind == "itk":
        from imaging.io.itk import load_itk

        return load_itk(p, options)
    if kind == "mgh":
        from imaging.io.mgh import load_mgh

        return load_mgh(p, options)
    if kind == "raster":
        from imaging.io.raster import load_raster

        return load_raster(p, options)
    if kind == "npy":
        from imaging.io.npy import load_npy

        return load_npy(p, options)
    return load_dicom_file(p, options)


def list_series(path: str | PathLike[str]) -> list[SeriesInfo]:
    """The image series of a DICOM folder (index, UID, technical description, modality, slices)."""
    p = _existing(path)
    if not p.is_dir():
        raise NoDicomError(f"{p.name}: list_series needs a folder of DICOM files, not a file")
    from imaging.io.dicom import list_series as dicom_series

    return dicom_series(p)
