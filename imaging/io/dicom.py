"""DICOM through pydicom: a single image file (CT/MR slice, CR/DX X-ray, multi-frame with
``frame=``) or a folder holding one or more series.

Series are grouped by SeriesInstanceUID. Slices are ordered by ImagePositionPatient projected on
the slice normal (the cross product of the two ImageOrientationPatient direction cosines), and
the slice spacing comes from those positions, never from SliceThickness. The affine is built from
ImagePositionPatient, ImageOrientationPatient and PixelSpacing (a gantry tilt gives a sheared
affine, kept exact), then the array is reoriented to the canonical (z, y, x) = (S, P, L) layout.

Irregular series: slices that share a position, lie off a line, or whose spacing deviates from
the median by more than `SLICE_GAP_TOLERANCE` raise a specific error that lists the gaps. With
``allow_uneven=True`` an uneven (e.g. one missing slice) series is linearly resampled onto a
regular grid at the median spacing, and ``metadata["uneven_slices"]`` records the original gaps.

Reading a series touches each file twice and parses it once: the folder scan reads every header
up to the pixel data (``stop_before_pixels``) and keeps it with the pixel data's byte offset; the
pixels are then read from that offset, straight into the float32 stack for uncompressed
little-endian slices, through pydicom's decoders otherwise, by a thread pool for larger series.

Not supported: enhanced multi-frame CT/MR as a 3-D volume (pick one frame with ``frame=``).
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import (
    CorruptFileError,
    DecodeError,
    FrameSelectionError,
    InconsistentSeriesError,
    MissingCodecError,
    MultipleSeriesError,
    NoDicomError,
    NonImageDicomError,
    SeriesNotFoundError,
    UnevenSlicesError,
    UnreadableFileError,
    UnsupportedFormatError,
    cause,
)
from imaging.io.limits import check_shape
from imaging.io.metadata import dicom_metadata, technical_words, uid_token
from imaging.io.orientation import to_canonical
from imaging.volume import Volume, axis_aligned_affine

CODECS_HINT = "pip install 'mmreason[dicom-codecs]'"

#: a slice step may deviate from the median step by this fraction (plus 0.01 mm) before the series
#: counts as uneven; one missing slice doubles a step, float noise in positions is ~1e-4 mm
SLICE_GAP_TOLERANCE = 0.1
#: slice origins may lie this far (mm) off the line through the first and last slice
COLLINEAR_TOLERANCE_MM = 0.1

#: DICOM Modality values of objects that are not images, with a human-readable name
NON_IMAGE_MODALITIES = {
    "SEG": "a segmentation (SEG)",
    "RTSTRUCT": "an RT structure set (RTSTRUCT)",
    "RTPLAN": "an RT plan (RTPLAN)",
    "RTDOSE": "an RT dose grid (RTDOSE)",
    "RTRECORD": "an RT treatment record (RTRECORD)",
    "RTIMAGE": None,  # portal images are images
    "SR": "a structured report (SR)",
    "KO": "a key object selection (KO)",
    "PR": "a presentation state (PR)",
    "REG": "a spatial registration (REG)",
    "DOC": "an encapsulated document (DOC)",
    "ECG": "a waveform (ECG)",
}
#: words in SOP Class names of non-image objects (used when Modality is absent or generic)
NON_IMAGE_SOP_WORDS = ("Segmentation", "RT Structure", "RT Plan", "RT Ion Plan", "RT Dose", "SR Storage",
                       "Waveform", "Presentation State", "Key Object", "Encapsulated", "Registration",
                       "Raw Data", "Media Storage Directory")
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: the `scan_folder` skip count of files this user may not open
UNREADABLE = "file(s) not readable (permission denied)"


@dataclass(frozen=True)
class SeriesInfo:
    """One image series found in a folder (the listing `list_series` returns).

    Attributes:
        index: position in the listing (sorted by SeriesNumber, then UID); ``series=index`` picks it.
        uid: SeriesInstanceUID; ``series=uid`` or ``series=`` its `token` picks it. Never output:
            listings and messages show the token.
        description: the technical words of SeriesDescription (`technical_words`; "" if none).
        modality: the DICOM Modality tag.
        n_slices: number of image files in the series.
        size: (rows, columns) of its first image.
    """

    index: int
    uid: str
    description: str
    modality: str
    n_slices: int
    size: tuple[int, int]
    files: tuple[Path, ...] = field(repr=False, compare=False, default=())
    #: each file's header (read up to the pixel data) and the byte offset of its pixel data element,
    #: so that loading the series reads every file only once more, for its pixels
    headers: tuple[Dataset, ...] = field(repr=False, compare=False, default=())
    pixel_offsets: tuple[int, ...] = field(repr=False, compare=False, default=())

    @property
    def token(self) -> str:
        """The UID as a short salted hash (`imaging.io.metadata.uid_token`), safe to print."""
        return uid_token(self.uid)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        out["uid"] = self.token
        out["size"] = list(self.size)
        return out

    def label(self) -> str:
        desc = f" '{self.description}'" if self.description else ""
        return f"[{self.index}] {self.token}{desc}, {self.n_slices} slice(s), {self.modality or '?'}"


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` starts with the DICOM preamble (128 bytes then ``DICM``)."""
    try:
        with open(path, "rb") as fh:
            return _preamble_in(fh)
    except OSError:
        return False


