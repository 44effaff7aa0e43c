"""`verify`: every configured verifier family over every step of a trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmreason.case import Case
from mmreason.trace import Trace
from mmreason.verifiers.consistency import check_consistency
from mmreason.verifiers.evidence_quality import check_evidence_quality
from mmreason.verifiers.context import VerifierConfig, VerifyContext
from mmreason.verifiers.format import check_format
from mmreason.verifiers.grounding import check_grounding
from mmreason.verifiers.measurement import check_measurements
from mmreason.verifiers.steps import split_steps
from mmreason.verifiers.verdicts import StepVerdict, VerifierError, combine

if TYPE_CHECKING:
    from mmreason.verifiers.prm import PRMScorer

#: the verifier families `verify` can run
KINDS = ("rule", "prm")
RULE_CHECKS = (check_format, check_grounding, check_measurements, check_consistency, check_evidence_quality)


def verify(case: Case | None, trace: Trace, *, kinds: tuple[str, ...] | list[str] = ("rule",),
           prm: "PRMScorer | None" = None, config: VerifierConfig | None = None) -> list[StepVerdict]:
    """Verdicts on every step of ``trace`` (steps as `split_steps` returns them).

    Args:
        case: the case the trace answers; its ground-truth boxes/masks add grounding checks
            (None: check against the evidence only).
        trace: the episode to check.
        kinds: verifier families: ``rule`` (format, grounding, measurement, answer-evidence
            consistency and the evidence's own quality; tool-call steps judged by their execution carry ``verifier="tool"``)
            and ``prm`` (a process reward model, needs ``prm``).
        prm: the scorer used for ``prm``.
        config: thresholds of the rule verifiers (`VerifierConfig` defaults).

    Returns:
        One verdict per step and family, ordered by step, then by the order of ``kinds``.

    Raises:
        VerifierError: an unknown kind, or ``prm`` requested without a scorer.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise VerifierError(f"unknown verifier kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if "prm" in kinds and prm is None:
        raise VerifierError("verifier kind 'prm' needs a process reward model: pass "
                            "prm=PRMScorer.from_pretrained(PATH) (or drop 'prm' from the kinds)")
    steps = split_steps(trace)
    by_kind: dict[str, list[StepVerdict]] = {}
    if "rule" in kinds:
        ctx = VerifyContext(trace, case, steps, config or VerifierConfig())
        by_kind["rule"] = [combine(s.index, [c for check in RULE_CHECKS for c in check(ctx, s)]) for s in steps]
    if "prm" in kinds:
        by_kind["prm"] = prm.verify_steps(trace, steps)  # type: ignore[union-attr]
    return [by_kind[k][i] for i in range(len(steps)) for k in kinds]


def attach_verdicts(trace: Trace, kinds: tuple[str, ...] | list[str] = ("rule",)) -> list[StepVerdict]:
    """`verify` a trace without a case and keep the verdicts in ``trace.meta["verdicts"]`` (dicts),
    where the report and the web app show each one next to its step. Returns the verdicts."""
    verdicts = verify(None, trace, kinds=kinds)
    trace.meta["verdicts"] = [v.to_dict() for v in verdicts]
    return verdicts
