"""The segmenter interface: `Prompt`, `Segmenter`, the target vocabulary and `get_segmenter`.

Every segmenter takes a `Volume` (canonical LPS, see `imaging.volume`) and a target name and/or
a `Prompt`, and returns a boolean mask with the volume's shape. Target names are shared by all
backends so that a model sees one vocabulary: `TARGETS` are the structures the default
(classical, weight-free) segmenter knows; model-based segmenters may know more (e.g. the
``aorta`` of `ORGAN_TARGETS` through TotalSegmentator) and list them in their own ``targets``.

Left and right are always the **patient's**: world ``x`` (LPS) grows towards the patient's left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from imaging.errors import MMReasonError
from imaging.volume import Volume


class SegmentationError(MMReasonError, ValueError):
    """A structure cannot be segmented; the message says what would work instead."""


#: canonical targets of every default segmenter, with the one-line description shown to models
TARGETS: dict[str, str] = {
    "body": "the patient's body outline (skin and everything inside it; no table, no outside air)",
    "lungs": "both lungs (CT: air-filled parenchyma, with the nodules and vessels inside, no trachea; "
    "chest radiograph: the visible lung fields)",
    "lung_left": "the patient's left lung",
    "lung_right": "the patient's right lung",
    "airways": "trachea and main bronchi (air inside the body but outside the lungs)",
    "bone": "bone (CT voxels of at least 200 HU inside the body)",
    "lesion": "focal lesion candidates (also 'mass', 'tumor'): lung nodules and masses up to 100 mm on CT (a part-solid "
    "mass with its ground glass), a lesion inside a prompted box or inside an organ given with 'within', hyperintense lesions on MR (FLAIR/T2)",
    "nodule": "lung nodule candidates of 4-30 mm (compact soft-tissue blobs inside the lungs or on the pleura)",
    "heart": "the heart; on a chest radiograph the cardiac silhouette between the lungs (its width is the "
    "cardiac diameter of the cardiothoracic ratio)",
    "thorax": "chest radiograph: the thoracic cavity between the inner rib margins, lung apex to base (its "
    "width is the thoracic diameter of the cardiothoracic ratio)",
    "liver": "the liver (abdominal CT)",
    "spleen": "the spleen (abdominal CT)",
    "kidney_left": "the patient's left kidney (abdominal CT)",
    "kidney_right": "the patient's right kidney (abdominal CT)",
}

#: organ targets named as TotalSegmentator names its classes (one class each); the classical
#: segmenter knows all but ``aorta`` (heuristics on CT, the heart only on radiographs)
ORGAN_TARGETS: dict[str, str] = {
    "liver": TARGETS["liver"],
    "spleen": TARGETS["spleen"],
    "kidney_left": TARGETS["kidney_left"],
    "kidney_right": TARGETS["kidney_right"],
    "heart": TARGETS["heart"],
    "aorta": "the aorta",
}

#: finer anatomy only model segmenters know (TotalSegmentator class names, or groups of them)
MODEL_TARGETS: dict[str, str] = {
    "lung_upper_lobe_left": "the upper lobe of the patient's left lung",
    "lung_lower_lobe_left": "the lower lobe of the patient's left lung",
    "lung_upper_lobe_right": "the upper lobe of the patient's right lung",
    "lung_middle_lobe_right": "the middle lobe of the patient's right lung",
    "lung_lower_lobe_right": "the lower lobe of the patient's right lung",
    "vertebrae": "the vertebrae (every vertebral level in the field of view, with the sacrum)",
}

#: every target name any segmenter knows -> the one-line description shown to models
TARGET_DESCRIPTIONS: dict[str, str] = {**TARGETS, **ORGAN_TARGETS, **MODEL_TARGETS}

#: alias (normalised: lower case, words joined by "_") -> canonical name
ALIASES: dict[str, str] = {
    "lung": "lungs",
    "both_lungs": "lungs",
    "left_lung": "lung_left",
    "lung_l": "lung_left",
    "right_lung": "lung_right",
    "lung_r": "lung_right",
    "airway": "airways",
    "trachea": "airways",
    "bronchi": "airways",
    "bones": "bone",
    "skeleton": "bone",
    "patient": "body",
    "body_outline": "body",
    "lesions": "lesion",
    "tumor": "lesion",
    "tumour": "lesion",
    "mass": "lesion",
    "nodules": "nodule",
    "lung_nodule": "nodule",
    "lung_nodules": "nodule",
    "left_kidney": "kidney_left",
    "right_kidney": "kidney_right",
    "kidney_l": "kidney_left",
    "kidney_r": "kidney_right",
    "cardiac_silhouette": "heart",
    "thoracic_cavity": "thorax",
    "chest": "thorax",
    "spine": "vertebrae",
    "vertebra": "vertebrae",
    "left_upper_lobe": "lung_upper_lobe_left",
    "left_lower_lobe": "lung_lower_lobe_left",
    "right_upper_lobe": "lung_upper_lobe_right",
    "right_middle_lobe": "lung_middle_lobe_right",
    "right_lower_lobe": "lung_lower_lobe_right",
}

#: backend names accepted by `get_segmenter` (``totalsegmentator`` is also read as ``totalseg``)
SEGMENTERS = ("auto", "classical", "totalseg", "monai", "sam", "medsam", "reference")
#: options every model adapter may be given (`get_segmenter` passes each adapter those it takes)
MODEL_OPTIONS = ("device", "half", "sw_batch_size", "sw_overlap", "fast")


def normalize_target(name: str) -> str:
    """``"Left lung"``, ``"left-lung"``, ``"right_lung"`` -> canonical form (``lung_left`` ...)."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return ALIASES.get(key, key)


