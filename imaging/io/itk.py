"""NRRD (.nrrd, .nhdr + data file) and MetaImage (.mha, .mhd + .raw) through SimpleITK.

ITK's physical space is LPS+, so the index -> LPS affine is built directly from the header's
spacing, direction cosines and origin (``direction @ diag(spacing)``, ``origin``) and put through
the same `imaging.io.orientation.to_canonical` as NIfTI: every voxel keeps its exact world position.
SimpleITK fills in identity directions and 1.0 mm spacings when the header has none; the header
text is read here to tell those defaults from stated values, so that `imaging.provenance` marks an
orientation or spacing the file never gave as assumed.

4-D images (time series) and vector images (several components per voxel, e.g. diffusion
gradients) give one 3-D volume each: ``frame=`` picks it, as for a 4-D NIfTI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import CorruptFileError, FrameSelectionError, UnsupportedFormatError
from imaging.io.formats import NRRD_SUFFIXES
from imaging.io.limits import check_shape
from imaging.io.orientation import axis_codes, to_canonical
from imaging.volume import Volume


#: how much of a file is read to find its text header (NRRD and MetaImage headers are short)
_HEADER_BYTES = 65536

#: MetaImage ``Modality`` values -> our modality (others leave the heuristic to decide)
_METAIMAGE_MODALITY = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_PET": "PT", "MET_MOD_US": "US"}

#: header fields that state the geometry, by format: (orientation fields, spacing fields)
_NRRD_FIELDS = (("space directions",), ("space directions", "spacings"))
_META_FIELDS = (("TransformMatrix", "Orientation", "Rotation"), ("ElementSpacing", "ElementSize"))


def _sitk() -> Any:
    try:
        import SimpleITK
    except ImportError as exc:  # declared a core dependency; a broken environment still gets a hint
        raise UnsupportedFormatError("reading NRRD and MetaImage files needs SimpleITK: pip install 'SimpleITK>=2.3'") \
            from exc
    return SimpleITK


def _header_fields(path: Path, kind: str) -> set[str]:
    """Names of the fields written in the text header (``key: value`` NRRD, ``Key = value`` MetaImage)."""
    with path.open("rb") as fh:
        head = fh.read(_HEADER_BYTES)
    text = head.split(b"\n\n", 1)[0] if kind == "NRRD" else head.split(b"ElementDataFile", 1)[0]
    pattern = r"^([A-Za-z][\w ]*?)\s*:=?" if kind == "NRRD" else r"^\s*(\w+)\s*="
    return {m.group(1).strip() for m in re.finditer(pattern, text.decode("latin-1"), re.M)}


def _index_affine(spacing: tuple[float, ...], direction: tuple[float, ...], origin: tuple[float, ...]) -> np.ndarray:
    """The 4x4 map from ITK index (i, j, k) to LPS mm; a 2-D image is one slice in its own plane."""
    n = len(spacing)
    cosines = np.asarray(direction, dtype=float).reshape(n, n)
    affine = np.eye(4)
    affine[:n, :n] = cosines * np.asarray(spacing, dtype=float)
    affine[:n, 3] = origin
    return affine


def _frames(reader: Any, source: str, frame: int | None) -> tuple[int, int | None, str]:
    """(number of 3-D volumes, the one to read or None when there is one, what the extra axis is)."""
    dimension, components = reader.GetDimension(), reader.GetNumberOfComponents()
    if dimension > 4 or (dimension == 4 and components > 1):
        raise UnsupportedFormatError(f"{source}: a {dimension}-D image with {components} components per voxel is "
                                     "not supported; split it into 3-D volumes first")
    what = "time points" if dimension == 4 else "components per voxel"
    count = reader.GetSize()[3] if dimension == 4 else components
    if count > 1 and frame is None:
        raise FrameSelectionError(f"{source}: the image holds {count} {what}; pick one with frame=0..{count - 1} "
                                  "(CLI: --frame N)")
    if frame is not None and frame >= count:
        raise FrameSelectionError(f"{source}: frame={frame} is out of range; the image holds {count} {what}")
    return count, (frame or 0) if count > 1 else None, what


def load_itk(path: Path, options: LoadOptions) -> Volume:
    """Read a NRRD or MetaImage file into a canonical `Volume` (see `imaging.io.load` for ``options``)."""
    sitk = _sitk()
    source = path.name
    kind = "NRRD" if path.name.lower().endswith(NRRD_SUFFIXES) else "MetaImage"
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        fields = _header_fields(path, kind)
    except (RuntimeError, OSError) as exc:
        raise CorruptFileError(f"{source}: cannot read the {kind} header ({_first_line(exc)}); the file is damaged or "
                               f"not {kind}, re-export or re-download it") from exc
    count, frame, what = _frames(reader, source, options.frame)
    size = tuple(int(n) for n in reader.GetSize())
    spatial = size[:3] if len(size) >= 3 else size + (1,)
    check_shape(tuple(reversed(spatial)), options.max_voxels, source)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        data_file = " or the data file its header names is missing" if path.suffix.lower() in (".nhdr", ".mhd") else ""
        raise CorruptFileError(f"{source}: the voxel data are truncated or damaged{data_file} "
                               f"({_first_line(exc)}); re-export or re-download it") from exc
    if len(size) == 4:
        image = sitk.Extract(image, size[:3] + (0,), (0, 0, 0, frame or 0))
    elif frame is not None:
        image = sitk.VectorIndexSelectionCast(image, frame)
    raw = sitk.GetArrayViewFromImage(image)  # (k, j, i); valid while `image` lives, copied by build_volume
    if raw.dtype.kind not in "biuf":
        raise UnsupportedFormatError(f"{source}: {kind} pixel type {image.GetPixelIDTypeAsString()} is not supported; "
                                     "convert it to a scalar image first")
    if raw.ndim == 2:
        raw = raw[np.newaxis]
    index_affine = _index_affine(image.GetSpacing(), image.GetDirection(), image.GetOrigin())
    # array axes run (k, j, i): the array -> LPS affine takes the index columns in reverse
    array_affine = index_affine[:, [2, 1, 0, 3]]
    spacing = tuple(float(s) for s in np.linalg.norm(array_affine[:3, :3], axis=0))
    view, affine, canonical_spacing, _ = to_canonical(raw, array_affine, spacing, source)
    orientation_fields, spacing_fields = _NRRD_FIELDS if kind == "NRRD" else _META_FIELDS
    stated_orientation = bool(fields & set(orientation_fields))
    metadata: dict[str, Any] = {
        "format": kind,
        "source_shape": list(size) + ([reader.GetNumberOfComponents()] if reader.GetNumberOfComponents() > 1 else []),
        "source_orientation": axis_codes(index_affine) + " (index i, j, k; LPS world)",
        "stored_dtype": str(raw.dtype),
        "spacing_source": f"{kind} header",
        "geometry_source": (f"{kind} header (spacing, direction, origin)" if stated_orientation else
                            f"assumed: the {kind} header states no axis directions, so the image axes are taken "
                            "as patient left, posterior and superior"),
    }
    if not fields & set(spacing_fields):
        metadata["pixel_spacing_source"] = f"unknown: the {kind} header states no spacing, 1.0 mm assumed"
    if frame is not None:
        metadata["frame"] = frame
        metadata["frames"] = f"{count} {what}"
    note = _METAIMAGE_MODALITY.get(reader.GetMetaData("Modality")) if reader.HasMetaDataKey("Modality") else None
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return build_volume(view, affine, canonical_spacing, options, source=source, name=stem, metadata=metadata,
                        modality_note=note)


def _first_line(exc: BaseException) -> str:
    """ITK errors span many lines with a C++ location; the last non-empty line says what failed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
