"""Loader options and the last step every loader shares: float32 voxels -> `Volume`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imaging.io.errors import InvalidOptionError
from imaging.io.limits import DEFAULT_MAX_VOXELS, NONFINITE_POLICIES, handle_nonfinite
from imaging.io.metadata import check_modality, resolve_modality, shifted_ct_offset
from imaging.io.sequence import check_sequence, named_sequence, stated_sequence
from imaging.io.orientation import as_float32, axis_codes, obliquity_degrees
from imaging.provenance import ASSUMED_SOURCES, fact_sources
from imaging.volume import Volume


@dataclass(frozen=True)
class LoadOptions:
    """The keyword options of `imaging.io.load` (see its docstring for their meaning)."""

    frame: int | None = None
    series: int | str | None = None
    modality: str | None = None
    sequence: str | None = None
    color: bool = False
    spacing: tuple[float, float] | None = None
    max_voxels: int = DEFAULT_MAX_VOXELS
    nonfinite: str = "error"
    allow_uneven: bool = False
    assume_orientation: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", check_modality(self.modality))
        if self.sequence is not None:
            object.__setattr__(self, "sequence", check_sequence(self.sequence))
        if self.nonfinite not in NONFINITE_POLICIES:
            raise InvalidOptionError(
                f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {self.nonfinite!r}"
            )
        if self.frame is not None and int(self.frame) < 0:
            raise InvalidOptionError(f"frame must be a non-negative index, got {self.frame}")
        if self.spacing is not None:
            sp = tuple(float(s) for s in self.spacing)
            if len(sp) != 2 or min(sp) <= 0 or not all(np.isfinite(sp)):
                raise InvalidOptionError(f"spacing must be two positive mm values (row, column), got {self.spacing}")
            object.__setattr__(self, "spacing", sp)
        if int(self.max_voxels) <= 0:
            raise InvalidOptionError(f"max_voxels must be positive, got {self.max_voxels}")


def build_volume(
    view: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    options: LoadOptions,
    *,
    source: str,
    name: str,
    metadata: dict[str, Any],
    slope: float = 1.0,
    intercept: float = 0.0,
    dicom_modality: str | None = None,
    modality_note: str | None = None,
    header_text: str | None = None,
    color: np.ndarray | None = None,
    data_is_float32: bool = False,
    is_color: bool = False,
) -> Volume:
    """Convert a canonical ``view`` to float32 (one copy), apply the NaN policy, decide the modality.

    Args:
        view: canonical (z, y, x) voxels, any real dtype (possibly a strided view).
        affine, spacing: canonical geometry (index -> LPS mm; (z, y, x) mm).
        slope, intercept: linear rescale applied during the float32 conversion.
        dicom_modality, modality_note: inputs of `imaging.io.metadata.resolve_modality`.
        header_text: a free-text header field (NIfTI ``descrip``) that may name the MR sequence; it
            is read for that word only (`imaging.io.sequence.named_sequence`), never stored.
        color: optional canonical (z, y, x, 3) uint8 copy kept when ``options.color``.
        data_is_float32: ``view`` is already a fresh C-contiguous float32 array the loader owns.
        is_color: the input was a colour image (even if collapsed to luminance); feeds the heuristic.
    """
    if data_is_float32 and view.dtype == np.float32 and view.flags.c_contiguous and slope == 1.0 and intercept == 0.0:
        data = view
    else:
        data = as_float32(view, slope, intercept)
    # integer sources cannot hold NaN/inf (and a finite rescale keeps them finite): skip the scan
    replaced = handle_nonfinite(data, options.nonfinite, source) if view.dtype.kind == "f" else 0
    modality, rule = resolve_modality(
        options.modality, dicom_modality, modality_note, data, is_color=is_color or color is not None
    )
    meta = dict(metadata)
    meta["modality_source"] = rule
    stated_ct, guessed_other = modality == "CT" and rule != "heuristic", modality != "CT" and rule == "heuristic"
    offset = shifted_ct_offset(data) if stated_ct or guessed_other else None
    if offset is not None and stated_ct:
        # a CT whose file dropped the rescale intercept (converters, anonymisers): its HU thresholds
        # would find no air and no soft tissue; the intercept is assumed, and says so in the evidence
        data -= np.float32(offset)
        meta["hu_offset_assumed"] = -offset
    elif offset is not None:
        # MR magnitudes can look alike: not shifted, the evidence only suggests --modality CT
        meta["hu_offset_suspected"] = -offset
    if modality == "MR" and options.sequence:
        meta.update(stated_sequence(options.sequence))
    elif modality == "MR" and "sequence" not in meta:
        meta.update(named_sequence(header_text, source))
    meta["orientation_codes"] = axis_codes(affine)
    meta["obliquity_deg"] = round(obliquity_degrees(affine), 3)
    if options.assume_orientation and fact_sources(meta).get("orientation", ("caller",))[0] in ASSUMED_SOURCES:
        # the user takes responsibility for the guessed axes; a header or DICOM orientation needs no consent
        meta["orientation_argument"] = f"(accepted the assumed orientation, voxel axes z, y, x -> {meta['orientation_codes']})"
    if replaced:
        meta["nonfinite_replaced"] = {"count": replaced, "policy": options.nonfinite}
    if color is not None:
        color = np.ascontiguousarray(color, dtype=np.uint8)
    return Volume(data=data, spacing=spacing, affine=affine, modality=modality, metadata=meta, name=name,
                  color=color)
