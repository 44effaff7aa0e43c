"""What every rule verifier needs to know about one trace, computed once.

`VerifyContext` indexes the trace (evidence by id, which step produced it, views by id, the frame
each image was shown in) and the case's ground truth (boxes per image, masks loaded on demand).
It also holds the thresholds (`VerifierConfig`), so each verifier module stays a set of plain
functions ``check_<what>(ctx, step) -> list[Check]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grounding.evidence import Evidence, view_from_dict
from imaging.views import View
from mmreason.case import Case
from mmreason.trace import Trace
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import VerifierError


@dataclass(frozen=True)
class Tolerance:
    """Accept a stated value ``c`` for a measured ``m`` when ``|c - m| <= max(relative * |m|, absolute)``."""

    relative: float = 0.0
    absolute: float = 0.0

    def accepts(self, claimed: float, measured: float) -> bool:
        return abs(claimed - measured) <= max(self.relative * abs(measured), self.absolute) + 1e-9


def _default_tolerances() -> dict[str, Tolerance]:
    return {
        "length": Tolerance(relative=0.10, absolute=0.5),  # mm; 0.5 mm floor for rounding small sizes
        "area": Tolerance(relative=0.10),                   # mm2
        "volume": Tolerance(relative=0.10),                 # mm3 (mL, cm3, cc converted)
        "intensity": Tolerance(relative=0.10, absolute=10.0),  # HU
        "percent": Tolerance(absolute=5.0),                 # percentage points
        "ratio": Tolerance(absolute=0.02),                  # e.g. cardiothoracic ratio
    }


@dataclass
class VerifierConfig:
    """Thresholds of the rule verifiers.

    Attributes:
        tolerances: per dimension (``length``, ``area``, ``volume``, ``intensity``, ``percent``,
            ``ratio``); see `Tolerance`. Defaults: 10% (and 0.5 mm) for lengths, 10% for areas and
            volumes, 10% or 10 HU for intensities, 5 points for percentages, 0.02 for ratios.
        iou_threshold: a claimed box matches a reference box at IoU >= this (default 0.5).
        change_tolerance: relative size change below which a lesion counts as stable (0.10).
        ctr_threshold: cardiothoracic ratio above which the heart is enlarged (0.5).
    """

    tolerances: dict[str, Tolerance] = field(default_factory=_default_tolerances)
    iou_threshold: float = 0.5
    change_tolerance: float = 0.10
    ctr_threshold: float = 0.5


_TIME_NAMES = ("baseline", "prior", "previous", "old", "current", "followup", "follow_up", "follow-up", "new")


@dataclass
class VerifyContext:
    """Indexes of one trace (and its case) shared by the verifiers."""

    trace: Trace
    case: Case | None
    steps: list[Step]
    config: VerifierConfig = field(default_factory=VerifierConfig)

    def __post_init__(self) -> None:
        self.evidence: dict[str, Evidence] = self.trace.evidence_by_id()
        self.producer: dict[str, int] = {eid: s.index for s in self.steps for eid in s.produced}
        # the loop's initial views (shown with the question) are kept in meta, tool views on evidence
        initial = [view_from_dict(d) for d in self.trace.meta.get("views", [])]
        self.views: dict[str, View] = {v.view_id: v for v in initial + [v for e in self.trace.evidence for v in e.views]
                                       if v.view_id}
        # view id -> (view size, size the model saw): boxes written by the model are in the latter
        self.frames: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
        self.images: dict[int, str] = {}
        for turn in self.trace.turns:
            for ref in turn.images:
                self.frames.setdefault(ref.view_id, (tuple(ref.size), tuple(ref.model_size)))  # type: ignore[arg-type]
                self.images[ref.index] = ref.view_id
        self._gt_masks: dict[str, np.ndarray] | None = None

    # -- evidence ------------------------------------------------------------------------------
    def available(self, step: Step) -> list[Evidence]:
        """Evidence the model had seen by ``step``: produced earlier, or not by any step (initial)."""
        return [e for e in self.trace.evidence if self.producer.get(e.id, -1) < step.index]

    def cited_or_available(self, step: Step) -> list[Evidence]:
        """The step's cited evidence that exists, or else everything available at the step."""
        cited = [self.evidence[i] for i in step.cited if i in self.evidence]
        return cited or self.available(step)

    def volume_of(self, ev: Evidence) -> str | None:
        """The volume id an evidence item is about (mask volume, arguments, view geometry)."""
        for v in (ev.mask_volume, ev.arguments.get("volume"), ev.data.get("volume")):
            if v is not None:
                return str(v)
        view_id = (ev.box or {}).get("view_id") or ev.arguments.get("view_id")
        view = self.views.get(view_id) if view_id else (ev.views[0] if ev.views else None)
        return view.geometry.volume if view is not None else None

    def time_rank(self, volume_id: str) -> int | None:
        """Order of a volume in time: the loop numbers studies ``"0"``, ``"1"``... in input order
        (give the prior first); named volumes order as prior/baseline before current/follow-up."""
        if volume_id.isdigit():
            return int(volume_id)
        name = volume_id.lower()
        if name in _TIME_NAMES:
            return 0 if _TIME_NAMES.index(name) < 4 else 1
        return None

    # -- ground truth ----------------------------------------------------------------------------
    def image_index(self, volume_id: str | None) -> int | None:
        """The case image a volume id refers to (``"0"`` -> ``Case.images[0]``); a single-image
        case maps every volume to image 0."""
        if volume_id is not None and volume_id.isdigit():
            return int(volume_id)
        return 0 if self.case is not None and len(self.case.images) == 1 else None

    def gt_boxes(self, image: int | None) -> list[dict[str, Any]]:
        """Ground-truth boxes of the case on ``image`` (all boxes when the case has one image)."""
        if self.case is None or image is None:
            return []
        return [b for b in self.case.boxes if int(b.get("image", 0)) == image]

    def gt_masks(self) -> dict[str, np.ndarray]:
        """Ground-truth masks ``label -> bool (z, y, x)`` on image 0's canonical grid, loaded once.

        Raises:
            VerifierError: a mask file cannot be read.
        """
        if self._gt_masks is None:
            self._gt_masks = {}
            for label, path in (self.case.masks if self.case else {}).items():
                self._gt_masks[label] = load_mask(path)
        return self._gt_masks


