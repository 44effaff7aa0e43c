"""The cardiothoracic-ratio family: lungs and heart segmented on a radiograph, their widths divided."""

from __future__ import annotations

import re

from grounding.plausibility import CTR_ENLARGED, ctr_quality
from mmreason.backends.rules.common import cannot, failed, on_volume
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding

#: a classical ratio this close to `CTR_ENLARGED` cannot decide enlarged or not: its typical error on
#: real films (benchmarks.real_scans, JSRT with expert masks) is about this large
CTR_MARGIN = 0.05


#: the two segmentations of the cardiothoracic ratio: target, what its width measures
CTR_STEPS = (("lungs", "thoracic width: the lung fields' outer margins, at the inner rib margins"),
             ("heart", "cardiac width: the cardiac silhouette's right and left borders"))


#: a ratio a question compares with ("above 0.55", "greater than 60%")
_CUT = re.compile(r"(?<![\d.])(0?\.\d+)(?![\d.])|(?<![\d.])(\d{2}(?:\.\d+)?)\s*(?:%|per ?cent)", re.I)
_BELOW = re.compile(r"\b(less|lower|smaller|below|under|at most)\b", re.I)
_NORMAL = re.compile(r"(?<!ab)(?<!than )\bnormal", re.I)


def asked_cut(question: str) -> tuple[float, bool, bool] | None:
    """What a yes/no question about the ratio asks: (cut-off, asks whether the ratio is below it,
    asks whether the heart is normal); the cut-off is `CTR_ENLARGED` unless the question names
    one. None when it names several."""
    cuts = {float(a) if a else float(b) / 100 for a, b in _CUT.findall(question)}
    if len(cuts) > 1:
        return None
    below = bool(_BELOW.search(question))
    return (cuts.pop() if cuts else CTR_ENLARGED), below, bool(_NORMAL.search(question)) and not below


def plan_ctr(state: State) -> Action:
    """Cardiothoracic ratio on a radiograph: segment lungs and heart, measure both widths, divide."""
    r = state.results
    vol = next((v for v in state.volumes if v.is_2d), None)
    if vol is None:
        return cannot("the cardiothoracic ratio is measured on a 2-D chest radiograph")
    asked = asked_cut(state.question)
    if asked is None:
        return cannot("the question names several ratios to compare with")
    missing = [t for t, _ in CTR_STEPS if state.targets and t not in state.targets]
    if missing:
        return cannot(f"the segment tool has no '{missing[0]}' target with this segmenter")
    if stop := failed(state):
        return stop
    step = len(r)
    if step < 2 * len(CTR_STEPS):
        target, what = CTR_STEPS[step // 2]
        if step % 2 == 0:
            on = f" (volume {vol.id})" if len(state.volumes) > 1 else ""
            return Action(f"I will segment the {target} on the radiograph{on} ({what}).", "segment",
                          on_volume(state, vol, {"target": target}))
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot answer: no {target} was found [{seg.evidence_id}].")
        return Action(f"I will measure the left-right width of {seg.evidence_id}.", "measure",
                      {"evidence_id": seg.evidence_id})
    thor, card = r[1].measure("width_mm"), r[3].measure("width_mm")
    if not thor or not card:
        return cannot("the measurements did not return left-right widths")
    ratio = card / thor
    quality = ctr_quality(ratio)
    if quality.level == "implausible":
        cites = [c for c in (r[2].evidence_id, r[3].evidence_id, r[0].evidence_id, r[1].evidence_id) if c]
        return Action("The measured ratio is not anatomically plausible.",
                      answer=f"I cannot answer reliably: {quality.reasons[0]} (cardiac width {card:.1f} mm / "
                             f"thoracic width {thor:.1f} mm) [{', '.join(cites)}].")
    enlarged = ratio > CTR_ENLARGED
    cut, below, normal = asked
    present = (ratio < cut if below else ratio > cut) != normal
    verdict = (f"enlarged (cardiomegaly, ratio > {CTR_ENLARGED})" if enlarged
               else f"within normal limits (ratio <= {CTR_ENLARGED})")
    text = (f"The cardiothoracic ratio is {ratio:.2f}: cardiac width {card:.1f} mm [{r[2].evidence_id}, "
            f"{r[3].evidence_id}] / thoracic width {thor:.1f} mm [{r[0].evidence_id}, {r[1].evidence_id}]; "
            f"the heart size is {verdict}.")
    # a doubtful ratio, or a yes/no within the measurement's error of the cut-off, is said with a caveat
    caveats = list(quality.reasons)
    if state.q.asked.yes_no and abs(ratio - cut) < CTR_MARGIN:
        caveats.append(f"the ratio is within {CTR_MARGIN} of the {cut:g} cut-off, about the classical "
                       f"measurement's error, so the answer is borderline")
    cites = [r[2].evidence_id, r[3].evidence_id, r[0].evidence_id, r[1].evidence_id]
    return Action("Both widths are measured.", answer=text,
                  finding=Finding([c for c in cites if c], present=present, ratio=ratio, caveat="; ".join(caveats)))
