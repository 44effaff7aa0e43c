"""GRPO rewards: accuracy, format, grounding, evidence and tool economy, each a named function.

Every reward function has TRL's signature ``f(completions, environments=None, **kwargs) ->
list[float | None]``: ``completions`` are the rollouts' messages (assistant turns, tool results),
``environments`` the `train.env.GroundingEnv` of each rollout, whose episode trace holds the tool
calls and the evidence board. Each rollout is assessed once (`assess`, cached on its environment)
and every function reads one component:

===============  =========  ==================================================================
reward           range      value
===============  =========  ==================================================================
accuracy         0 / 1      the final answer scored by `benchmarks.core.scoring.score_response`
                            (the benchmark's rule for the case's answer type)
format           0 .. 1     half for one closed ``<answer>`` block in the final turn, half
                            times the share of well-formed tool calls (known tool, arguments
                            valid against its schema; 1 when no call was attempted)
grounding        0 .. 1     best IoU with the ground truth of a region a tool call produced
                            (the grounding verifier's ``iou``; 0 when none was localised),
                            only when the answer is correct and cites evidence the rule
                            verifiers do not contradict; None (not counted) when the case has
                            no ground-truth region
evidence         0 .. 1     share of the steps the answer rests on (the answer and the calls
                            that produced the evidence it cites) that the rule verifiers mark
                            ``correct`` and none marks ``incorrect``; only when the answer is
                            correct and cites evidence (uncited calls neither add nor dilute)
tool_economy     -1 .. 0    minus the share of tool calls that failed or repeated an earlier
                            call (a penalty: it applies whether or not the answer is correct)
===============  =========  ==================================================================

Grounding and evidence are bonuses paid only for a correct answer, so calling tools cannot pay for
a wrong one. TRL sums the rewards with ``GRPOConfig.reward_weights`` (the config's ``rewards``
section) and logs each as ``rewards/<name>/mean``. `assess` also serves evaluation, so held-out
figures are computed by the same code as the training signal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from benchmarks.core.scoring import score_response
from grounding.tool import ToolError, ToolRegistry
from mmreason.case import Case
from mmreason.parsing import parse_answer, parse_tool_calls, strip_think
from mmreason.trace import Trace
from mmreason.verifiers import StepVerdict, split_steps, verify

REWARD_NAMES = ("accuracy", "format", "grounding", "evidence", "tool_economy")


@dataclass
class Outcome:
    """How one rollout did (all that the rewards and the evaluation read).

    Attributes:
        correct: the answer scores correct.
        answered: the trace ends with a closed ``<answer>`` block.
        calls / valid_calls / failed_calls / repeated_calls: tool calls attempted, well formed,
            failed (an ``Error:`` result) and answered from the board as repeats.
        iou: best ground-truth IoU of a region a tool call produced (0 when none was, None
            when the case has no ground-truth region).
        supported: the answer cites evidence and no rule verifier marks the answer step incorrect.
        steps / correct_steps: the steps the answer rests on (its own and those that produced
            the evidence it cites; none when it cites nothing) and those verified correct.
    """

    correct: bool
    answered: bool
    calls: int
    valid_calls: int
    failed_calls: int
    repeated_calls: int
    iou: float | None
    supported: bool
    steps: int
    correct_steps: int

    @property
    def format(self) -> float:
        share = self.valid_calls / self.calls if self.calls else 1.0
        return 0.5 * float(self.answered) + 0.5 * share

    @property
    def grounding(self) -> float | None:
        if self.iou is None:
            return None
        return self.iou if self.correct and self.supported else 0.0

    @property
    def evidence(self) -> float:
        return self.correct_steps / self.steps if self.correct and self.steps else 0.0

    @property
    def tool_economy(self) -> float:
        return -(self.failed_calls + self.repeated_calls) / self.calls if self.calls else 0.0

    def components(self) -> dict[str, float | None]:
        return {"accuracy": float(self.correct), "format": self.format, "grounding": self.grounding,
                "evidence": self.evidence, "tool_economy": self.tool_economy}

    def total(self, weights: Sequence[float]) -> float:
        """Weighted sum of the components in `REWARD_NAMES` order (None counts 0, as in TRL)."""
        return sum(w * (v or 0.0) for w, v in zip(weights, self.components().values(), strict=True))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | self.components()


def final_answer_text(trace: Trace) -> str:
    """The last assistant turn's text (what the benchmark scorer parses)."""
    return next((t.text for t in reversed(trace.turns) if t.role == "assistant"), "")


