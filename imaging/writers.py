"""Write a `Volume` back to NIfTI, DICOM (a CT/MR series or one X-ray image) or PNG.

Every writer keeps the geometry exact, so ``imaging.io.load`` of the output gives the same
voxels (within rescale rounding), spacing and affine. DICOM output carries placeholder patient
fields ("ANONYMOUS") and fresh UIDs from `pydicom.uid.generate_uid`; nothing of the source's
identity is ever written (a `Volume` holds none).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.valuerep import DSfloat
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from imaging.errors import MMReasonError
from imaging.io.nifti import MODALITY_NOTE
from imaging.io.orientation import RAS_TO_LPS
from imaging.io.sequence import SEQUENCES, words_sequence
from imaging.views import View
from imaging.volume import Volume
from imaging.windowing import Window, apply_window, resolve_window

INT16_RANGE = (-32768, 32767)
UINT16_MAX = 65535


class WriteError(MMReasonError, ValueError):
    """A volume cannot be written in the requested form (wrong modality, 3-D where 2-D is needed ...)."""


def _ds(values: list[float] | float) -> list[DSfloat] | DSfloat:
    """Decimal-string values at the full precision the 16-character DS limit allows."""
    if isinstance(values, (list, tuple)):
        return [DSfloat(float(v), auto_format=True) for v in values]
    return DSfloat(float(values), auto_format=True)


def _is_integral(data: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(data)) and np.array_equal(data, np.rint(data)))


# -- NIfTI ----------------------------------------------------------------------------------

def _sequence(volume: Volume) -> str | None:
    """An MR volume's sequence (`imaging.io.sequence.SEQUENCES`) to note in the file, or None."""
    sequence = str(volume.metadata.get("sequence", "")).upper()
    return sequence if volume.modality == "MR" and sequence in SEQUENCES else None


def write_nifti(volume: Volume, path: str | PathLike[str]) -> Path:
    """Write ``volume`` as NIfTI-1 (``.nii`` or ``.nii.gz`` by the name).

    The array is stored in (x, y, z) order with the LPS affine converted to RAS (x and y rows
    negated), so sform/qform reproduce every voxel's position. CT with integral values inside the
    int16 range is stored as int16 (scl_slope 1, scl_inter 0); anything else as float32. The
    modality is noted in ``descrip`` (``modality=CT``) so the loader restores it, and so is an MR
    volume's sequence (``modality=MR sequence=FLAIR``, from ``metadata["sequence"]``).
    """
    out = Path(path)
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise WriteError(f"{out.name}: a NIfTI file name must end in .nii or .nii.gz")
    data = volume.data.transpose(2, 1, 0)  # (z, y, x) -> (x, y, z), a view
    affine = RAS_TO_LPS @ volume.affine[:, [2, 1, 0, 3]]
    lo, hi = (float(volume.data.min()), float(volume.data.max())) if volume.data.size else (0.0, 0.0)
    as_int16 = volume.modality == "CT" and INT16_RANGE[0] <= lo and hi <= INT16_RANGE[1] and _is_integral(volume.data)
    img = nib.Nifti1Image(data.astype(np.int16) if as_int16 else data, affine)
    img.header.set_data_dtype(np.int16 if as_int16 else np.float32)
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_xyzt_units("mm")
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    sequence = _sequence(volume)
    img.header["descrip"] = (f"{MODALITY_NOTE}{volume.modality}" + (f" sequence={sequence}" if sequence else "")).encode()
    nib.save(img, str(out))
    return out


# -- DICOM ----------------------------------------------------------------------------------

def _base_dataset(modality: str, sop_class: str, study_uid: str, series_uid: str, frame_uid: str | None) -> Dataset:
    """Patient/study/series/equipment modules with de-identified placeholders."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "ANONYMOUS"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.Manufacturer = "mmreason"
    if frame_uid is not None:
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
    return ds


def _finish_file(ds: Dataset, path: Path) -> None:
    ds.SOPInstanceUID = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(str(path), enforce_file_format=True)


def _pixel_module(ds: Dataset, stored: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _auto_rescale(data: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) so that the values fit int16: exact for integral data that fit already."""
    lo, hi = float(data.min()), float(data.max())
    if INT16_RANGE[0] <= lo and hi <= INT16_RANGE[1] and _is_integral(data):
        return 1.0, 0.0
    slope = max((hi - lo) / 65000.0, 1e-6)
    return slope, (hi + lo) / 2.0


def _to_stored(values: np.ndarray, slope: float, intercept: float, dtype: type) -> np.ndarray:
    stored = np.rint((values.astype(np.float64) - intercept) / slope)
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise WriteError(f"values {values.min():g}..{values.max():g} do not fit {np.dtype(dtype).name} with "
                         f"rescale slope {slope:g} and intercept {intercept:g}; choose another rescale=")
    return stored.astype(dtype)