def non_image_kind(ds: Dataset, has_pixels: bool | None = None) -> str | None:
    """A description of what ``ds`` is when it is not an image, else None.

    Args:
        has_pixels: whether pixel data are present (None: the header was read without pixels,
            so judge by Rows/Columns instead).
    """
    modality = str(ds.get("Modality", "") or "").upper()
    sop = ds.get("SOPClassUID", None)
    sop_name = str(getattr(sop, "name", sop or ""))
    if NON_IMAGE_MODALITIES.get(modality):
        return f"{NON_IMAGE_MODALITIES[modality]} object ({sop_name or 'unknown SOP class'})"
    for word in NON_IMAGE_SOP_WORDS:
        if word in sop_name:
            return f"a non-image object ({sop_name}, Modality {modality or 'absent'})"
    pixels = has_pixels if has_pixels is not None else ("Rows" in ds and "Columns" in ds)
    if not pixels:
        return f"a DICOM object without pixel data ({sop_name or 'unknown SOP class'}, Modality {modality or 'absent'})"
    return None


_quiet_lock = threading.Lock()
_quiet_state: dict[str, Any] = {"depth": 0, "context": None}


@contextmanager
def _pydicom_quiet() -> Iterator[None]:
    """pydicom warns on stderr about oddities it has already worked around (excess padding, a value
    that does not fit its VR); what it cannot work around it raises, and that is reported.

    Safe across the threads that decode a series: `warnings.catch_warnings` saves and restores the
    process-wide filters, so overlapping uses from several threads would leave the filter behind;
    here the first entrant installs it and the last to leave restores the filters.
    """
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            context = warnings.catch_warnings()
            context.__enter__()
            warnings.simplefilter("ignore", UserWarning)
            _quiet_state["context"] = context
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                _quiet_state.pop("context").__exit__(None, None, None)


def _read(path: Path, *, header_only: bool) -> Dataset:
    """Read one file; files without the DICM preamble (old exports) are read with ``force=True``."""
    try:
        with open(path, "rb") as fh:
            return _parse(fh, path.name, header_only=header_only, preamble=_preamble_in(fh))
    except OSError as exc:
        raise CorruptFileError(f"{path.name}: the DICOM file is truncated or damaged ({cause(exc)}); "
                               "re-export it") from exc


def _preamble_in(fh: BinaryIO) -> bool:
    head = fh.read(132)
    fh.seek(0)
    return len(head) == 132 and head[128:132] == b"DICM"


def _parse(fh: BinaryIO, source: str, *, header_only: bool, preamble: bool) -> Dataset:
    """Parse an open file from its start; ``header_only`` stops before the pixel data and leaves
    ``fh`` at the pixel data element, so the pixels can be read later without parsing again."""
    try:
        with _pydicom_quiet():
            ds = pydicom.dcmread(fh, stop_before_pixels=header_only, force=not preamble)
    except (EOFError, OSError, ValueError, KeyError, InvalidDicomError) as exc:
        raise CorruptFileError(f"{source}: the DICOM file is truncated or damaged ({cause(exc)}); re-export it") from exc
    if "SOPClassUID" not in ds and "Modality" not in ds:
        raise UnsupportedFormatError(f"{source}: not a DICOM file (no DICM preamble and no SOP class or modality); "
                                     "check the path and the file type")
    return ds


# -- folders and series ---------------------------------------------------------------------