def assess(case: Case, trace: Trace, registry: ToolRegistry,
           verdicts: list[StepVerdict] | None = None) -> Outcome:
    """Score one finished trace of ``case`` (see the module docstring for each component).

    Args:
        case: the case with its reference answer and ground truth.
        trace: a finished episode (from `train.env.GroundingEnv` or `mmreason.loop`).
        registry: the tools, to check each call's name and arguments against its schema.
        verdicts: rule verdicts of the trace (computed with `mmreason.verifiers.verify` when None).
    """
    final = final_answer_text(trace)
    parsed = parse_answer(final, case.options)
    answered = parsed is not None and parsed.closed and strip_think(final).count("<answer>") == 1
    correct = bool(parsed is not None and score_response(final, case).correct)
    calls = trace.tool_calls()
    valid = sum(_well_formed(c.name, c.arguments, c.raw, registry) for c in calls)
    failed = sum(1 for c in calls if c.error)
    repeated = sum(1 for c in calls if c.cached)
    verdicts = verify(case, trace) if verdicts is None else verdicts
    steps = split_steps(trace)
    kinds = {s.index: s.kind for s in steps}
    ious = [v.iou for v in verdicts if v.iou is not None and kinds.get(v.step) == "tool_call"]
    has_truth = bool(case.boxes or case.masks)
    answer_bad = any(v.label == "incorrect" for v in verdicts if kinds.get(v.step) == "answer")
    evidence = trace.evidence_by_id()
    cited = [e for e in (parsed.cited if parsed else []) if e in evidence and not evidence[e].error]
    resting = [s.index for s in steps if s.kind == "answer" or set(s.produced) & set(cited)] if cited else []
    labels: dict[int, set[str]] = {}
    for v in verdicts:
        labels.setdefault(v.step, set()).add(v.label)
    verified = sum("correct" in labels.get(i, ()) and "incorrect" not in labels.get(i, ()) for i in resting)
    return Outcome(correct=correct, answered=answered, calls=len(calls), valid_calls=valid, failed_calls=failed,
                   repeated_calls=repeated, iou=max(ious) if ious else (0.0 if has_truth else None),
                   supported=bool(cited) and not answer_bad, steps=len(resting), correct_steps=verified)


def _well_formed(name: str, arguments: dict[str, Any], raw: str, registry: ToolRegistry) -> bool:
    if raw and any(p.error for p in parse_tool_calls(raw)):
        return False
    if not name or name not in registry:
        return False
    try:
        registry.get(name).validate(arguments)
    except ToolError:
        return False
    return True


def outcome_of(environment: Any, completion: list[dict[str, Any]]) -> Outcome:
    """The `Outcome` of one rollout, computed once and cached on its environment."""
    if environment._outcome is None:
        trace = environment._trace(completion)
        environment._outcome = assess(environment.case, trace, environment.registry)
    return environment._outcome


def _component(name: str) -> Callable[..., list[float | None]]:
    def reward(completions: list[Any], environments: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        if environments is None:
            raise ValueError(f"the {name} reward needs the rollouts' environments: train with "
                             f"environment_factory=train.env.environment_factory(...)")
        outcomes = [outcome_of(env, c) for env, c in zip(environments, completions, strict=True)]
        log = kwargs.get("log_metric")
        if log is not None and name == REWARD_NAMES[0]:
            _log_batch(outcomes, log)
        return [o.components()[name] for o in outcomes]

    reward.__name__ = reward.__qualname__ = f"{name}_reward"
    reward.__doc__ = f"The '{name}' component of each rollout's `Outcome` (see `train.rewards`)."
    return reward


def _log_batch(outcomes: list[Outcome], log: Callable[[str, float], None]) -> None:
    """Batch rates that make a collapse of tool use visible in the training logs."""
    n = len(outcomes)
    log("rollouts/tool_call_rate", sum(o.calls > 0 for o in outcomes) / n)
    log("rollouts/valid_tool_call_rate", sum(o.valid_calls > 0 for o in outcomes) / n)
    log("rollouts/calls_per_rollout", sum(o.calls for o in outcomes) / n)
    log("rollouts/answered_rate", sum(o.answered for o in outcomes) / n)
    ious = [o.iou for o in outcomes if o.iou is not None]
    if ious:
        log("rollouts/mean_iou", sum(ious) / len(ious))


accuracy_reward = _component("accuracy")
format_reward = _component("format")
grounding_reward = _component("grounding")
evidence_reward = _component("evidence")
tool_economy_reward = _component("tool_economy")

#: the reward functions in `REWARD_NAMES` order (matching `RewardWeights.as_list`)
REWARD_FUNCS = [accuracy_reward, format_reward, grounding_reward, evidence_reward, tool_economy_reward]