def resolve_target(name: str | None, known: tuple[str, ...]) -> str:
    """The canonical name of ``name`` if it is one of ``known``.

    Raises:
        SegmentationError: no target, or an unknown one; the message lists ``known``.
    """
    if not name:
        raise SegmentationError(f"give a target to segment; known targets: {', '.join(known)}")
    canonical = normalize_target(name)
    if canonical not in known:
        raise SegmentationError(f"unknown target '{name}'; known targets: {', '.join(known)}")
    return canonical


@dataclass
class Prompt:
    """Where to look, in voxel indices of the volume being segmented.

    Attributes:
        box_zyx: a voxel region (z, y, x) slices, e.g. from a box drawn on a view; one slice
            thick along ``plane_axis`` for a box on a 2-D slice view.
        point_zyx: a voxel position (z, y, x), continuous indices.
        plane_axis: the voxel axis the view is a slice along (0 axial, 1 coronal, 2 sagittal)
            when the prompt comes from a 2-D slice view.
        within: a boolean mask of the volume's shape to search inside, e.g. an organ from an
            earlier segmentation ("a lesion within the liver"); results never leave it.
    """

    box_zyx: tuple[slice, slice, slice] | None = None
    point_zyx: tuple[float, float, float] | None = None
    plane_axis: int | None = None
    within: np.ndarray | None = None

    def region(self, shape: tuple[int, ...]) -> tuple[slice, slice, slice] | None:
        """``box_zyx`` clipped to ``shape``.

        Raises:
            SegmentationError: the box lies entirely outside the volume.
        """
        if self.box_zyx is None:
            return None
        out = []
        for s, n in zip(self.box_zyx, shape):
            start, stop, _ = s.indices(n)
            if stop <= start:
                raise SegmentationError(
                    f"the prompt box {self.box_zyx} lies outside the volume of shape {tuple(shape)}; "
                    "draw the box inside the image"
                )
            out.append(slice(start, stop))
        return tuple(out)  # type: ignore[return-value]

    def point_index(self, shape: tuple[int, ...]) -> tuple[int, int, int] | None:
        """``point_zyx`` rounded to the nearest voxel and clipped to ``shape``."""
        if self.point_zyx is None:
            return None
        index = (int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(self.point_zyx, shape))
        return tuple(index)  # type: ignore[return-value]

    def within_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """``within`` as a boolean array, checked against ``shape``.

        Raises:
            SegmentationError: the mask is on another grid, or empty.
        """
        if self.within is None:
            return None
        mask = np.asarray(self.within, dtype=bool)
        if mask.shape != tuple(shape):
            raise SegmentationError(
                f"the 'within' mask has shape {mask.shape} but the volume has {tuple(shape)}; "
                "use a mask segmented on the same image"
            )
        if not mask.any():
            raise SegmentationError("the 'within' mask is empty: there is nowhere to search")
        return mask


