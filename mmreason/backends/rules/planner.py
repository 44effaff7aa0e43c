"""The question families, in the order they are tried, and the next turn of an episode.

Each family is a row of `FAMILIES`: a name, the cues that recognise it (a `Question` and the
study: `State`) and its planner. The first row whose test passes plans the turn; a question no
row recognises gets a reasoned refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mmreason.backends.rules.answer import asked_number, choose_option, hedge, short_answer
from mmreason.quantities import parse_quantity
from mmreason.backends.rules.common import cannot
from mmreason.backends.rules.ctr import plan_ctr
from mmreason.backends.rules.growth import plan_growth
from mmreason.backends.rules.lesion import LESION_ORGANS, plan_lesion, plan_organ_lesion
from mmreason.backends.rules.modality import plan_modality
from mmreason.backends.rules.organ import plan_organ
from mmreason.backends.rules.sequence import plan_sequence
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action


@dataclass(frozen=True)
class Family:
    """A question family: ``recognises(state)`` decides whether ``plan(state)`` plans its turns."""

    name: str
    recognises: Callable[[State], bool]
    plan: Callable[[State], Action]


def _organ_lesion(state: State) -> bool:
    organs = state.q.organs or ()
    return state.q.lesion and state.modality() == "CT" and bool(organs) and organs[0] in LESION_ORGANS


FAMILIES: tuple[Family, ...] = (
    Family("growth", lambda s: len(s.volumes) >= 2 and s.q.growth, plan_growth),
    Family("ctr", lambda s: s.q.ctr, plan_ctr),
    Family("sequence", lambda s: s.q.sequence and s.modality() == "MR", plan_sequence),
    Family("organ lesion", _organ_lesion, plan_organ_lesion),
    Family("lesion", lambda s: s.q.lesion and s.modality() in ("CT", "MR"), plan_lesion),
    Family("lesion elsewhere", lambda s: s.q.lesion,
           lambda s: cannot("lesion questions are answered on 3-D CT and MR only")),
    Family("organ volume", lambda s: bool(s.q.organs) and s.q.organ_size, plan_organ),
    Family("modality/plane", lambda s: s.q.modality or s.q.plane, plan_modality),
)
#: what a question no family recognises is told
UNKNOWN = ("it is not one of the question types the rules backend handles (lung nodule or lesion presence, side "
           "and size; organ volume; lesion growth between two studies; cardiothoracic ratio; the MR sequence a "
           "lesion is brightest on; modality and plane)")


def family_of(state: State) -> Family | None:
    """The first family of `FAMILIES` that recognises the question, or None."""
    return next((f for f in FAMILIES if f.recognises(state)), None)


def plan(state: State) -> Action:
    family = family_of(state)
    return family.plan(state) if family is not None else cannot(UNKNOWN)


def decide(state: State) -> Action:
    """The next action; a final answer with a finding gets its ``tag`` (short answer + citations)."""
    action = plan(state)
    if action.tool is not None and not state.tools_offered:
        # a direct-answer run (vision only): calling a tool that is not there would be an error turn
        action = cannot("this run offers no tools (direct answering) and the rules backend reads images only "
                        "through its tools")
    if action.tool is not None or action.finding is None:
        action.tag = action.answer
        return action
    finding = action.finding
    tag = short_answer(state.q.asked, finding)
    if state.options:
        hint = finding.hint()
        # the number the question asks for (a volume, not the diameter the finding also holds)
        asked = parse_quantity(asked_number(state.q.asked, finding))
        if asked is not None:
            hint["value"] = asked[0]
        letter = choose_option(state.options, hint)
        if letter:
            tag = f"{letter}. {state.options[ord(letter) - ord('A')]}"
    cites = list(dict.fromkeys(finding.cites))
    action.tag = tag + (f" [{', '.join(cites)}]" if cites else "")
    if finding.caveat:
        action.tag += f" (uncertain: {finding.caveat})"
        action.answer += f" Caveat: {finding.caveat}."
    return hedge(state, action, tag)
