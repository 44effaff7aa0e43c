"""The evidence check: a step is only as good as the evidence it rests on.

The other rule verifiers check a claim against the tool's output; this one checks the output
itself, through the quality assessment every piece of evidence carries (`grounding.quality`):

* a step that rests on ``implausible`` evidence (a 255 mL adult liver, a lung half lost, a spleen
  on the right) and states it as fact is ``incorrect`` (error type ``implausible_evidence``);
* a step that rests on ``doubtful`` evidence (an assumed spacing, orientation or modality, a
  volume outside the adult range, a structure cut by the field of view ...) and states it as fact
  is at best ``unverifiable``: nothing shows its figures, sides or modality right;
* a step that says so itself ("cannot answer reliably", "uncertain", "caveat") is not faulted;
* an empty lesion search that a step rests on, where the (single-image) case's ground truth holds
  a lesion, is a missed finding (``incorrect``, error type ``missed_finding``).

The recorded level is checked again from the trace (`reassess`): the volumes against the same
normative ranges, and the study's recorded facts for an assumed spacing (and, for a view, a guessed
modality), so an edited or foreign
trace is held to the same standard.

A step rests on the evidence it cites; an answer also on what the trace's answer cites; a tool
call on the evidence it produced.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from grounding.evidence import Evidence
from grounding.plausibility import NORMAL_ML, FieldCut, structure_quality
from grounding.quality import Quality
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
    if step.kind != "tool_call" and _HEDGED.search(step.text):
        return []
    checks = _missed_findings(ctx, rests_on)
    flagged = [(e, q) for e in rests_on if not (q := reassess(ctx, e)).trusted]
    if checks or not flagged:
        return checks
    implausible = [(e, q) for e, q in flagged if q.level == "implausible"]
    if implausible and step.kind != "tool_call":
        ev, q = implausible[0]
        return [Check("incorrect", f"rests on implausible evidence {ev.id}: {q.reasons[0]}",
                      "implausible_evidence", [e.id for e, _ in implausible])]
    # doubtful evidence stated as fact is not wrong, but nothing shows it right either; a tool call
    # states nothing, so only what it was given (assumed facts) or what it made implausible counts
    reasons = [(e.id, r) for e, q in flagged for r in q.reasons if step.kind != "tool_call"
               or q.level == "implausible" or "assumed" in r or "guessed" in r]
    if not reasons:
        return []
    eid, reason = reasons[0]
    return [Check("unverifiable", f"rests on {eid}, whose quality is not ok: {reason}", None,
                  list(dict.fromkeys(i for i, _ in reasons)), caps=True)]


def reassess(ctx: VerifyContext, ev: Evidence) -> Quality:
    """The evidence's recorded quality, checked again from what the trace holds.

    A recorded level can be missing (traces of other tools) or stale (an edited trace); the
    numbers themselves are checked against the same ranges, and the study's facts as the trace
    recorded them say whether its spacing or orientation were assumed.
    """
    q = Quality(ev.quality.level, list(ev.quality.reasons), list(ev.quality.checks))
    study = _study(ctx, ev)
    facts = study.get("facts", {})
    if ev.measurements and facts.get("spacing", {}).get("assumed"):
        q.flag("doubtful", "pixel spacing assumed (not in the file): mm and mL figures are not calibrated")
    modality = facts.get("modality", {})
    if ev.tool == "view" and modality.get("assumed") and modality.get("value") != "CT":
        # a view is what a modality answer rests on; a CT is recognised by its HU signature
        q.flag("doubtful", f"modality {modality.get('value')} guessed from the voxel values (the file does not say)")
    target = ev.data.get("target") or _source_target(ctx, ev)
    volume = ev.measurements.get("volume_ml")
    whole = ev.tool in ("segment", "measure") and not (ev.data.get("prompt") or _source_prompt(ctx, ev))
    if target in NORMAL_ML and volume is not None and whole:
        cut = FieldCut.from_dict(ev.data.get("field_cut") or _source_field_cut(ctx, ev))
        # `structure_quality` reads only the modality and dimensionality of the volume
        recorded = SimpleNamespace(modality=study.get("modality", "CT"), is_2d=bool(study.get("is_2d")))
        q.merge(structure_quality(recorded, target, volume_ml=volume.value,  # type: ignore[arg-type]
                                  side=ev.data.get("laterality"), mean_hu=None, cut_at=cut, whole_target=True))
    return q


def _missed_findings(ctx: VerifyContext, rests_on: list[Evidence]) -> list[Check]:
    """An empty lesion search where the case's ground truth holds a lesion: a missed finding."""
    # only single-image cases: a follow-up's masks (prior, current) share one grid, so a mask
    # cannot say which study it belongs to
    single = ctx.case is not None and bool(ctx.case.masks) and len(ctx.case.images) == 1
    truth = [label for label, mask in ctx.gt_masks().items() if _FINDING_LABEL.search(label) and mask.any()] \
        if single else []
    missed = [e for e in rests_on if e.tool == "segment" and e.data.get("target") in ("nodule", "lesion")
              and e.data.get("voxels") == 0 and not e.data.get("prompt")]
    if not truth or not missed:
        return []
    return [Check("incorrect", f"{missed[0].id} found no {missed[0].data.get('target')}, but the case holds "
                               f"{truth[0]}", "missed_finding", [missed[0].id])]


_FINDING_LABEL = re.compile(r"nodule|lesion|mass|tumou?r", re.IGNORECASE)


def _study(ctx: VerifyContext, ev: Evidence) -> dict[str, Any]:
    """The trace's record of the volume an evidence item is about (`Volume.summary`, with facts)."""
    volume_id = ctx.volume_of(ev)
    index = int(volume_id) if volume_id is not None and volume_id.isdigit() else 0
    inputs = ctx.trace.inputs
    return inputs[index] if index < len(inputs) else {}


def _source(ctx: VerifyContext, ev: Evidence) -> Evidence | None:
    source = ev.data.get("source")
    return ctx.evidence.get(source) if ev.tool == "measure" and isinstance(source, str) else None


def _source_target(ctx: VerifyContext, ev: Evidence) -> str | None:
    source = _source(ctx, ev)
    return source.data.get("target") if source is not None else None


def _source_field_cut(ctx: VerifyContext, ev: Evidence) -> dict[str, bool] | None:
    """Where the field of view cuts the mask a measure evidence measured (its segment's record)."""
    source = _source(ctx, ev)
    return source.data.get("field_cut") if source is not None else None


def _source_prompt(ctx: VerifyContext, ev: Evidence) -> Any:
    source = _source(ctx, ev)
    return source.data.get("prompt") if source is not None else ev.tool == "measure"