def _candidate_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def scan_folder(folder: Path) -> tuple[list[SeriesInfo], dict[str, int]]:
    """Group the DICOM image files under ``folder`` (recursively) by series.

    Returns ``(series, skipped)`` where ``skipped`` counts the non-image DICOM objects by kind.
    Files without the DICM preamble are ignored unless they are named ``*.dcm``.
    """
    groups: dict[str, list[tuple[Path, Dataset, int]]] = {}
    skipped: dict[str, int] = {}
    for path in _candidate_files(folder):
        try:
            with open(path, "rb") as fh:
                preamble = _preamble_in(fh)
                if not preamble and path.suffix.lower() != ".dcm":
                    continue
                try:
                    ds = _parse(fh, path.name, header_only=True, preamble=preamble)
                except (UnsupportedFormatError, CorruptFileError):
                    if preamble:
                        skipped["unreadable DICOM file"] = skipped.get("unreadable DICOM file", 0) + 1
                    continue
                offset = fh.tell()
        except PermissionError:
            skipped[UNREADABLE] = skipped.get(UNREADABLE, 0) + 1
            continue
        except OSError:
            continue
        kind = non_image_kind(ds)
        if kind is not None:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or "no-series-uid"), []).append((path, ds, offset))

    def order(item: tuple[str, list[tuple[Path, Dataset, int]]]) -> tuple[int, str]:
        number = item[1][0][1].get("SeriesNumber", None)
        return (int(number) if number not in (None, "") else 1 << 30, item[0])

    series = []
    for i, (uid, members) in enumerate(sorted(groups.items(), key=order)):
        first = members[0][1]
        series.append(SeriesInfo(
            index=i, uid=uid, description=technical_words(first.get("SeriesDescription", "")),
            modality=str(first.get("Modality", "") or ""), n_slices=len(members),
            size=(int(first.get("Rows", 0) or 0), int(first.get("Columns", 0) or 0)),
            files=tuple(p for p, _, _ in members), headers=tuple(ds for _, ds, _ in members),
            pixel_offsets=tuple(offset for _, _, offset in members),
        ))
    return series, skipped


def _no_image_error(folder: Path, skipped: dict[str, int]) -> Exception:
    if skipped.get(UNREADABLE):
        return UnreadableFileError(f"{folder.name}: {skipped[UNREADABLE]} file(s) could not be opened (permission "
                                   "denied) and no readable DICOM image was found; fix the files' permissions "
                                   "(e.g. chmod -R u+r) or run as a user who can read them")
    if skipped:
        kinds = "; ".join(f"{n} x {k}" for k, n in skipped.items())
        return NonImageDicomError(f"{folder.name}: the folder holds no DICOM images, only {kinds}; "
                                  "point to the image series (CT/MR/X-ray) instead")
    return NoDicomError(f"{folder.name}: no DICOM files found (files need the DICM preamble or a .dcm name); "
                        "point to a folder holding a DICOM series, or to a .nii/.nii.gz, .dcm, .png, .jpg or .tif file")


def list_series(folder: Path) -> list[SeriesInfo]:
    """The image series in a DICOM folder; raises if it holds none."""
    series, skipped = scan_folder(folder)
    if not series:
        raise _no_image_error(folder, skipped)
    return series


#: series named in an error about a folder's series (more are counted, and ``inspect`` lists them all)
LISTED_SERIES = 4


def _series_listing(series: list[SeriesInfo]) -> str:
    shown = "; ".join(s.label() for s in series[:LISTED_SERIES])
    rest = len(series) - LISTED_SERIES
    return shown + (f"; and {rest} more (mmreason inspect FOLDER lists them all)" if rest > 0 else "")


def select_series(series: list[SeriesInfo], choice: int | str | None, source: str) -> SeriesInfo:
    """Pick a series by index or SeriesInstanceUID; a single series needs no choice."""
    if choice is None:
        if len(series) == 1:
            return series[0]
        raise MultipleSeriesError(f"{source}: the folder holds {len(series)} series; pick one with "
                                  f"series=INDEX or series=TOKEN (CLI: --series): {_series_listing(series)}")
    by_uid = {s.uid: s for s in series} | {s.token: s for s in series}
    if isinstance(choice, str) and choice in by_uid:
        return by_uid[choice]
    if isinstance(choice, int) or (isinstance(choice, str) and choice.isdigit()):
        k = int(choice)
        if 0 <= k < len(series):
            return series[k]
    raise SeriesNotFoundError(f"{source}: series={choice!r} matches no index or UID; the series are: "
                              f"{_series_listing(series)}")


# -- pixels ---------------------------------------------------------------------------------

