"""Technical metadata allowed into a `Volume`, and how the modality is decided.

Only the DICOM keywords in `DICOM_ALLOWED_TAGS` are copied. Patient, study, institution,
operator, date/time and UID attributes are never read into a `Volume`, a log line or an error
message: the allow-list is the de-identification rule (a deny-list would leak new tags).
Free-text tags (`FREE_TEXT_TAGS`: SeriesDescription, ContrastBolusAgent) are typed by people and
often hold a name or a record number, so only their known technical words survive
(`technical_words`); the MR sequence they or the timing tags name is kept as its name only
(`imaging.io.sequence`). A SeriesInstanceUID is shown only as a short salted hash (`uid_token`).

Modality (first rule that applies):

1. the caller's ``modality=`` (explicit always wins; it must be one of `MODALITIES`);
2. the DICOM ``Modality`` tag, mapped by `DICOM_MODALITY_MAP` (CR/DX/MG/RF/XA/IO/PX -> ``XR``;
   NM and anything unknown -> ``OT``);
3. a ``modality=...`` note written by `imaging.writers.write_nifti` in the NIfTI ``descrip``;
4. the heuristic `guess_modality`: ``CT`` when the values carry the signature of Hounsfield units
   (`looks_like_ct`); otherwise ``XR`` for a single grayscale 2-D image, ``OT`` for a colour
   image, and ``MR`` for any other 3-D volume (NIfTI volumes that are not CT are mostly MR).

The CT signature, on the values left after dropping a constant padding fill (the -2048, -3024
or -32768 scanners and converters write outside the reconstruction circle): almost nothing
below `CT_MIN_HU` (HU end at -1024, with noise), and either an **air** peak (at least
`CT_AIR_FRACTION` of the values within `CT_AIR_BAND`: outside air, lungs, bowel gas) or a **fat**
peak next to **soft tissue** (at least `CT_FAT_FRACTION` within `CT_FAT_BAND` and
`CT_SOFT_FRACTION` within `CT_SOFT_BAND`, the fat denser per HU than the trough `CT_TROUGH_BAND`
between them: a field of view inside the body). MR magnitude images
and radiographs are non-negative (arbitrary units), so they show neither; z-scored MR never reaches
-100, and subtraction and phase images, spread about 0 and far below -1100, fail the trough and
the floor.

A CT stated as such (rules 1-3) whose values hold no HU signature but hold it after subtracting
`CT_STORED_OFFSET` (a converter or anonymiser that dropped RescaleIntercept: air near 0, water near
1024) is shifted back by the loader, which records ``metadata["hu_offset_assumed"]``; a guessed
modality is never shifted (MR magnitudes can look the same): the loader notes
``metadata["hu_offset_suspected"]`` and the evidence only tells the user to give ``--modality CT``
(`shifted_ct_offset`).

``metadata["modality_source"]`` records which rule decided.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from imaging.io.errors import InvalidOptionError
from imaging.io.sequence import dicom_sequence
from imaging.volume import MODALITIES

#: DICOM keywords copied into `Volume.metadata` (technical acquisition and pixel encoding only).
DICOM_ALLOWED_TAGS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "SeriesDescription",
    "ProtocolName",
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

#: allow-listed tags typed by people: reduced to `TECHNICAL_WORDS` by `technical_words`
FREE_TEXT_TAGS = ("SeriesDescription", "ProtocolName", "ContrastBolusAgent")

#: words a series description or contrast agent may keep (lower case): anatomy, planes, sequences,
#: kernels, contrast phases. Anything else (names, record numbers, dates, site words) is dropped.
TECHNICAL_WORDS = frozenset("""
ct mr mri cta mra pet xr cr dx us scout topogram localizer localiser survey
head brain neck chest thorax lung lungs abdomen abdo abd pelvis spine cervical thoracic lumbar liver kidney
kidneys renal heart cardiac cardio coronary aorta knee hip shoulder ankle wrist hand foot breast sinus
orbit orbits iac temporal whole body wb extremity face maxillofacial
axial ax coronal cor sagittal sag oblique transverse tra 2d 3d mpr mip minip vr recon reformat reformats
t1 t2 t1w t2w pd pdw flair stir dwi adc dti swi gre se tse fse epi bold mprage space cube vibe dixon haste
trufi fiesta ssfp perfusion diffusion tof pc cine lge fat water sat fs nfs inphase opphase in out phase
pre post contrast gad gd iv oral non nc noncon plain native arterial venous portal delayed late early
equilibrium washin washout bolus tracking
lung bone soft tissue std standard sharp smooth mediastinum mediastinal window kernel br b c detail
thin thick slice slices mm iso hr hrct low dose ld high res resolution routine helical spiral
pa ap lat lateral left right bilateral lt rt frontal portable upright supine prone erect decubitus
iodine iodinated gadolinium barium omnipaque visipaque iohexol iopamidol gadobutrol gadoterate
primovist eovist dotarem gadovist magnevist multihance prohance
with without and of w wo w/o w/ w/wo c+ c- +c -c
""".split())
_NUMBER_WORD = re.compile(r"^\d{1,2}(?:[.,]\d{1,2})?(?:mm|cm|ml|s)?$")
_TOKEN = re.compile(r"[^\s^]+")

#: DICOM Modality -> `Volume.modality`.
DICOM_MODALITY_MAP: dict[str, str] = {
    "CT": "CT", "MR": "MR", "PT": "PT", "US": "US", "OT": "OT",
    "CR": "XR", "DX": "XR", "MG": "XR", "RF": "XR", "XA": "XR", "IO": "XR", "PX": "XR", "XR": "XR",
}

#: Heuristic thresholds (HU) of `guess_modality` (see the module docstring).
CT_MIN_HU = -1100.0
CT_BELOW_MIN_FRACTION = 0.01
CT_AIR_BAND = (-1100.0, -850.0)
CT_AIR_FRACTION = 0.002
CT_FAT_BAND = (-150.0, -50.0)
CT_FAT_FRACTION = 0.02
CT_SOFT_BAND = (0.0, 100.0)
CT_SOFT_FRACTION = 0.05
#: between fat and soft tissue CT has a trough (partial volume only); a fat "peak" must be denser
#: per HU than this band (a subtraction or phase image, symmetric about 0, is densest here)
CT_TROUGH_BAND = (-45.0, -15.0)
#: the rescale intercept most CT scanners write (-1024): stored values are HU + this offset, so a
#: file that drops the intercept holds air near 0 and water near 1024 (`shifted_ct_offset`)
CT_STORED_OFFSET = 1024.0
#: a padding fill is one value at the minimum, below `CT_MIN_HU` (-1024 is air, clipped), held by at
#: least this fraction of the values
CT_PADDING_FRACTION = 0.001

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


def technical_words(text: Any) -> str:
    """The words of a free-text tag found in `TECHNICAL_WORDS` (and short numbers such as slice
    thicknesses), in order, joined by spaces: ``"Doe^Jane PHI-12345 chest"`` -> ``"chest"``."""
    kept = []
    for token in _TOKEN.findall(str(text or "")):
        word = token.strip(".,;:()[]")
        if word.lower() in TECHNICAL_WORDS or _NUMBER_WORD.match(word.lower()):
            kept.append(word)
    return " ".join(kept)


@cache
def _uid_salt() -> bytes:
    """The salt of `uid_token`: ``$MMREASON_UID_SALT``, else a random salt kept in the user's cache
    (stable tokens, so ``--series TOKEN`` works across runs), else one per process."""
    env = os.environ.get("MMREASON_UID_SALT")
    if env:
        return env.encode()
    path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmreason" / "uid_salt"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(16))
        return path.read_text().strip().encode()
    except OSError:
        return secrets.token_bytes(16)


def uid_token(uid: str) -> str:
    """A DICOM UID as a short salted hash (``uid-3f9a1c2b``): tells series apart, never reveals the UID."""
    return "uid-" + hashlib.sha256(_uid_salt() + str(uid).encode()).hexdigest()[:8]


def dicom_metadata(ds: Any) -> dict[str, Any]:
    """The allow-listed technical attributes of a pydicom dataset (absent or empty ones skipped;
    free-text tags reduced to their technical words)."""
    out: dict[str, Any] = {}
    for keyword in DICOM_ALLOWED_TAGS:
        value = _plain(ds.get(keyword, None))
        if keyword in FREE_TEXT_TAGS and value is not None:
            value = technical_words(" ".join(map(str, value)) if isinstance(value, list) else value)
        if value not in (None, "", []):
            out[keyword] = value
    out.update(dicom_sequence(ds))
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


def _without_padding(data: np.ndarray) -> np.ndarray:
    """A finite sample of ``data`` without the constant fill scanners write outside the
    reconstruction circle (one value at the minimum, below `CT_MIN_HU`)."""
    sample = _sample(data)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return sample
    low = float(sample.min())
    if low < CT_MIN_HU and np.mean(sample == low) >= CT_PADDING_FRACTION:
        sample = sample[sample != low]
    return sample


def _fraction(sample: np.ndarray, band: tuple[float, float]) -> float:
    return float(np.mean((sample >= band[0]) & (sample <= band[1])))


def looks_like_ct(data: np.ndarray) -> bool:
    """True when the values carry the signature of Hounsfield units (see the module docstring)."""
    sample = _without_padding(data)
    if sample.size == 0 or float(np.mean(sample < CT_MIN_HU)) > CT_BELOW_MIN_FRACTION:
        return False
    if _fraction(sample, CT_AIR_BAND) >= CT_AIR_FRACTION:
        return True
    fat = _fraction(sample, CT_FAT_BAND)
    fat_is_peak = fat / np.ptp(CT_FAT_BAND) > _fraction(sample, CT_TROUGH_BAND) / np.ptp(CT_TROUGH_BAND)
    return fat >= CT_FAT_FRACTION and fat_is_peak and _fraction(sample, CT_SOFT_BAND) >= CT_SOFT_FRACTION


def shifted_ct_offset(data: np.ndarray) -> float | None:
    """`CT_STORED_OFFSET` when ``data`` look like CT values stored without their rescale intercept
    (nothing far below 0; after the shift an air peak, fat and soft tissue), else None.

    MR magnitudes are non-negative with a dark background too, and some hold enough values in the
    shifted bands by chance: a caller acts on this only when CT is stated.
    """
    sample = _without_padding(data)
    # air stored as about 0 reads a little below it with noise; real HU reach -1000
    if sample.size == 0 or float(sample.min()) < -100.0 or looks_like_ct(sample):
        return None
    hu = sample - CT_STORED_OFFSET
    bands = ((CT_AIR_BAND, CT_AIR_FRACTION), (CT_FAT_BAND, CT_FAT_FRACTION), (CT_SOFT_BAND, CT_SOFT_FRACTION))
    return CT_STORED_OFFSET if all(_fraction(hu, band) >= least for band, least in bands) else None


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
