"""The counting family: how many lesions the search found, from the segment tool's components.

The lesion search of the question's region (the lungs or the brain, or within a liver, spleen or
kidney the question names) is run as for a lesion question, and its connected components are the
count. The count is only as good as the search: a doubtful search (thick slices, a doubtful
organ mask) gives "at least N", and an implausible one no count (`answer.hedge`).
"""

from __future__ import annotations

import re

from grounding.quality import worst
from mmreason.backends.rules.common import cannot, failed, lesion_target, organ_name, search_order
from mmreason.backends.rules.lesion import LESION_ORGANS, organ_search, searches
from mmreason.backends.rules.state import Result, State
from mmreason.backends.rules.turn import Action, Finding


def plan_count(state: State) -> Action:
    """Search the region for lesions (within the organ the question names, if any); count them."""
    organs = state.q.organs or ()
    in_organ = state.modality() == "CT" and bool(organs) and organs[0] in LESION_ORGANS
    if re.search(r"\b(left|right)\b", state.question, re.I) and not in_organ:  # a kidney names its side
        return cannot("the lesion search counts the candidates of both sides together; the count of one side "
                      "is not measured")
    if in_organ:
        return _count_in_organ(state, organs[0])
    empty, search = searches(state, search_order(state))
    if search is not None:
        return search
    if stop := failed(state):
        return stop
    seg = state.results[empty]
    region = "the brain" if state.modality() == "MR" else "the lungs"
    return _count_answer(state, seg, state.results[:empty + 1], f"{lesion_target(state)} candidates in {region}")


def _count_in_organ(state: State, organ: str) -> Action:
    if search := organ_search(state, "to count the lesions within it"):
        return search
    return _count_answer(state, state.results[1], state.results[:2], f"focal lesions in the {organ_name(organ)}")


def _count_answer(state: State, seg: Result, searched: list[Result], what: str) -> Action:
    """The count of ``seg``'s components; "at least" when any search it rests on is doubtful."""
    n = int(seg.fact("components") or 0) if seg.fact("voxels") else 0
    levels = [x.payload.get("quality", {}).get("level", "ok") for x in searched]
    at_least = worst(levels) == "doubtful" and n > 0
    cites = [x.evidence_id for x in searched if x.evidence_id]
    finding = Finding(cites, count=n, count_at_least=at_least)
    form = state.q.count
    if form == "many":
        finding.present = n >= 2
        undecided = at_least and n < 2
    elif form == "one":
        finding.present = n == 1
        undecided = at_least and n == 1
    else:
        finding.present = n > 0
        undecided = False
    counted = f"{'at least ' if at_least else ''}{n} {what} (connected components of the search"
    text = (f"The search found {counted} [{', '.join(cites)}])"
            + (", which is doubtful: there may be more" if at_least else "") + ".")
    if undecided:
        return Action("A doubtful search cannot tell one lesion from several.",
                      answer=f"I cannot answer reliably: {text[0].lower()}{text[1:-1]}, so whether there is more "
                             f"than one is not known.")
    return Action("The components of the search are the count.", answer=text, finding=finding)