def _decode(ds: Dataset, frame: int | None, source: str) -> np.ndarray:
    """Decode the pixel data (one frame if ``frame`` is given) with pydicom's plugins."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError as exc:
            raise UnsupportedFormatError(f"{source}: pixel data compressed as {syntax.name}, which pydicom cannot "
                                         "decode; convert the file to an uncompressed transfer syntax") from exc
        if not decoder.is_available:
            raise MissingCodecError(f"{source}: pixel data are compressed as {syntax.name} and no decoder plugin "
                                    f"is installed; run {CODECS_HINT}")
    if not any(ds.get(tag, None) for tag in _PIXEL_TAGS):
        raise CorruptFileError(f"{source}: the pixel data element is empty; the file is truncated or was written "
                               "without pixels, re-export it")
    try:
        with _pydicom_quiet():
            if frame is not None:
                ds.pixel_array_options(index=frame)
            return ds.pixel_array
    except (RuntimeError, ValueError, NotImplementedError, AttributeError, TypeError) as exc:
        reason = cause(exc, 400)
        if "less than expected" in reason or "truncated" in reason.lower():
            raise CorruptFileError(f"{source}: the pixel data are shorter than the header says ({reason}); the "
                                   "file is truncated, re-export it") from exc
        name = syntax.name if syntax is not None else "an unknown transfer syntax"
        raise DecodeError(f"{source}: pixel data ({name}) could not be decoded ({reason}); make sure the codecs "
                          f"are installed ({CODECS_HINT}) or convert the file to an uncompressed syntax") from exc


def _frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def _pixels(ds: Dataset, options: LoadOptions, source: str) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Decode one image -> (float 2-D values after the modality LUT, optional RGB uint8, notes)."""
    frames = _frames(ds)
    frame = options.frame
    if frames > 1 and frame is None:
        raise FrameSelectionError(f"{source}: multi-frame DICOM with {frames} frames; pick one with "
                                  f"frame=0..{frames - 1} (CLI: --frame N)")
    if frame is not None and frame >= frames:
        raise FrameSelectionError(f"{source}: frame={frame} is out of range; the file has {frames} frame(s)")
    arr = _decode(ds, frame if frames > 1 else None, source)
    notes: dict[str, Any] = {}
    if frame is not None and frames > 1:
        notes["frame"] = frame
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    color = None
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise CorruptFileError(f"{source}: a PALETTE COLOR image without a usable colour lookup table "
                                   f"({cause(exc)}); re-export it") from exc
    if arr.ndim == 3 and arr.shape[-1] == 3:
        rgb = arr.astype(np.float32)
        if arr.dtype != np.uint8:  # 16-bit palettes and RGB -> 8-bit for the colour copy
            rgb *= 255.0 / max(float(rgb.max()), 1.0)
        values = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        notes["color_collapsed_to_luminance"] = not options.color
        if options.color:
            color = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        return values, color, notes
    rescale = [ds.get(tag, None) for tag in ("RescaleSlope", "RescaleIntercept")]
    if not all(v in (None, "") or np.isfinite(float(v)) for v in rescale):
        raise CorruptFileError(f"{source}: RescaleSlope/RescaleIntercept {rescale} are not finite numbers, so no "
                               "pixel value can be computed; fix the tags or re-export the file")
    values = apply_modality_lut(arr, ds).astype(np.float32, copy=False)
    if photometric == "MONOCHROME1":
        values = (float(values.min()) + float(values.max())) - values
        notes["inverted_from"] = "MONOCHROME1"
    return values, None, notes


# -- geometry -------------------------------------------------------------------------------

def _floats(value: Any, n: int) -> np.ndarray | None:
    """A DICOM multi-value as ``n`` finite floats; None when absent, of another length or not finite."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        out = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _pixel_spacing(ds: Dataset, options: LoadOptions) -> tuple[float, float, str]:
    """(row spacing, column spacing) in mm and the tag they came from (a tag that is not two
    positive finite numbers counts as absent)."""
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _floats(ds.get(tag, None), 2)
        if value is not None and value.min() > 0:
            return float(value[0]), float(value[1]), tag
    if options.spacing is not None:
        return options.spacing[0], options.spacing[1], "argument"
    return 1.0, 1.0, "unknown (1.0 mm assumed)"


def _plane(ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(row direction, column direction, normal) unit vectors from ImageOrientationPatient."""
    iop = _floats(ds.get("ImageOrientationPatient", None), 6)
    if iop is None:
        return None
    r, c = iop[:3], iop[3:]
    if np.linalg.norm(r) < 1e-6 or np.linalg.norm(c) < 1e-6:
        return None
    r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
    n = np.cross(r, c)
    if np.linalg.norm(n) < 1e-6:
        return None
    return r, c, n / np.linalg.norm(n)