@runtime_checkable
class Segmenter(Protocol):
    """A segmentation backend.

    Attributes:
        name: the backend name (one of `SEGMENTERS`).
        targets: canonical target names it knows (aliases are resolved by `resolve_target`).
    """

    name: str
    targets: tuple[str, ...]

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape``; raises `SegmentationError` when it cannot."""


def _single_path(weights: Any, name: str) -> str | None:
    if weights is None or isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__"):
        return weights
    paths = list(weights)
    if len(paths) > 1:
        raise SegmentationError(f"the {name} segmenter takes one weights path, got {len(paths)}; "
                                "use --segmenter auto to choose among several")
    return paths[0] if paths else None


def get_segmenter(name: str = "classical", **options: Any) -> Segmenter:
    """Build a segmenter backend by name.

    Args:
        name: one of `SEGMENTERS`: ``classical`` (no weights); ``totalseg`` (``weights``: a
            TotalSegmentator home or results folder, default its own places; ``fast``);
            ``monai`` (``weights`` or ``bundle``: a bundle folder; ``half``, ``sw_batch_size``,
            ``sw_overlap``); ``sam`` / ``medsam`` (``weights`` or ``checkpoint``: a .pth file;
            ``model_type``, ``config``); ``auto`` (``weights``: any number of the above, and
            ``cross_check``); ``reference`` (``masks``: ``{target: path}`` of a case's reference
            masks, or ``weights``: a folder of ``<target>.nii.gz``; the oracle of benchmarks). Every model adapter takes ``device`` (``auto``: GPU when present).
        **options: the options above; each backend takes those that apply to it (`MODEL_OPTIONS`
            are ignored by backends that have no use for them, so one option set serves ``auto``).

    Raises:
        SegmentationError: unknown backend, or a backend that cannot start (missing package or
            weights); the message says how to fix it.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    key = "totalseg" if key == "totalsegmentator" else key
    generic = {k: options.pop(k) for k in MODEL_OPTIONS if k in options and options[k] is not None}
    for k in MODEL_OPTIONS:
        options.pop(k, None)
    weights = options.pop("weights", None)
    if key == "classical":
        from grounding.segmenters.classical import ClassicalSegmenter

        return ClassicalSegmenter(**options)
    if key == "reference":
        from grounding.segmenters.reference import ReferenceSegmenter

        return ReferenceSegmenter(weights=_single_path(weights, key), **options)
    if key == "auto":
        from grounding.segmenters.auto import AutoSegmenter

        paths = [] if weights is None else [weights] if isinstance(weights, (str, bytes)) or hasattr(
            weights, "__fspath__") else list(weights)
        if options.get("checkpoint"):
            paths.append(options.pop("checkpoint"))
        return AutoSegmenter(weights=paths, **options, **generic)
    if key in ("sam", "medsam"):
        from grounding.segmenters.device import resolve_device
        from grounding.segmenters.sam import SamSegmenter

        checkpoint = options.pop("checkpoint", None) or _single_path(weights, key)
        if not checkpoint:
            raise SegmentationError(
                f"the {key} segmenter needs weights: --weights <path to a SAM/MedSAM .pth file>; "
                "use the classical segmenter when no weights are available"
            )
        if key == "medsam":
            options.setdefault("medsam", True)
        return SamSegmenter(checkpoint, device=resolve_device(generic.get("device", "auto")), **options)
    if key == "totalseg":
        from grounding.segmenters.totalseg import TotalSegmentatorSegmenter

        return TotalSegmentatorSegmenter(weights=_single_path(weights, key), fast=generic.get("fast"),
                                         device=generic.get("device", "auto"), **options)
    if key == "monai":
        from grounding.segmenters.monai_bundle import MonaiBundleSegmenter

        bundle = options.pop("bundle", None) or _single_path(weights, key)
        if not bundle:
            raise SegmentationError("the monai segmenter needs --weights <a MONAI bundle folder>; download one with "
                                    "`python -m monai.bundle download NAME --bundle_dir DIR` on a machine with internet")
        return MonaiBundleSegmenter(bundle, **{k: v for k, v in generic.items() if k != "fast"}, **options)
    raise SegmentationError(f"unknown segmenter '{name}'; choose one of {', '.join(SEGMENTERS)}")