def write_dicom_series(
    volume: Volume,
    folder: str | PathLike[str],
    *,
    series_description: str = "mmreason export",
    rescale: tuple[float, float] | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[Path]:
    """Write a CT or MR ``volume`` as one DICOM file per axial (z) slice in ``folder``.

    Each file is a valid CT/MR Image Storage instance (explicit VR little endian, signed 16-bit)
    with ImagePositionPatient of its voxel (k, 0, 0), ImageOrientationPatient from the affine's
    x and y columns, PixelSpacing ``[y, x]`` mm, SliceThickness = the z spacing, and
    RescaleSlope/Intercept.

    Args:
        series_description: SeriesDescription; an MR volume's sequence (``metadata["sequence"]``) is
            appended when the description does not name one, so the loader reads it back.
        rescale: ``(slope, intercept)`` with stored = round((value - intercept) / slope); default:
            ``(1, 0)`` for integral data within int16, else a slope spanning the value range.
        shuffle: write the slices under file names and InstanceNumbers in a random order (seeded
            by ``seed``), to test that readers sort by position.

    Returns:
        the written paths, in slice (z) order.
    """
    if volume.modality not in ("CT", "MR"):
        raise WriteError(f"write_dicom_series writes CT or MR, got {volume.modality}; use write_dicom_image for "
                         "X-rays or set volume.modality")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    slope, intercept = rescale if rescale is not None else _auto_rescale(volume.data)
    if slope == 0:
        raise WriteError("rescale slope must be non-zero")
    sz, sy, sx = volume.spacing
    a = volume.affine
    row_dir = a[:3, 2] / np.linalg.norm(a[:3, 2])  # increasing column index (x)
    col_dir = a[:3, 1] / np.linalg.norm(a[:3, 1])  # increasing row index (y)
    sop = CTImageStorage if volume.modality == "CT" else MRImageStorage
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    nz = volume.shape[0]
    numbers = np.random.default_rng(seed).permutation(nz) if shuffle else np.arange(nz)
    paths = []
    sequence = _sequence(volume)
    if sequence and words_sequence(series_description) is None:  # the loader reads the sequence from it
        series_description = f"{series_description} {sequence}"
    for k in range(nz):
        ds = _base_dataset(volume.modality, sop, study_uid, series_uid, frame_uid)
        ds.SeriesDescription = series_description
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.InstanceNumber = int(numbers[k]) + 1
        ds.ImagePositionPatient = _ds(list(volume.voxel_to_world([[k, 0, 0]])[0]))
        ds.ImageOrientationPatient = _ds([*row_dir, *col_dir])
        ds.PixelSpacing = _ds([sy, sx])
        ds.SliceThickness = _ds(sz)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleIntercept = _ds(intercept)
        if volume.modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = ""
        else:
            ds.ScanningSequence = "RM"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "3D"
            ds.EchoTime = ""
            ds.EchoTrainLength = ""
        _pixel_module(ds, _to_stored(volume.data[k], slope, intercept, np.int16))
        path = out / f"slice_{int(numbers[k]):04d}.dcm"
        _finish_file(ds, path)
        paths.append(path)
    return paths


_XRAY_SOP = {"DX": DigitalXRayImageStorageForPresentation, "CR": ComputedRadiographyImageStorage}


def write_dicom_image(
    volume: Volume,
    path: str | PathLike[str],
    photometric: str = "MONOCHROME2",
    modality: str = "DX",
    spacing_tag: str = "ImagerPixelSpacing",
) -> Path:
    """Write a 2-D ``volume`` as a DX or CR X-ray DICOM file (unsigned 16-bit, no patient geometry).

    Args:
        photometric: ``MONOCHROME2`` (high = bright) or ``MONOCHROME1`` (stored inverted as
            min + max - value, which the loader inverts back).
        modality: ``DX`` (Digital X-Ray For Presentation) or ``CR`` (Computed Radiography).
        spacing_tag: ``ImagerPixelSpacing`` (detector plane, usual for projection X-ray) or
            ``PixelSpacing``; holds the volume's (y, x) spacing.
    """
    if not volume.is_2d:
        raise WriteError(f"write_dicom_image needs a one-slice volume, got shape {volume.shape}")
    if modality not in _XRAY_SOP:
        raise WriteError(f"modality must be one of {', '.join(_XRAY_SOP)}, got {modality!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise WriteError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    if spacing_tag not in ("ImagerPixelSpacing", "PixelSpacing"):
        raise WriteError(f"spacing_tag must be ImagerPixelSpacing or PixelSpacing, got {spacing_tag!r}")
    values = volume.data[0].astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if _is_integral(values) and lo >= 0 and hi <= UINT16_MAX:
        slope, intercept = 1.0, 0.0
    else:
        slope, intercept = max((hi - lo) / 65000.0, 1e-6), lo
    if photometric == "MONOCHROME1":
        values = (lo + hi) - values
    ds = _base_dataset(modality, _XRAY_SOP[modality], generate_uid(), generate_uid(), None)
    ds.SeriesDescription = "mmreason export"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.InstanceNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PatientOrientation = ["L", "F"]  # canonical display: columns to the left, rows to the feet
    setattr(ds, spacing_tag, _ds([volume.spacing[1], volume.spacing[2]]))
    ds.RescaleSlope = _ds(slope)
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleType = "US"
    _pixel_module(ds, _to_stored(values, slope, intercept, np.uint16), photometric)
    out = Path(path)
    _finish_file(ds, out)
    return out


# -- PNG ------------------------------------------------------------------------------------

def write_png(image: Volume | View, path: str | PathLike[str], window: str | Window | None = None) -> Path:
    """Save a rendered `View` as is, or a one-slice `Volume` on its own pixel grid (no resampling).

    Args:
        window: for a grayscale `Volume`, a preset name or `Window` (default ``auto`` for its
            modality, see `imaging.windowing.resolve_window`); colour volumes are saved as RGB.
    """
    out = Path(path)
    if isinstance(image, View):
        image.image.save(out, format="PNG")
        return out
    if not image.is_2d:
        raise WriteError(f"write_png needs a one-slice volume or a View, got shape {image.shape}; render a slice "
                         "first with imaging.views.slice_view")
    if image.color is not None:
        Image.fromarray(image.color[0], "RGB").save(out, format="PNG")
        return out
    win = resolve_window(window, image.modality, image.data)
    Image.fromarray(apply_window(image.data[0], win), "L").save(out, format="PNG")
    return out
