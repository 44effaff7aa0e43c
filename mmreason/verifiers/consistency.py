"""Answer-evidence consistency: the final answer against what the tools measured.

Four checks on the answer step, each applied only when the answer makes that kind of claim and
the evidence can decide it (the change check also on prose steps that cite their measurements):

* change over time: "grew"/"increased"/"larger" vs "shrank"/"decreased"/"smaller" vs
  "stable"/"unchanged"/"did not grow", against the relative change of the same measurement
  (volume, else longest diameter, else area) of the same subject on the earlier and the later
  study (`VerifyContext.time_rank`), or a measured ``%`` change. Within ``change_tolerance`` the
  lesion is stable; "grew" within it is unverifiable rather than wrong.
* side: the answer's left/right (or "yes"/"no" to a question naming one side) against the
  laterality of the cited evidence or, when it cites none, of the evidence about a finding.
* presence: "yes"/"present" vs "no"/"absent" to a presence question, against whether the
  segmentations of a finding (nodule, lesion, mass, candidate, box/point prompt) are empty.
* cardiomegaly: "cardiomegaly"/"enlarged" vs "no"/"normal" against a measured cardiothoracic
  ratio (enlarged when CTR > ``ctr_threshold``).
"""

from __future__ import annotations

import re

from grounding.evidence import Evidence
from mmreason.parsing import read_option
from mmreason.quantities import cited_evidence, dimension_of, strip_citations
from mmreason.verifiers.context import FINDING, VerifyContext, evidence_laterality, side_words
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import Check

_GROW = re.compile(r"\b(gr[eo]w\w*|increas\w*|enlarg\w*|larger|bigger|progress\w*|expand\w*)\b", re.IGNORECASE)
_SHRINK = re.compile(r"\b(shr[ui]nk\w*|shrank|decreas\w*|smaller|reduc\w*|regress\w*|resolv\w*)\b", re.IGNORECASE)
_STABLE = re.compile(r"\b(stable|unchanged|no (significant |interval )?change|not (significantly )?changed)\b",
                     re.IGNORECASE)
_NEGATED_CHANGE = re.compile(r"\b(no|not|n't|without)\b\W+(?:\w+\W+){0,2}?(gr[eo]w\w*|increas\w*|enlarg\w*|"
                             r"shr[ui]nk\w*|decreas\w*|chang\w*)", re.IGNORECASE)
_PRESENCE_Q = re.compile(r"\b(is there|are there|any|presence|present|evidence of|visible|detect\w*|"
                         r"does .{0,40}\b(have|show|contain))\b", re.IGNORECASE)
_CARDIO = re.compile(r"cardiomegal|enlarged heart|heart\b.{0,12}\benlarged|cardiac enlargement|\bCTR\b|cardiothoracic",
                     re.IGNORECASE)
_EMPTY_TEXT = re.compile(r"\bno\b[^.]{0,60}\b(found|detected|present)\b|\bempty\b|"
                         r"\b0 (components|regions|candidates)\b",
                         re.IGNORECASE)
_SIZE_NAMES = ("volume", "diameter", "area")


def check_consistency(ctx: VerifyContext, step: Step) -> list[Check]:
    if step.kind == "text":
        # a paragraph that states a change and cites the measurements it rests on is checked too
        # ("shrank: 8.9 mm [E2] -> 4.0 mm [E6]"), against those measurements only
        cited = [ctx.evidence[i] for i in step.cited if i in ctx.evidence and not ctx.evidence[i].error]
        return _change(ctx, step.text, cited, []) if cited else []
    if step.kind != "answer":
        return []
    cited_ids = list(dict.fromkeys(step.cited + ctx.trace.cited_evidence))
    cited = [ctx.evidence[i] for i in cited_ids if i in ctx.evidence and not ctx.evidence[i].error]
    available = [e for e in ctx.available(step) if not e.error]
    text = step.text
    option = read_option(text, ctx.trace.options) if ctx.trace.options else None
    if option is not None:  # "B" means the option's text
        text = f"{text} {ctx.trace.options[ord(option) - ord('A')]}"  # type: ignore[index]
    return (_change(ctx, text, cited, available) + _side(ctx, text, cited, available)
            + _presence(ctx, text, available) + _cardiomegaly(ctx, text, cited or available))


