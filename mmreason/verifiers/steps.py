"""Splitting a `Trace` into the steps that verifiers judge.

The loop's own structure comes first: every assistant turn is cut at its tool calls and its
``<answer>`` block, so each tool call (with the evidence it produced) and the answer are steps
of their own. The remaining prose of a turn is split into paragraphs (blank-line separated);
the content of ``<think>`` blocks is kept as prose, the tags themselves are dropped. System,
user and tool turns are not steps: tool results belong to the tool-call step that asked for them.

Step indices run over the whole trace in reading order, so ``verdict.step`` points back here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from grounding.evidence import Evidence
from mmreason.parsing import ANSWER_BLOCK, THINK_BLOCK
from mmreason.quantities import cited_evidence
from mmreason.trace import ToolCall, Trace

STEP_KINDS = ("text", "tool_call", "answer")

_CALL_BLOCK = re.compile(r"<tool_call>.*?(?:</tool_call>|$)", re.DOTALL)
_THINK_TAG = re.compile(r"</?think>")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass
class Step:
    """One step of a trace.

    Attributes:
        index: position in the trace's step list.
        kind: ``text`` (a paragraph of prose), ``tool_call`` or ``answer``.
        text: the paragraph, the call as the model wrote it, or the answer's inner text.
        turn: index of the turn in ``trace.turns``.
        tool_call: the recorded call (``tool_call`` steps only).
        cited: evidence ids the step mentions (for calls: ids inside the arguments).
        produced: evidence ids the step created (the call's evidence).
    """

    index: int
    kind: str
    text: str
    turn: int
    tool_call: ToolCall | None = None
    cited: list[str] = field(default_factory=list)
    produced: list[str] = field(default_factory=list)


def split_steps(trace: Trace) -> list[Step]:
    """The steps of ``trace`` in reading order (see the module docstring)."""
    steps: list[Step] = []

    def add(kind: str, text: str, turn: int, call: ToolCall | None = None) -> None:
        if call is not None:
            cited = cited_evidence(json.dumps(call.arguments))
            produced = [call.evidence_id] if call.evidence_id else []
        else:
            cited, produced = cited_evidence(text), []
        steps.append(Step(len(steps), kind, text, turn, call, cited, produced))

    for t, turn in enumerate(trace.turns):
        if turn.role != "assistant":
            continue
        text = turn.text or ""
        # (start, end, kind, payload): the structured pieces of the turn, in order
        pieces: list[tuple[int, int, str, object]] = []
        unplaced: list[ToolCall] = []
        cursor = 0
        for call in turn.tool_calls:
            pos = text.find(call.raw, cursor) if call.raw else -1
            if pos < 0:
                unplaced.append(call)
                continue
            pieces.append((pos, pos + len(call.raw), "tool_call", call))
            cursor = pos + len(call.raw)
        # an <answer> drafted inside <think> is prose, as for the loop's parser
        think = [m.span() for m in THINK_BLOCK.finditer(text)]
        for m in ANSWER_BLOCK.finditer(text):
            if not any(a <= m.start() < b for a, b, _, _ in pieces) and not any(a <= m.start() < b for a, b in think):
                pieces.append((m.start(), m.end(), "answer", m.group(1).strip()))
        pieces.sort(key=lambda p: p[0])
        start = 0
        for a, b, kind, payload in pieces:
            _add_prose(text[start:a], t, add)
            if kind == "tool_call":
                add("tool_call", payload.raw, t, payload)  # type: ignore[union-attr]
            else:
                add("answer", str(payload), t)
            start = b
        _add_prose(text[start:], t, add)
        for call in unplaced:  # recorded without raw text (e.g. native tool_calls from an API)
            add("tool_call", call.raw or _render_call(call), t, call)
    return steps


def _add_prose(text: str, turn: int, add: Callable[[str, str, int], None]) -> None:
    # calls the loop did not record (drafts it ignored) are not prose claims
    text = _THINK_TAG.sub("\n\n", _CALL_BLOCK.sub("\n\n", text))
    for para in _PARAGRAPH_BREAK.split(text):
        if para.strip():
            add("text", para.strip(), turn)


def _render_call(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "arguments": call.arguments})


def render_step(step: Step, evidence: dict[str, Evidence]) -> str:
    """A step as plain text for a reward model: prose as is, calls with their result."""
    if step.kind == "answer":
        return f"Answer: {step.text}"
    if step.kind == "text" or step.tool_call is None:
        return step.text
    call = step.tool_call
    head = f"Tool call {_render_call(call)}"
    if call.error:
        return f"{head} -> error: {call.error}"
    ev = evidence.get(call.evidence_id or "")
    if ev is None:
        return head
    return f"{head} -> [{ev.id}] {ev.error or ev.text}"
