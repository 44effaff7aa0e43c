"""Format checks: the answer block, tool-call syntax and execution, cited evidence ids.

* Tool-call steps: a call the loop could not read (no name, or its raw text does not parse) is a
  ``format`` error; a call that was read but failed when run (bad box, unknown view, unknown tool)
  is a ``tool_error``; a call that produced evidence is ``correct`` (verifier ``tool``).
* Any step citing an id that no evidence has, or evidence produced only by a later step, is an
  ``unknown_evidence`` error; citing failed evidence is a ``tool_error``.
* The trace must have exactly one closed ``<answer>`` block (outside ``<think>``); for multiple
  choice the answer must name an option (unless the model abstained). Violations are ``format``
  errors on the answer step, or on the last step when there is no answer at all.
"""

from __future__ import annotations

from mmreason.parsing import parse_tool_calls, read_option, strip_think
from mmreason.verifiers.context import VerifyContext
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import Check


def check_format(ctx: VerifyContext, step: Step) -> list[Check]:
    checks = _tool_call(ctx, step) if step.kind == "tool_call" else []
    checks += _citations(ctx, step)
    checks += _answer_block(ctx, step)
    return checks


def _tool_call(ctx: VerifyContext, step: Step) -> list[Check]:
    call = step.tool_call
    if call is None:
        return []
    if call.error:
        reparsed = parse_tool_calls(call.raw) if call.raw else []
        unreadable = not call.name or any(p.error for p in reparsed)
        kind = "format" if unreadable else "tool_error"
        return [Check("incorrect", f"tool call {call.name or '?'} failed: {call.error}", kind, verifier="tool")]
    ev = ctx.evidence.get(call.evidence_id or "")
    if ev is None:
        return [Check("incorrect", f"tool call {call.name} recorded evidence {call.evidence_id!r}, which the "
                      "trace does not contain", "unknown_evidence", verifier="tool")]
    if ev.error:
        return [Check("incorrect", f"tool {call.name} failed: {ev.error}", "tool_error", [ev.id], verifier="tool")]
    return [Check("correct", f"{call.name} ran and produced {ev.id}", None, [ev.id], verifier="tool")]


def _citations(ctx: VerifyContext, step: Step) -> list[Check]:
    checks = []
    for eid in step.cited:
        ev = ctx.evidence.get(eid)
        if ev is None:
            known = ", ".join(ctx.evidence) or "none"
            checks.append(Check("incorrect", f"cites {eid}, which does not exist (evidence: {known})",
                                "unknown_evidence", [eid]))
        elif ctx.producer.get(eid, -1) >= step.index:
            checks.append(Check("incorrect", f"cites {eid} before the call that produced it",
                                "unknown_evidence", [eid]))
        elif ev.error:
            checks.append(Check("incorrect", f"cites {eid}, a failed tool result", "tool_error", [eid]))
    return checks


def _answer_block(ctx: VerifyContext, step: Step) -> list[Check]:
    answer_steps = [s for s in ctx.steps if s.kind == "answer"]
    if not answer_steps:
        if ctx.steps and step is ctx.steps[-1]:
            return [Check("incorrect", "the trace ends without an <answer>...</answer> block", "format")]
        return []
    if step is not answer_steps[-1]:
        return []
    texts = [strip_think(ctx.trace.turns[s.turn].text) for s in {s.turn: s for s in answer_steps}.values()]
    opened = sum(t.count("<answer>") for t in texts)
    closed = sum(t.count("</answer>") for t in texts)
    if opened > 1:
        return [Check("incorrect", f"{opened} <answer> blocks; give exactly one", "format")]
    if closed < opened:
        return [Check("incorrect", "the <answer> block is not closed", "format")]
    if ctx.trace.options and ctx.trace.status != "abstained" and read_option(step.text, ctx.trace.options) is None:
        return [Check("incorrect", "the answer names none of the options", "format")]
    return []