def polarity(text: str) -> bool | None:
    """True for an affirmative answer, False for a negative one, None when it is neither."""
    t = strip_citations(text).strip().lower()
    if re.match(r"^\W*(yes|present|positive|true)\b", t):
        return True
    if re.match(r"^\W*(no|absent|negative|none|false)\b", t):
        return False
    if re.search(r"\b(no|not|without|absent|free of|negative for|normal)\b", t):
        return False
    if re.search(r"\b(there (is|are)|present|seen|identified|detected|enlarged|cardiomegaly)\b", t):
        return True
    return None


# -- change over time ----------------------------------------------------------------------------
def claimed_change(text: str) -> str | None:
    """``grew``, ``shrank`` or ``stable`` as the answer states it, or None."""
    if _NEGATED_CHANGE.search(text) or _STABLE.search(text):
        return "stable"
    grew, shrank = bool(_GROW.search(text)), bool(_SHRINK.search(text))
    if grew == shrank:
        return None
    return "grew" if grew else "shrank"


def subject(ev: Evidence, evidence: dict[str, Evidence], depth: int = 0) -> str:
    """What an evidence item is about: its target, or that of the evidence it was computed from."""
    target = ev.arguments.get("target") or ev.data.get("target")
    if target:
        return str(target).lower()
    for eid in cited_evidence(str(ev.arguments)):
        if eid in evidence and eid != ev.id and depth < 5:
            return subject(evidence[eid], evidence, depth + 1)
    return "prompted region" if any(k in ev.arguments for k in ("bbox_2d", "point_2d")) else "region"


def measured_change(ctx: VerifyContext, evidence: list[Evidence]) -> tuple[float, str] | None:
    """Relative change (later - earlier) / earlier of one size measurement, with a description."""
    for ev in evidence:
        for name, m in ev.measurements.items():
            if ("change" in name.lower() or "growth" in name.lower()) and m.unit == "%":
                return m.value / 100.0, f"{ev.id} {name} {m}"
    for size in _SIZE_NAMES:
        series: dict[tuple[str, str], list[tuple[int, Evidence, float]]] = {}
        for ev in evidence:
            volume = ctx.volume_of(ev)
            rank = ctx.time_rank(volume) if volume is not None else None
            if rank is None:
                continue
            for name, m in ev.measurements.items():
                unit = dimension_of(m.unit)
                if size in name.lower() and unit is not None and "perpendicular" not in name.lower():
                    key = (subject(ev, ctx.evidence), name)
                    series.setdefault(key, []).append((rank, ev, m.value * unit[1]))
        for (subj, name), points in series.items():
            points.sort(key=lambda p: p[0])
            (r0, e0, v0), (r1, e1, v1) = points[0], points[-1]
            if r0 != r1 and v0 > 0:
                return (v1 - v0) / v0, f"{subj} {name}: {e0.id} {v0:.4g} -> {e1.id} {v1:.4g}"
    return None


def _change(ctx: VerifyContext, text: str, cited: list[Evidence], available: list[Evidence]) -> list[Check]:
    claim = claimed_change(text)
    if claim is None:
        return []
    found = measured_change(ctx, cited) or (measured_change(ctx, available) if available else None)
    if found is None:
        return []
    rel, how = found
    tol = ctx.config.change_tolerance
    actual = "grew" if rel > tol else "shrank" if rel < -tol else "stable"
    detail = f"answer says {claim}; measured {rel:+.1%} ({how})"
    if claim == actual:
        return [Check("correct", detail)]
    if actual == "stable" and claim != "stable":
        return [Check("unverifiable", detail + f", within the {tol:.0%} stability tolerance")]
    return [Check("incorrect", detail, "inconsistent_answer")]


