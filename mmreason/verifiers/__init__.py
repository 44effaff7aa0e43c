"""Step-level verifiers: split a trace into steps and judge each one, as JSON-ready verdicts.

``verify(case, trace)`` runs the rule verifiers (format, grounding, measurement, answer-evidence
consistency) and, when asked, a process reward model (`PRMScorer`); ``step_metrics`` turns the
verdicts of a run into benchmark metrics.
"""

from mmreason.verifiers.context import Tolerance, VerifierConfig
from mmreason.verifiers.metrics import first_error_index, first_error_scores, reasoning_impact, step_metrics
from mmreason.verifiers.pipeline import KINDS, verify
from mmreason.verifiers.prm import PRMConfig, PRMError, PRMScorer
from mmreason.verifiers.steps import Step, render_step, split_steps
from mmreason.verifiers.verdicts import StepVerdict, VerifierError

__all__ = [
    "KINDS", "PRMConfig", "PRMError", "PRMScorer", "Step", "StepVerdict", "Tolerance", "VerifierConfig",
    "VerifierError", "first_error_index", "first_error_scores", "reasoning_impact", "render_step", "split_steps",
    "step_metrics", "verify",
]