def _affine(origin: np.ndarray, step: np.ndarray, r: np.ndarray, c: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Index (slice, row, column) -> LPS mm."""
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = c * dy  # moving down a row follows the column direction cosine
    affine[:3, 2] = r * dx  # moving right along a row follows the row direction cosine
    affine[:3, 3] = origin
    return affine


# -- loaders --------------------------------------------------------------------------------

def load_dicom_file(path: Path, options: LoadOptions, name: str | None = None) -> Volume:
    """One DICOM image file (see `imaging.io.load`): a CT/MR slice, an X-ray, or one frame."""
    source = path.name
    ds = _read(path, header_only=False)
    kind = non_image_kind(ds, has_pixels=any(t in ds for t in _PIXEL_TAGS))
    if kind is not None:
        raise NonImageDicomError(f"{source}: this is {kind}, not an image; load the image series it refers to")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    check_shape((1, rows, cols), options.max_voxels, source)
    values, color, notes = _pixels(ds, options, source)
    dy, dx, spacing_tag = _pixel_spacing(ds, options)
    plane = _plane(ds)
    ipp = _floats(ds.get("ImagePositionPatient", None), 3)
    metadata = {"format": "DICOM", **dicom_metadata(ds), **notes, "pixel_spacing_source": spacing_tag}
    if plane is not None and ipp is not None:
        r, c, n = plane
        stated = _floats(ds.get("SpacingBetweenSlices", None) or ds.get("SliceThickness", None), 1)
        thickness = abs(float(stated[0])) if stated is not None and stated[0] != 0 else 1.0
        affine = _affine(ipp, n * thickness, r, c, dy, dx)
        metadata["geometry_source"] = "ImagePositionPatient/ImageOrientationPatient"
        metadata["slice_spacing_source"] = "single slice: SpacingBetweenSlices or SliceThickness (else 1.0 mm)"
        view, affine, spacing, color = to_canonical(
            values[None], affine, (thickness, dy, dx), source, None if color is None else color[None]
        )
    else:
        # projection images (CR/DX) have no patient-space plane: PatientOrientation, where given,
        # says where the rows and columns point; columns go to x (the patient's left) and rows down
        metadata["geometry_source"] = "pixel grid only (no ImagePositionPatient/ImageOrientationPatient)"
        flips, metadata["display_orientation"] = _projection_flips(ds.get("PatientOrientation", None))
        values = np.flip(values, flips) if flips else values
        color = np.flip(color, flips) if color is not None and flips else color
        view, spacing = np.ascontiguousarray(values)[None], (1.0, dy, dx)
        affine = axis_aligned_affine(spacing)
        color = np.ascontiguousarray(color)[None] if color is not None else None
    return build_volume(view, affine, spacing, options, source=source, name=name or path.stem,
                        metadata=metadata, dicom_modality=ds.get("Modality", None), color=color)


def _projection_flips(orientation: Any) -> tuple[tuple[int, ...], str]:
    """Array axes (0 rows, 1 columns) of a projection image to flip so that columns run towards
    the patient's left and rows towards the feet, from DICOM PatientOrientation; and a note.

    PatientOrientation holds the direction of the row (along increasing column index) and of the
    column (increasing row index), e.g. ``['L', 'F']`` for a PA chest shown the standard way.
    Without it the standard display is assumed. A lateral projection (rows along A/P) keeps its
    layout: its x is anterior/posterior, so left/right laterality does not apply to it.
    """
    values = [str(v).upper() for v in (orientation or [])]
    if len(values) != 2 or not all(values):
        return (), "assumed: columns towards the patient's left, rows towards the feet (no PatientOrientation)"
    row, column = values
    flips: list[int] = []
    if column[0] == "H":
        flips.append(0)
    if row[0] == "R":
        flips.append(1)
    note = f"PatientOrientation {row}\\{column}"
    if row[0] in "AP":
        note += " (lateral projection: x runs anterior/posterior, left/right laterality does not apply)"
    elif flips:
        note += f" (flipped {' and '.join('rows' if a == 0 else 'columns' for a in flips)} to the standard display)"
    return tuple(flips), note


def _slice_geometry(
    datasets: list[Dataset], files: list[Path], source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check one series' slices agree; return (order, positions along normal, origins, r, c, n)."""
    first = datasets[0]
    size = (first.get("Rows"), first.get("Columns"))
    plane = _plane(first)
    if plane is None or any(_floats(ds.get("ImagePositionPatient", None), 3) is None for ds in datasets):
        raise InconsistentSeriesError(
            f"{source}: {len(datasets)} images lack ImagePositionPatient/ImageOrientationPatient, so they cannot be "
            "stacked into a 3-D volume; load one file at a time"
        )
    r, c, n = plane
    for ds, path in zip(datasets, files):
        if (ds.get("Rows"), ds.get("Columns")) != size:
            raise InconsistentSeriesError(f"{source}: {path.name} is {ds.get('Rows')}x{ds.get('Columns')} but the "
                                          f"series is {size[0]}x{size[1]}; remove the odd file or split the series")
        other = _plane(ds)
        if other is None or np.abs(np.concatenate(other[:2]) - np.concatenate([r, c])).max() > 1e-3:
            raise InconsistentSeriesError(f"{source}: {path.name} has a different ImageOrientationPatient; the series "
                                          "mixes planes (e.g. a localizer); remove those files or load single files")
    origins = np.array([_floats(ds.ImagePositionPatient, 3) for ds in datasets])
    positions = origins @ n
    order = np.argsort(positions, kind="stable")
    return order, positions[order], origins[order], r, c, n


def _check_spacing(positions: np.ndarray, origins: np.ndarray, source: str, allow_uneven: bool) -> dict[str, Any]:
    """Validate slice positions (mm along the normal); return notes on gaps allowed by ``allow_uneven``."""
    steps = np.diff(positions)
    dup = np.flatnonzero(steps < 1e-3)
    if dup.size:
        where = ", ".join(f"{positions[i]:.2f}" for i in dup[:5])
        raise InconsistentSeriesError(
            f"{source}: {dup.size} pair(s) of slices share a position (at {where} mm along the "
            "normal); the series mixes acquisitions (echoes, phases or repeats), split them into separate folders"
        )
    span = positions[-1] - positions[0]
    if len(positions) > 2:
        along = (positions - positions[0]) / span
        predicted = origins[0] + along[:, None] * (origins[-1] - origins[0])
        off = float(np.linalg.norm(origins - predicted, axis=1).max())
        if off > COLLINEAR_TOLERANCE_MM:
            raise InconsistentSeriesError(f"{source}: slice origins lie up to {off:.2f} mm off a straight line; the "
                                          "series is not one regular stack (mixed stacks?), split it")
    if steps.size == 0:
        return {}
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > SLICE_GAP_TOLERANCE * median + 0.01)
    if bad.size == 0:
        return {}
    gaps = [{"from_mm": round(float(positions[i]), 3), "to_mm": round(float(positions[i + 1]), 3),
             "gap_mm": round(float(steps[i]), 3)} for i in bad]
    if not allow_uneven:
        shown = "; ".join(
            f"{g['gap_mm']:.2f} mm between {g['from_mm']:.2f} and {g['to_mm']:.2f} mm"
            + (f" (about {round(g['gap_mm'] / median) - 1} missing slice(s))" if g["gap_mm"] > 1.5 * median else "")
            for g in gaps[:5]
        )
        more = f" and {len(gaps) - 5} more" if len(gaps) > 5 else ""
        raise UnevenSlicesError(
            f"{source}: uneven slice spacing (expected {median:.3f} mm): {shown}{more}; check for missing files, or "
            f"pass allow_uneven=True (CLI: --allow-uneven) to resample onto a regular {median:.3f} mm grid"
        )
    return {"expected_mm": round(median, 4), "gaps": gaps, "resampled_to_mm": round(median, 4)}


