"""`StepVerdict`: what a verifier says about one step, as data (JSON) for benchmarks and training.

A verifier family looks at a step through several small checks (`Check`); `combine` folds the
checks of one family into the step's single verdict:

* ``incorrect`` when any check failed (the first failing check names the ``error_type``);
* ``unverifiable`` when a check caps the step (it rests on evidence with assumed facts);
* ``correct`` when at least one check passed and none failed;
* ``unverifiable`` when nothing in the step could be checked.

Scores: rule verdicts score 1.0 (correct), 0.0 (incorrect) or 0.5 (unverifiable: no
information, neutral as a process reward); PRM verdicts carry the model's probability.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from imaging.errors import MMReasonError

LABELS = ("correct", "incorrect", "unverifiable")
#: ``rule``: format/grounding/measurement/consistency checks; ``tool``: a tool call judged by its
#: recorded execution; ``prm``: a process reward model; ``judge``: an LLM judge (reserved for
#: verdicts produced outside this package and merged into the same files).
VERIFIER_KINDS = ("rule", "tool", "prm", "judge")
#: error types the rule verifiers emit
ERROR_TYPES = ("format", "unknown_evidence", "tool_error", "box_mismatch", "point_outside", "laterality",
               "measurement_mismatch", "inconsistent_answer", "prm_low_score", "implausible_evidence", "missed_finding")
LABEL_SCORES = {"correct": 1.0, "incorrect": 0.0, "unverifiable": 0.5}


class VerifierError(MMReasonError):
    """A verifier cannot run as configured (missing PRM, unknown kind, unreadable mask...)."""


@dataclass
class StepVerdict:
    """The verdict on one step of a trace.

    Attributes:
        step: index of the step in `split_steps(trace)`.
        label: ``correct``, ``incorrect`` or ``unverifiable``.
        score: in [0, 1]; 1 is certainly correct.
        error_type: None, or one of `ERROR_TYPES` when ``label`` is ``incorrect``.
        verifier: one of `VERIFIER_KINDS`.
        evidence_ids: the evidence the verdict was checked against.
        reason: a short human-readable explanation.
        iou: for box claims checked against ground truth, the best IoU (None otherwise).
    """

    step: int
    label: str
    score: float
    error_type: str | None = None
    verifier: str = "rule"
    evidence_ids: list[str] = field(default_factory=list)
    reason: str = ""
    iou: float | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise VerifierError(f"verdict label must be one of {', '.join(LABELS)}, got {self.label!r}")
        if self.verifier not in VERIFIER_KINDS:
            raise VerifierError(f"verifier must be one of {', '.join(VERIFIER_KINDS)}, got {self.verifier!r}")
        if not 0.0 <= float(self.score) <= 1.0:
            raise VerifierError(f"verdict score must lie in [0, 1], got {self.score}")
        self.score = float(self.score)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepVerdict":
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "StepVerdict":
        return cls.from_dict(json.loads(text))


@dataclass
class Check:
    """One elementary check on a step (a claim against one reference)."""

    label: str
    reason: str
    error_type: str | None = None
    evidence_ids: list[str] = field(default_factory=list)
    verifier: str = "rule"
    iou: float | None = None
    #: an ``unverifiable`` check that caps the verdict: the step cannot be ``correct``
    caps: bool = False


def combine(step: int, checks: list[Check]) -> StepVerdict:
    """Fold the checks of one verifier family on one step into its verdict (rules above)."""
    failed = [c for c in checks if c.label == "incorrect"]
    passed = [c for c in checks if c.label == "correct"]
    ids = list(dict.fromkeys(i for c in checks for i in c.evidence_ids))
    ious = [c.iou for c in checks if c.iou is not None]
    iou = max(ious) if ious else None
    if failed:
        return StepVerdict(step, "incorrect", LABEL_SCORES["incorrect"], failed[0].error_type, failed[0].verifier,
                           ids, "; ".join(c.reason for c in failed), iou)
    capped = [c for c in checks if c.caps]
    if capped:
        return StepVerdict(step, "unverifiable", LABEL_SCORES["unverifiable"], None, "rule", ids,
                           "; ".join(c.reason for c in capped), iou)
    if passed:
        return StepVerdict(step, "correct", LABEL_SCORES["correct"], None, passed[0].verifier, ids,
                           "; ".join(c.reason for c in passed), iou)
    notes = "; ".join(c.reason for c in checks if c.reason) or "nothing checkable in this step"
    return StepVerdict(step, "unverifiable", LABEL_SCORES["unverifiable"], None, "rule", ids, notes, iou)
