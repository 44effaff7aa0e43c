"""``auto``: per request, the best segmenter whose weights are present, saying which and why.

Weights are found (`discover_weights`) in the paths given (``--weights``, repeatable) and in
TotalSegmentator's own places (``TOTALSEG_WEIGHTS_PATH``, ``TOTALSEG_HOME_DIR``,
``~/.totalsegmentator``); what a path holds is read from its layout: a MONAI bundle
(``configs/inference.json``), a TotalSegmentator weights folder (``nnunet/results`` or
``Dataset<id>_...`` folders), or a SAM / MedSAM ``.pth`` file ("medsam" in its name).

The order for one request (`AutoSegmenter.ranked`):

* a 2-D image: ``classical`` (the model adapters run 3-D CT models);
* a named target on CT: ``totalseg`` when it knows the target, then a ``monai`` bundle that does,
  then ``classical``;
* a named target on MR and other 3-D images: a ``monai`` bundle that knows it, then ``classical``;
* only a box or point prompt: ``medsam``, ``sam``, a promptable (VISTA3D) ``monai`` bundle, then
  ``classical``.

A model that fails (`SegmentationError`) hands over to the next with the failure in the reason.
With ``cross_check`` (the default) a model's mask of a target the classical segmenter also knows
is compared with the classical one (`grounding.segmenters.agreement`), so disagreement shows in
the evidence quality. Each call leaves `last_choice` (segmenter, reason) and `last_cross_check`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.base import Prompt, SegmentationError, Segmenter, normalize_target
from grounding.segmenters.classical import ClassicalSegmenter
from imaging.volume import Volume

WEIGHT_KINDS = ("totalseg", "monai", "sam", "medsam")


@dataclass(frozen=True)
class Choice:
    """The segmenter ``auto`` used for one request, and why."""

    segmenter: str
    reason: str


def weights_kind(path: str | Path) -> str:
    """What a weights path holds: ``monai``, ``totalseg``, ``medsam`` or ``sam``.

    Raises:
        SegmentationError: the path is missing or its layout is none of these.
    """
    from grounding.segmenters.monai_bundle import is_bundle

    p = Path(path).expanduser()
    if not p.exists():
        raise SegmentationError(f"weights path not found: {p}")
    if p.is_file() and p.suffix in (".pth", ".pt"):
        return "medsam" if "medsam" in p.name.lower() else "sam"
    if p.is_dir() and is_bundle(p):
        return "monai"
    results = p / "nnunet" / "results" if (p / "nnunet" / "results").is_dir() else p
    if p.is_dir() and any(c.name.startswith("Dataset") and c.is_dir() for c in results.iterdir()):
        return "totalseg"
    raise SegmentationError(
        f"cannot tell what {p} holds: expected a MONAI bundle folder (configs/inference.json), a TotalSegmentator "
        "weights folder (nnunet/results/Dataset...), or a SAM/MedSAM .pth file"
    )


def discover_weights(paths: list[str | Path] | tuple[str | Path, ...] = ()) -> dict[str, Path]:
    """Segmenter kind -> weights path, from ``paths`` first, then TotalSegmentator's own places."""
    found: dict[str, Path] = {}
    for path in paths:
        found.setdefault(weights_kind(path), Path(path).expanduser())
    if "totalseg" not in found:
        places = [os.environ.get("TOTALSEG_WEIGHTS_PATH"), os.environ.get("TOTALSEG_HOME_DIR"),
                  str(Path.home() / ".totalsegmentator")]
        for place in filter(None, places):
            try:
                if weights_kind(place) == "totalseg":
                    found["totalseg"] = Path(place)
                    break
            except SegmentationError:
                continue
    return found


