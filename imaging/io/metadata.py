"""Technical metadata allowed into a `Volume`, and how the modality is decided.

Only the DICOM keywords in `DICOM_ALLOWED_TAGS` are copied. Patient, study, institution,
operator, date/time and UID attributes are never read into a `Volume`, a log line or an error
message: the allow-list is the de-identification rule (a deny-list would leak new tags).

Modality (first rule that applies):

1. the caller's ``modality=`` (explicit always wins; it must be one of `MODALITIES`);
2. the DICOM ``Modality`` tag, mapped by `DICOM_MODALITY_MAP` (CR/DX/MG/RF/XA/IO/PX -> ``XR``;
   NM and anything unknown -> ``OT``);
3. a ``modality=...`` note written by `imaging.writers.write_nifti` in the NIfTI ``descrip``;
4. the heuristic `guess_modality`: ``CT`` when the values look like Hounsfield units (no value
   below -3100, i.e. at most the -3024/-2048 padding scanners write outside the field of view, and
   at least 1 % of voxels at or below -900 HU, i.e. air, which every body CT contains and MR, PET
   and X-ray never reach); otherwise ``XR`` for a single grayscale 2-D image, ``OT`` for a colour
   image, and ``MR`` for any other 3-D volume (NIfTI volumes that are not CT are mostly MR).

``metadata["modality_source"]`` records which rule decided.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from imaging.io.errors import InvalidOptionError
from imaging.volume import MODALITIES

#: DICOM keywords copied into `Volume.metadata` (technical acquisition and pixel encoding only).
DICOM_ALLOWED_TAGS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "SeriesDescription",
    "ImageType",
    "SliceThickness",
    "SpacingBetweenSlices",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "ConvolutionKernel",
    "ContrastBolusAgent",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "ScanningSequence",
    "SequenceVariant",
    "MRAcquisitionType",
    "ViewPosition",
    "PatientOrientation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
)

#: DICOM Modality -> `Volume.modality`.
DICOM_MODALITY_MAP: dict[str, str] = {
    "CT": "CT", "MR": "MR", "PT": "PT", "US": "US", "OT": "OT",
    "CR": "XR", "DX": "XR", "MG": "XR", "RF": "XR", "XA": "XR", "IO": "XR", "PX": "XR", "XR": "XR",
}

#: Heuristic thresholds (HU) of `guess_modality`.
CT_AIR_HU = -900.0
CT_MIN_HU = -3100.0
CT_AIR_FRACTION = 0.01


def _plain(value: Any) -> Any:
    """A pydicom value (DSfloat, IS, MultiValue, str) as plain JSON-friendly Python."""
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, Decimal)):
        return float(value)
    return str(value)


def dicom_metadata(ds: Any) -> dict[str, Any]:
    """The allow-listed technical attributes of a pydicom dataset (absent or empty ones skipped)."""
    out: dict[str, Any] = {}
    for keyword in DICOM_ALLOWED_TAGS:
        value = _plain(ds.get(keyword, None))
        if value not in (None, "", []):
            out[keyword] = value
    sop = ds.get("SOPClassUID", None)
    if sop is not None:
        out["sop_class"] = str(getattr(sop, "name", sop))
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if syntax is not None:
        out["transfer_syntax"] = str(getattr(syntax, "name", syntax))
    return out


def check_modality(modality: str | None) -> str | None:
    """Validate a caller-given modality (case-insensitive) against `MODALITIES`."""
    if modality is None:
        return None
    m = modality.upper()
    if m not in MODALITIES:
        raise InvalidOptionError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    return m


def map_dicom_modality(tag: str | None) -> str | None:
    """DICOM ``Modality`` -> our modality, ``OT`` for unknown values, None when the tag is absent."""
    if not tag:
        return None
    return DICOM_MODALITY_MAP.get(str(tag).upper(), "OT")


def _sample(data: np.ndarray, target: int = 1_000_000) -> np.ndarray:
    """A strided sample of about ``target`` values (keeps the heuristic O(1) on large volumes)."""
    flat = data.reshape(-1)
    step = max(1, flat.size // target)
    return flat[::step]


def looks_like_ct(data: np.ndarray) -> bool:
    """True when the values look like Hounsfield units (see the module docstring)."""
    sample = _sample(data)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return False
    if float(sample.min()) < CT_MIN_HU:
        return False
    return float(np.mean(sample <= CT_AIR_HU)) >= CT_AIR_FRACTION


def guess_modality(data: np.ndarray, *, is_color: bool = False) -> str:
    """Heuristic modality for inputs without a tag (NIfTI, PNG/JPEG/TIFF); see the module docstring."""
    if looks_like_ct(data):
        return "CT"
    if data.shape[0] == 1:
        return "OT" if is_color else "XR"
    return "MR"


def resolve_modality(
    requested: str | None, dicom_tag: str | None, note: str | None, data: np.ndarray, *, is_color: bool = False
) -> tuple[str, str]:
    """Apply the rules of the module docstring -> (modality, the rule that decided)."""
    if requested is not None:
        return requested, "argument"
    mapped = map_dicom_modality(dicom_tag)
    if mapped is not None:
        return mapped, "dicom"
    if note is not None and note in MODALITIES:
        return note, "file note"
    return guess_modality(data, is_color=is_color), "heuristic"
