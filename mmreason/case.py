"""`Case`: one benchmark or training question, whatever dataset it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ANSWER_TYPES = ("closed", "open", "choice", "numeric")


@dataclass
class Case:
    """A question about one or more images, with its reference answer and what can check it.

    Attributes:
        id: unique within its task; task: the registered task name.
        images: paths of the images/studies (NIfTI, NRRD, MetaImage, MGZ, DICOM file or folder, PNG/JPEG ...).
        question: the question text as the dataset gives it.
        options: option texts for multiple choice (letters A, B, ... follow this order).
        answer: the reference answer (for ``choice`` the option letter).
        answer_type: ``closed`` (yes/no), ``open``, ``choice`` or ``numeric``.
        unit / tolerance: for numeric answers, the unit and the relative tolerance.
        subgroups: keys to report accuracy by (modality, organ, question type ...).
        boxes: ground-truth boxes ``{"label", "image": i, "zyx_min": [..], "zyx_max": [..]}``
            (voxel index bounds, half-open) where known.
        masks: ground-truth masks ``label -> path`` (NIfTI on image 0's grid) where known.
        reference_steps: expected steps ``{"tool": ..., "arguments": {...}, "expect": {...}}``.
        native: the dataset's own row, kept as published.
    """

    id: str
    task: str
    images: list[str]
    question: str
    answer: str
    answer_type: str = "open"
    options: list[str] | None = None
    unit: str | None = None
    tolerance: float | None = None
    subgroups: dict[str, str] = field(default_factory=dict)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    masks: dict[str, str] = field(default_factory=dict)
    reference_steps: list[dict[str, Any]] = field(default_factory=list)
    native: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Case":
        return cls(**d)