def _resample_slices(stack: np.ndarray, positions: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of ``stack`` (n, rows, cols) from ``positions`` to a regular grid."""
    count = int(round((positions[-1] - positions[0]) / step)) + 1
    targets = positions[0] + step * np.arange(count)
    out = np.empty((count,) + stack.shape[1:], dtype=np.float32)
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, len(positions) - 1)
    for k, (t, hi) in enumerate(zip(targets, upper)):
        lo = hi - 1
        w = np.float32(np.clip((t - positions[lo]) / (positions[hi] - positions[lo]), 0.0, 1.0))
        out[k] = stack[lo] * (1 - w) + stack[hi] * w
    return out, targets


#: transfer syntaxes whose pixel data lie in the file as a plain little-endian array
_NATIVE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_PIXEL_DATA_TAG = struct.pack("<HH", 0x7FE0, 0x0010)
#: series with at least this many files are read by a thread pool (the reads, numpy's conversions
#: and the codecs release the GIL; header parsing does not, and is done before)
PARALLEL_MIN_FILES = 16


def _rescale(ds: Dataset) -> tuple[float, float]:
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def _native_layout(ds: Dataset) -> tuple[np.dtype, int, tuple[float, float], bool] | None:
    """(stored dtype, unused high bits, (slope, intercept), MONOCHROME1) when the slice can be read
    straight from the file (uncompressed little endian, one grey frame, a plain rescale); else None."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if syntax not in _NATIVE_SYNTAXES or "ModalityLUTSequence" in ds or _frames(ds) != 1:
        return None
    if ds.get("SamplesPerPixel", 1) != 1 or ds.get("PhotometricInterpretation", "") not in ("MONOCHROME1",
                                                                                            "MONOCHROME2"):
        return None
    bits, stored, signed = (ds.get(t, None) for t in ("BitsAllocated", "BitsStored", "PixelRepresentation"))
    if bits not in (8, 16, 32) or signed not in (0, 1) or not isinstance(stored, int) or not 0 < stored <= bits:
        return None
    values = [ds.get(t, None) for t in ("RescaleSlope", "RescaleIntercept")]
    if any(v is not None for v in values):
        # pydicom's modality LUT applies a rescale only when both tags hold a value
        if any(v in (None, "") for v in values) or not all(np.isfinite(float(v)) for v in values):
            return None
        rescale = (float(values[0]), float(values[1]))
    else:
        rescale = (1.0, 0.0)
    inverted = ds.get("PhotometricInterpretation", "") == "MONOCHROME1"
    return np.dtype(f"<{'iu'[1 - signed]}{bits // 8}"), bits - stored, rescale, inverted


def _read_native(
    fh: BinaryIO, out: np.ndarray, layout: tuple[np.dtype, int, tuple[float, float], bool], implicit_vr: bool
) -> bool:
    """Read the pixel data element at ``fh``'s position into ``out`` (rows, cols) float32 after the
    rescale; False (nothing written) when the element is not what the header promised."""
    dtype, unused_bits, (slope, intercept), _ = layout
    head = fh.read(12)
    if head[:4] != _PIXEL_DATA_TAG:
        return False
    if implicit_vr:  # tag, 4-byte length
        length = struct.unpack("<I", head[4:8])[0]
        fh.seek(-4, 1)
    elif head[4:6] in (b"OW", b"OB", b"UN"):  # tag, VR, 2 reserved bytes, 4-byte length
        length = struct.unpack("<I", head[8:12])[0]
    else:
        return False
    count = out.size
    if length == 0xFFFFFFFF or length < count * dtype.itemsize:
        return False
    raw = np.fromfile(fh, dtype=dtype, count=count)
    if raw.size < count:
        return False
    raw = raw.reshape(out.shape)
    if unused_bits:  # as pydicom does: drop the bits above BitsStored, extending the sign
        np.left_shift(raw, unused_bits, out=raw)
        np.right_shift(raw, unused_bits, out=raw)
    if (slope, intercept) == (1.0, 0.0):
        out[...] = raw
    elif dtype.itemsize <= 2 and slope.is_integer() and intercept.is_integer() and abs(slope) <= 256 \
            and abs(intercept) <= 2**15:
        # integer results below 2**24: float32 arithmetic is exact, as pydicom's float64 would be
        np.multiply(raw, np.float32(slope), out=out)
        out += np.float32(intercept)
    else:
        out[...] = raw * slope + intercept
    return True


#: the elements `_native_layout` reads; files whose raw values of these agree share one layout
_LAYOUT_TAGS = (0x00280002, 0x00280004, 0x00280008, 0x00280100, 0x00280101, 0x00280103, 0x00281052, 0x00281053,
                0x00283000)


def _layout_key(ds: Dataset) -> tuple:
    """The raw (unconverted) values `_native_layout` depends on: converting every file's values
    costs more than reading its pixels."""
    meta = getattr(ds, "file_meta", None)
    key: list[Any] = [meta.get("TransferSyntaxUID", None) if meta is not None else None]
    for tag in _LAYOUT_TAGS:
        element = ds.get_item(tag)
        value = None if element is None else element.value
        key.append(value if isinstance(value, (bytes, str, int, float, type(None))) else repr(value))
    return tuple(key)


def _read_slice(
    path: Path, header: Dataset, offset: int, out: np.ndarray, source: str,
    layouts: dict[tuple, tuple[np.dtype, int, tuple[float, float], bool] | None],
) -> None:
    """Decode one series file into ``out`` (rows, cols): straight from the file when it is stored
    plainly, else through pydicom's decoders on the header plus the pixel element read at
    ``offset`` (or a full read when the element is not there, e.g. a deflated file). ``layouts``
    caches `_native_layout` by `_layout_key` across the files of a series."""
    key = _layout_key(header)
    if key not in layouts:
        layouts[key] = _native_layout(header)
    layout = layouts[key]
    with open(path, "rb") as fh:
        fh.seek(offset)
        if layout is not None and _read_native(fh, out, layout, bool(header.original_encoding[0])):
            if layout[3]:
                out[...] = (float(out.min()) + float(out.max())) - out
            return
        fh.seek(offset)
        try:
            with _pydicom_quiet():
                pixels = read_dataset(fh, *header.original_encoding)
        except (EOFError, OSError, ValueError, KeyError):
            pixels = Dataset()
    tags = [t for t in pixels.keys() if t in (0x7FE00008, 0x7FE00009, 0x7FE00010)]
    ds = header
    if tags:
        for tag in tags:
            header[tag] = pixels.get_item(tag)
    else:
        ds = _read(path, header_only=False)
    try:
        values, _, _ = _pixels(ds, LoadOptions(), path.name)
    finally:
        for tag in tags:  # deleting the element also drops pydicom's cached array
            del header[tag]
    if values.shape != out.shape:
        raise InconsistentSeriesError(f"{source}: {path.name} decodes to {values.shape}, expected "
                                      f"{out.shape}; the series mixes image types")
    out[...] = values


def _read_stack(series: SeriesInfo, order: np.ndarray, source: str) -> np.ndarray:
    """The series' slices in ``order`` as one float32 (n, rows, cols) array, each file read once
    from its pixel data offset (files are decoded in parallel threads for larger series)."""
    stack = np.empty((series.n_slices,) + series.size, dtype=np.float32)
    layouts: dict[tuple, tuple[np.dtype, int, tuple[float, float], bool] | None] = {}

    def read(k: int) -> None:
        i = int(order[k])
        _read_slice(series.files[i], series.headers[i], series.pixel_offsets[i], stack[k], source, layouts)

    workers = min(os.cpu_count() or 1, 8) if series.n_slices >= PARALLEL_MIN_FILES else 1
    if workers <= 1:
        for k in range(series.n_slices):
            read(k)
        return stack
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom")
    try:
        for _ in pool.map(read, range(series.n_slices)):
            pass
    finally:
        pool.shutdown(cancel_futures=True)
    return stack


def load_dicom_series(folder: Path, options: LoadOptions) -> Volume:
    """A DICOM folder -> one canonical 3-D `Volume` (see the module docstring and `imaging.io.load`)."""
    source = folder.name or str(folder)
    series, skipped = scan_folder(folder)
    if not series:
        raise _no_image_error(folder, skipped)
    chosen = select_series(series, options.series, source)
    if chosen.n_slices == 1:
        volume = load_dicom_file(chosen.files[0], options, name=source)
        if len(series) > 1:
            volume.metadata["series_index"] = chosen.index
        return volume
    if options.frame is not None:
        raise FrameSelectionError(f"{source}: frame= applies to a single multi-frame file or a 4-D NIfTI, not to "
                                  "a series of single-frame files; drop it")
    headers = list(chosen.headers)
    check_shape((chosen.n_slices,) + chosen.size, options.max_voxels, source)
    order, positions, origins, r, c, n = _slice_geometry(headers, list(chosen.files), source)
    uneven = _check_spacing(positions, origins, source, options.allow_uneven)
    dy, dx, spacing_tag = _pixel_spacing(headers[0], options)
    stack = _read_stack(chosen, order, source)
    slopes = {_rescale(ds) for ds in headers}
    first = headers[order[0]]
    # the slice direction per mm along the normal, from the acquired span (a resampled grid need
    # not end on the last acquired slice, so its own span would give the wrong step)
    direction = (origins[-1] - origins[0]) / (positions[-1] - positions[0])
    if uneven:
        stack, positions = _resample_slices(stack, positions, uneven["expected_mm"])
    step = direction * float(np.median(np.diff(positions)))
    slice_spacing = float(abs(step @ n))
    affine = _affine(origins[0], step, r, c, dy, dx)
    view, affine, spacing, _ = to_canonical(stack, affine, (slice_spacing, dy, dx), source)
    metadata: dict[str, Any] = {
        "format": "DICOM series",
        **dicom_metadata(first),
        "n_files": chosen.n_slices,
        "slice_positions_mm": [round(float(positions[0]), 3), round(float(positions[-1]), 3)],
        "slice_spacing_source": "ImagePositionPatient",
        "pixel_spacing_source": spacing_tag,
        "geometry_source": "ImagePositionPatient/ImageOrientationPatient",
    }
    if len(slopes) > 1:
        metadata["rescale_varies_per_slice"] = True
    if uneven:
        metadata["uneven_slices"] = uneven
    if skipped:
        metadata["ignored_objects"] = dict(skipped)
    if len(series) > 1:
        metadata["series_index"] = chosen.index
    return build_volume(view, affine, spacing, options, source=source, name=source, metadata=metadata,
                        dicom_modality=first.get("Modality", None), data_is_float32=True)
