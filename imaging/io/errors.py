"""Errors raised while loading an image; each message says what the user can do about it."""

from __future__ import annotations

import re

from imaging.errors import MMReasonError

_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"()]+){2,}")


def cause(exc: BaseException, limit: int = 300) -> str:
    """A library's exception message for our own messages: one line, at most ``limit`` characters,
    file paths replaced by ``<file>`` (a path may hold a patient's name; ours name the file anyway)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return _PATH.sub("<file>", text)[:limit]


class LoadError(MMReasonError):
    """Base class: an input file or folder cannot be turned into a `Volume`."""


class InputNotFoundError(LoadError, FileNotFoundError):
    """The path does not exist."""


class UnsupportedFormatError(LoadError, ValueError):
    """The file type (extension or content) is not one the loaders read."""


class UnreadableFileError(LoadError, PermissionError):
    """The file or folder exists but this user may not read it (permission denied)."""


class CorruptFileError(LoadError, ValueError):
    """The file is truncated or damaged (short gzip stream, short pixel data, bad header)."""


class NoDicomError(LoadError, ValueError):
    """A folder holds no readable DICOM image files."""


class MultipleSeriesError(LoadError, ValueError):
    """A DICOM folder holds several series and none was chosen with ``series=``."""


class SeriesNotFoundError(LoadError, ValueError):
    """``series=`` names a series index or UID that is not in the folder."""


class NonImageDicomError(LoadError, ValueError):
    """The DICOM object is not an image (SEG, RTSTRUCT, RTPLAN, RTDOSE, SR, waveform ...)."""


class InconsistentSeriesError(LoadError, ValueError):
    """Slices of one series disagree (size, orientation, duplicate or missing positions)."""


class UnevenSlicesError(InconsistentSeriesError):
    """Slice spacing varies beyond tolerance (a missing slice, a gap); see ``allow_uneven=``."""


class FrameSelectionError(LoadError, ValueError):
    """A multi-frame or 4-D input needs ``frame=``, or the frame index is out of range."""


class NonFiniteValuesError(LoadError, ValueError):
    """Voxels are NaN or infinite; see ``nonfinite=``."""


class EmptyImageError(LoadError, ValueError):
    """The image has a zero-sized dimension."""


class ImageTooLargeError(LoadError, MemoryError):
    """The header announces more voxels than ``max_voxels=`` allows (checked before reading)."""


class MissingCodecError(LoadError, ImportError):
    """Compressed DICOM pixel data needs a decoder plugin that is not installed."""


class DecodeError(LoadError, ValueError):
    """Compressed DICOM pixel data could not be decoded by the installed plugins."""


class InvalidOptionError(LoadError, ValueError):
    """A loader keyword has an invalid value (unknown modality, bad spacing, bad policy)."""
