"""Process reward model (PRM) adapter: a transformers checkpoint that scores every step.

The Qwen PRM convention (Qwen2.5-Math-PRM-7B/72B, and PRMs trained the same way):

1. the steps are joined, each followed by the step separator token (``<extra_0>``), as the
   assistant turn of a chat whose user turn is the question (the tokenizer's chat template; a
   tokenizer without one gets ``question + "\\n\\n" + steps``);
2. the model runs once and returns two logits per token;
3. the softmax probability of the positive class (index 1) at each separator is that step's score.

One loading path: checkpoints whose config lists a ``*ForTokenClassification`` architecture
(e.g. ``Qwen2ForTokenClassification`` with ``num_labels=2``) load through
``AutoModelForTokenClassification``; any other checkpoint loads through ``AutoModel``, which is
how Qwen2.5-Math-PRM ships (remote code with a two-logit token head, so it needs
``PRMConfig(trust_remote_code=True)``; enable that only for checkpoints you trust). Either way
the first output must be ``(batch, tokens, >=2)`` logits. Sequence-classification reward models
(one score per sequence) are outcome, not process, models and are not supported.

Usage::

    prm = PRMScorer.from_pretrained("Qwen/Qwen2.5-Math-PRM-7B", PRMConfig(trust_remote_code=True))
    verdicts = verify(case, trace, kinds=("rule", "prm"), prm=prm)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmreason.trace import Trace
from mmreason.verifiers.steps import Step, render_step
from mmreason.verifiers.verdicts import StepVerdict, VerifierError


class PRMError(VerifierError):
    """The process reward model cannot be loaded or cannot score these steps."""


@dataclass
class PRMConfig:
    """Options of `PRMScorer`.

    Attributes:
        step_separator: the token placed after every step; must be one token of the tokenizer.
        threshold: a step is ``correct`` when its score is >= this (default 0.5).
        positive_index: index of the positive class in the two logits (Qwen PRMs: 1).
        system_prompt: system turn of the chat (Qwen2.5-Math-PRM's own by default); ignored when
            the tokenizer has no chat template.
        max_length: longest input in tokens; longer inputs raise `PRMError` rather than silently
            dropping steps.
        trust_remote_code: allow the checkpoint's own modelling code (Qwen2.5-Math-PRM needs it).
        device: ``cuda``/``cpu``/...; default: CUDA when available.
        dtype: torch dtype name; default bfloat16 on CUDA, float32 on CPU.
    """

    step_separator: str = "<extra_0>"
    threshold: float = 0.5
    positive_index: int = 1
    system_prompt: str = "Please reason step by step, and put your final answer within \\boxed{}."
    max_length: int = 8192
    trust_remote_code: bool = False
    device: str | None = None
    dtype: str | None = None


class PRMScorer:
    """Scores the steps of a reasoning trace with a process reward model."""

    def __init__(self, model: Any, tokenizer: Any, config: PRMConfig | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or PRMConfig()
        sep = self.config.step_separator
        ids = tokenizer.encode(sep, add_special_tokens=False)
        if len(ids) != 1:
            raise PRMError(f"the tokenizer splits the step separator {sep!r} into {len(ids)} tokens; use a PRM "
                           "whose tokenizer has it as one token, or set PRMConfig(step_separator=...)")
        self.separator_id = ids[0]

    @classmethod
    def from_pretrained(cls, path: str | Path, config: PRMConfig | None = None) -> "PRMScorer":
        """Load a PRM from a hub id or a local directory (see the module docstring for the path)."""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

        config = config or PRMConfig()
        remote = config.trust_remote_code
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, config.dtype) if config.dtype else (torch.bfloat16 if device.startswith("cuda")
                                                                   else torch.float32)
        try:
            model_config = AutoConfig.from_pretrained(str(path), trust_remote_code=remote)
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=remote)
            archs = model_config.architectures or []
            auto = (AutoModelForTokenClassification if any(a.endswith("ForTokenClassification") for a in archs)
                    else AutoModel)
            model = auto.from_pretrained(str(path), config=model_config, dtype=dtype, trust_remote_code=remote)
        except (OSError, ValueError) as exc:
            hint = "" if remote else " If the checkpoint ships its own code (Qwen2.5-Math-PRM does), pass " \
                                     "PRMConfig(trust_remote_code=True) for a checkpoint you trust."
            raise PRMError(f"cannot load a process reward model from {path}: {exc}.{hint}") from exc
        return cls(model.to(device), tokenizer, config)

    def build_text(self, question: str, steps: list[str]) -> str:
        """The model input: question and steps, each step followed by the separator."""
        sep = self.config.step_separator
        body = "".join(s.replace(sep, " ").strip() + sep for s in steps)
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": self.config.system_prompt},
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": body}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return f"{question}\n\n{body}"

    def score(self, question: str, steps: list[str]) -> list[float]:
        """Positive-class probability after each step, in [0, 1], one per step.

        Raises:
            PRMError: the input is longer than ``max_length`` or the model does not return
                per-token logits with at least two classes.
        """
        import torch

        if not steps:
            return []
        enc = self.tokenizer(self.build_text(question, steps), return_tensors="pt", add_special_tokens=False)
        input_ids = enc["input_ids"]
        if input_ids.shape[1] > self.config.max_length:
            raise PRMError(f"the trace is {input_ids.shape[1]} tokens, more than PRMConfig.max_length="
                           f"{self.config.max_length}; raise max_length (the model's limit permitting)")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(input_ids=input_ids.to(device), attention_mask=enc["attention_mask"].to(device))
        logits = out.logits if hasattr(out, "logits") else out[0]
        if logits.ndim != 3 or logits.shape[-1] <= self.config.positive_index:
            raise PRMError(f"the model returned logits of shape {tuple(logits.shape)}; a PRM must return "
                           "(batch, tokens, 2) per-token logits (a token-classification head with 2 labels)")
        probs = torch.softmax(logits[0].float(), dim=-1)[:, self.config.positive_index]
        at_sep = probs[input_ids[0].to(device) == self.separator_id]
        if at_sep.numel() != len(steps):
            raise PRMError(f"found {at_sep.numel()} step separators for {len(steps)} steps; the chat template "
                           f"or a step's text produced extra {self.config.step_separator!r} tokens")
        return [float(p) for p in at_sep.cpu()]

    def verify_steps(self, trace: Trace, steps: list[Step]) -> list[StepVerdict]:
        """PRM verdicts for ``steps`` of ``trace``: ``correct`` when the score reaches the threshold."""
        evidence = trace.evidence_by_id()
        scores = self.score(trace.question, [render_step(s, evidence) for s in steps])
        thr = self.config.threshold
        return [StepVerdict(s.index, "correct" if p >= thr else "incorrect", p,
                            None if p >= thr else "prm_low_score", "prm", list(s.cited + s.produced),
                            f"PRM positive-class probability {p:.3f} ({'>=' if p >= thr else '<'} {thr})")
                for s, p in zip(steps, scores)]