# -- side ----------------------------------------------------------------------------------------
def _side(ctx: VerifyContext, text: str, cited: list[Evidence], available: list[Evidence]) -> list[Check]:
    sides = side_words(text)
    claim, negated = None, False
    if len(sides) == 1:
        claim = sides.pop()
    elif not sides:
        asked = side_words(ctx.trace.question)
        answer = polarity(text)
        if len(asked) == 1 and answer is not None:
            claim, negated = asked.pop(), not answer
    if claim is None:
        return []
    pool = [e for e in cited if evidence_laterality(e)] or [
        e for e in available if evidence_laterality(e) and _is_finding(e, ctx)]
    measured = {evidence_laterality(e) for e in pool}
    if len(measured) != 1:
        return []
    actual = measured.pop()
    ok = (actual != claim) if negated else (actual == claim)
    said = f"not {claim}" if negated else claim
    return [Check("correct" if ok else "incorrect",
                  f"answer says {said}; evidence {', '.join(e.id for e in pool)} measured {actual}",
                  None if ok else "laterality", [e.id for e in pool])]


def _is_finding(ev: Evidence, ctx: VerifyContext) -> bool:
    subj = subject(ev, ctx.evidence)
    return bool(FINDING.search(subj)) or subj == "prompted region"


# -- presence ------------------------------------------------------------------------------------
def _presence(ctx: VerifyContext, text: str, available: list[Evidence]) -> list[Check]:
    answer = polarity(text)
    if answer is None or not _PRESENCE_Q.search(ctx.trace.question) or side_words(ctx.trace.question):
        return []
    findings: list[tuple[str, bool]] = []  # (evidence id or call, empty?)
    for ev in available:
        if ev.tool == "segment" and _is_finding(ev, ctx):
            empty = _is_empty(ev)
            if empty is not None:
                findings.append((ev.id, empty))
    for call in ctx.trace.tool_calls():  # a segmenter that found nothing may fail the call instead
        target = str(call.arguments.get("target", ""))
        if call.name == "segment" and call.error and FINDING.search(target) and _EMPTY_TEXT.search(call.error):
            findings.append((f"segment {target}", True))
    if not findings:
        return []
    present = [i for i, empty in findings if not empty]
    ids = [i for i, _ in findings if i in ctx.evidence]
    if answer and not present:
        searched = ", ".join(i for i, _ in findings)
        return [Check("incorrect", f"answer says present; every finding segmentation is empty ({searched})",
                      "inconsistent_answer", ids)]
    if not answer and present:
        return [Check("incorrect", f"answer says absent; {', '.join(present)} segmented a finding",
                      "inconsistent_answer", ids)]
    return [Check("correct", f"answer says {'present' if answer else 'absent'}, as the segmentations show", None, ids)]


def _is_empty(ev: Evidence) -> bool | None:
    if ev.mask is not None:
        return not bool(ev.mask.any())
    for key in ("count", "components", "n_components", "voxels"):
        if isinstance(ev.data.get(key), (int, float)):
            return ev.data[key] == 0
    return True if _EMPTY_TEXT.search(ev.text) else None


# -- cardiomegaly --------------------------------------------------------------------------------
def _cardiomegaly(ctx: VerifyContext, text: str, evidence: list[Evidence]) -> list[Check]:
    if not _CARDIO.search(ctx.trace.question + " " + text):
        return []
    answer = polarity(text)
    if answer is None:
        return []
    for ev in evidence:
        for name, m in ev.measurements.items():
            if "ctr" in name.lower() or "cardiothoracic" in name.lower():
                ctr = m.value / 100.0 if m.unit == "%" else m.value
                enlarged = ctr > ctx.config.ctr_threshold
                ok = enlarged == answer
                return [Check("correct" if ok else "incorrect",
                              f"answer says {'enlarged' if answer else 'not enlarged'}; {ev.id} CTR {ctr:.2f} "
                              f"({'>' if enlarged else '<='} {ctx.config.ctr_threshold})",
                              None if ok else "inconsistent_answer", [ev.id])]
    return []