def load_mask(path: str | Path) -> np.ndarray:
    """A NIfTI mask as bool (z, y, x) in the canonical LPS layout every `Volume` uses."""
    from imaging.io.build import LoadOptions
    from imaging.io.nifti import load_nifti

    path = Path(path)
    if not path.exists():
        raise VerifierError(f"ground-truth mask {path} does not exist; fix Case.masks or regenerate the case")
    return load_nifti(path, LoadOptions()).data > 0.5


# "left out", "left over", "right away": the verb and the adverb are not sides
_SIDE = re.compile(r"\b(left|right)\b(?!\s+(?:out|over|behind|alone|unchanged|undone|away|now)\b)", re.IGNORECASE)
#: words naming a finding (what ground-truth boxes mark), as opposed to an organ or a place
FINDING = re.compile(r"\b(nodul\w*|lesion\w*|mass(es)?\b|tumou?r\w*|candidate\w*|metasta\w*|cyst\w*|finding\w*|"
                     r"abnormalit\w*|opacit\w*)", re.IGNORECASE)


def evidence_laterality(ev: Evidence) -> str | None:
    """``left``/``right``/``midline`` of what an evidence item measured, when it says.

    Read from ``data["laterality"]`` (the measure tool) or from the result text ("on the patient's
    left", "at the midline"). Never guessed from image position.
    """
    side = ev.data.get("laterality")
    if isinstance(side, str) and side.lower() in ("left", "right", "midline"):
        return side.lower()
    if re.search(r"\bon both sides\b", ev.text, re.IGNORECASE):
        # several components on both sides: "27 at the midline" among them is not the finding's side
        return None
    m = re.search(r"patient's (left|right)\b|\b(at the midline)\b|laterality[:=]?\s*(left|right|midline)",
                  ev.text, re.IGNORECASE)
    if not m:
        return None
    return (m.group(1) or m.group(3) or "midline").lower()


def side_words(text: str) -> set[str]:
    return {m.lower() for m in _SIDE.findall(text)}
