"""The evidence check: a step is only as good as the evidence it rests on.

The other rule verifiers check a claim against the tool's output; this one checks the output
itself, through the quality assessment every piece of evidence carries (`grounding.quality`):

* a step that rests on ``implausible`` evidence (a 255 mL adult liver, a lung half lost, a spleen
  on the right) and states it as fact is ``incorrect`` (error type ``implausible_evidence``);
* a step that rests on evidence whose spacing, orientation or modality was assumed is at best
  ``unverifiable``: its millimetres or sides cannot be checked against anything real;
* a step that says so itself ("cannot answer reliably", "uncertain", "caveat") is not faulted.

A step rests on the evidence it cites; an answer also on what the trace's answer cites; a tool
call on the evidence it produced.
"""

from __future__ import annotations

import re

from mmreason.verifiers.context import VerifyContext
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import Check

_HEDGED = re.compile(r"\b(cannot|can ?not|unable to) (answer|determine|tell)|\buncertain\b|\bcaveat\b|"
                     r"\bnot (plausible|reliable|trusted)\b|\bimplausible\b|\bdoubtful\b", re.IGNORECASE)


def check_evidence_quality(ctx: VerifyContext, step: Step) -> list[Check]:
    ids = list(step.produced if step.kind == "tool_call" else step.cited)
    if step.kind == "answer":
        ids += ctx.trace.cited_evidence
    rests_on = [ctx.evidence[i] for i in dict.fromkeys(ids) if i in ctx.evidence and not ctx.evidence[i].error]
    flagged = [e for e in rests_on if not e.quality.trusted]
    if not flagged or (step.kind != "tool_call" and _HEDGED.search(step.text)):
        return []
    implausible = [e for e in flagged if e.quality.level == "implausible"]
    if implausible and step.kind != "tool_call":
        ev = implausible[0]
        return [Check("incorrect", f"rests on implausible evidence {ev.id}: {ev.quality.reasons[0]}",
                      "implausible_evidence", [e.id for e in implausible])]
    reasons = [(e.id, r) for e in flagged for r in e.quality.reasons
               if e.quality.level == "implausible" or "assumed" in r or "guessed" in r]
    if not reasons:
        return []
    eid, reason = reasons[0]
    return [Check("unverifiable", f"rests on {eid}, whose quality is not ok: {reason}", None,
                  list(dict.fromkeys(i for i, _ in reasons)), caps=True)]