class AutoSegmenter:
    """Picks a segmenter per request (see the module docstring).

    Args:
        weights: paths of model weights (bundle folders, TotalSegmentator folders, SAM .pth files).
        cross_check: compare a model's mask with the classical segmenter's where both know the target.
        **model_options: ``device``, ``half``, ``sw_batch_size``, ``sw_overlap``, ``fast``, passed
            to the model adapters that take them.
    """

    name = "auto"

    def __init__(self, weights: list[str | Path] | tuple[str | Path, ...] = (), cross_check: bool = True,
                 **model_options: Any) -> None:
        self.weights = discover_weights(weights)
        self.cross_check = bool(cross_check)
        self.model_options = model_options
        self.classical = ClassicalSegmenter()
        self._models: dict[str, Segmenter] = {}
        self._failed: dict[str, str] = {}
        self.last_choice: Choice | None = None
        self.last_cross_check: tuple[str, np.ndarray] | None = None
        known = list(self.classical.targets)
        for kind in self.weights:
            model = self._model(kind)
            known += [t for t in (model.targets if model is not None else ()) if t not in known]
        self.targets: tuple[str, ...] = tuple(known)

    def _model(self, kind: str) -> Segmenter | None:
        """The adapter for ``kind`` built once; None (failure remembered) when it cannot start."""
        from grounding.segmenters.base import get_segmenter

        if kind not in self._models and kind not in self._failed and kind in self.weights:
            try:
                self._models[kind] = get_segmenter(kind, weights=str(self.weights[kind]), **self.model_options)
            except SegmentationError as err:
                self._failed[kind] = str(err)
        return self._models.get(kind)

    def ranked(self, volume: Volume, target: str | None, prompt: Prompt | None) -> list[tuple[Segmenter, str]]:
        """Candidate segmenters for one request, best first, each with the reason it is there."""
        name = normalize_target(target) if target else None
        prompted = prompt is not None and (prompt.box_zyx is not None or prompt.point_zyx is not None)
        out: list[tuple[Segmenter, str]] = []
        if volume.is_2d:
            return [(self.classical, "a 2-D image: the model segmenters available run 3-D CT models")]
        if name is None and prompted:
            for kind in ("medsam", "sam", "monai"):
                model = self._model(kind)
                if model is None or (kind == "monai" and not getattr(model, "promptable", False)):
                    continue
                out.append((model, f"a prompt without a target: {kind} segments what a box or point shows "
                                   f"(weights {self.weights[kind]})"))
        elif name is not None:
            kinds = ("totalseg", "monai") if volume.modality == "CT" else ("monai",)
            for kind in kinds:
                model = self._model(kind)
                if model is not None and name in model.targets:
                    out.append((model, f"{kind} knows '{name}' and its weights are present ({self.weights[kind]}); "
                                       "a trained model is preferred to the classical heuristics"))
        missing = [k for k in WEIGHT_KINDS if k not in self.weights]
        fallback = "the classical segmenter (no weights) is the fallback"
        if not out:
            fallback = "no model with weights here handles this request" + (
                f" (no weights found for {', '.join(missing)})" if missing else "") + "; classical segmenter"
        out.append((self.classical, fallback))
        return out

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """The first candidate's mask that succeeds; `last_choice` says which and why."""
        self.last_choice, self.last_cross_check = None, None
        failures: list[str] = []
        candidates = self.ranked(volume, target, prompt)
        for segmenter, reason in candidates:
            try:
                mask = segmenter.segment(volume, target=target, prompt=prompt)
            except SegmentationError as err:
                if segmenter is self.classical or len(candidates) == 1:
                    raise
                failures.append(f"{segmenter.name} failed: {err}")
                continue
            why = reason if not failures else f"{reason} ({'; '.join(failures)})"
            self.last_choice = Choice(segmenter.name, why)
            if (self.cross_check and segmenter is not self.classical and target
                    and normalize_target(target) in self.classical.targets):
                try:
                    self.last_cross_check = ("classical", self.classical.segment(volume, target=target, prompt=prompt))
                except SegmentationError:
                    self.last_cross_check = None
            return mask
        raise SegmentationError("; ".join(failures))  # unreachable: classical is always last

    def search_weakness(self, volume: Volume, target: str | None, prompt: Prompt | None) -> list[str]:
        """The classical search's doubts (`ClassicalSegmenter.search_weakness`) when it made the last mask."""
        if self.last_choice is None or self.last_choice.segmenter != self.classical.name:
            return []
        return self.classical.search_weakness(volume, target, prompt)
