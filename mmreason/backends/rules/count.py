"""The counting family: how many lesions the search found, from the segment tool's components.

The lesion search of the question's region (the lungs or the brain, or within a liver, spleen or
kidney the question names) is run as for a lesion question, and its connected components are the
count; a question naming one side counts the components the segment tool put on that side (its
side of each component), and is declined when a side is not known. The count is only as good as
the search: a doubtful search (thick slices, a doubtful organ mask) gives "at least N", and an
implausible one no count (`answer.hedge`).
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
    sides = {m.lower() for m in re.findall(r"\b(left|right)\b", state.question, re.I)}
    if len(sides) > 1 and not in_organ:
        return cannot("it names both sides; ask for the count of one side or of both together")
    if in_organ:
        return _count_in_organ(state, organs[0])
    empty, search = searches(state, search_order(state))
    if search is not None:
        return search
    if stop := failed(state):
        return stop
    seg = state.results[empty]
    region = "the brain" if state.modality() == "MR" else "the lungs"
    if not sides:
        return _count_answer(state, seg, state.results[:empty + 1], f"{lesion_target(state)} candidates in {region}")
    side = sides.pop()
    part = f"the {side} {'hemisphere' if state.modality() == 'MR' else 'lung'}"
    counted = _count_on_side(seg, side)
    if counted is None:
        return cannot(f"it asks for {part}, and the side of the candidates found is not known (the "
                      f"orientation is assumed, or a candidate lies at the midline)")
    return _count_answer(state, seg, state.results[:empty + 1], f"{lesion_target(state)} candidates in {part}",
                         count=counted)


def _count_on_side(seg: Result, side: str) -> int | None:
    """How many of ``seg``'s components lie on ``side`` (the segment tool's side of each), or None
    when that is not known: sides withheld (orientation assumed) or a component at the midline."""
    n = _components(seg)
    if n == 0:
        return 0
    if n == 1:
        where = seg.fact("laterality")
        return None if where not in ("left", "right") else int(where == side)
    if seg.fact("components_left") is None or seg.fact("components_midline"):
        return None
    return int(seg.fact(f"components_{side}"))


def _count_in_organ(state: State, organ: str) -> Action:
    if search := organ_search(state, "to count the lesions within it"):
        return search
    return _count_answer(state, state.results[1], state.results[:2], f"focal lesions in the {organ_name(organ)}")


def _components(seg: Result) -> int:
    """How many connected components ``seg``'s mask holds (0 for an empty search)."""
    return int(seg.fact("components") or 0) if seg.fact("voxels") else 0


def _count_answer(state: State, seg: Result, searched: list[Result], what: str, count: int | None = None) -> Action:
    """The count of ``seg``'s components (or ``count`` of them, on one side); "at least" when any
    search it rests on is doubtful."""
    n = _components(seg) if count is None else count
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
