"""The structure a threshold or attenuation question is about, found and measured by the steps of
the family that answers questions about it: a lesion by the lesion search (`lesion.plan_lesion`,
or within a liver, spleen or kidney, `lesion.plan_organ_lesion`), an organ by `organ.plan_organ`.
Those families' turns are taken as they are; only their final answer is read again, from the
``measure`` evidence it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmreason.backends.rules.common import cannot, lesion_target, organ_name
from mmreason.backends.rules.lesion import LESION_ORGANS, plan_lesion, plan_organ_lesion, searched_region
from mmreason.backends.rules.organ import plan_organ
from mmreason.backends.rules.state import Result, State
from mmreason.backends.rules.turn import Action


@dataclass
class Measured:
    """A structure the tools segmented and measured: its name, the ``measure`` result, and the final
    answer its family gave (prose and finding), which a threshold or attenuation answer builds on."""

    name: str
    meas: Result
    found: Action


def is_lesion(state: State) -> bool:
    """The question is about a lesion (searched for), not an organ (segmented by name)."""
    return state.q.lesion


def subject_sites(state: State) -> tuple[str, tuple[str, ...]]:
    """The region the subject's search covers (a lesion's), or for an organ the sites it names itself."""
    if is_lesion(state):
        return searched_region(state)
    return "the organ named", tuple(state.q.sites)


def measure_subject(state: State, *, organs: tuple[str, ...] | None = None,
                    interior: bool = False) -> Action | Measured:
    """The next tool call of the subject's family, a final answer when nothing was found (its "no")
    or the family cannot go on, or the `Measured` subject once its ``measure`` result is in.

    ``organs``: measure these organs (several: `organ.plan_organ` measures each; the last one's
    ``measure`` is returned); ``interior``: ask ``measure`` for the interior's intensity as well.
    """
    if organs is None and is_lesion(state):
        if state.modality() not in ("CT", "MR"):
            return cannot("lesion questions are answered on 3-D CT and MR only")
        named = state.q.organs or ()
        in_organ = state.modality() == "CT" and bool(named) and named[0] in LESION_ORGANS
        action = plan_organ_lesion(state) if in_organ else plan_lesion(state)
        name = f"lesion in the {organ_name(named[0])}" if in_organ else lesion_target(state)
    else:
        if organs is None and len(state.q.organs or ()) > 1:  # "the kidneys": one value each, not one answer
            named = state.q.organs or ()
            return cannot(f"it names {len(named)} organs ({', '.join(organ_name(o) for o in named)}) to measure; ask "
                          f"about one of them")
        organs = organs or state.q.organs or ()
        if not organs:
            return cannot("it names no structure the tools segment")
        action = plan_organ(state, organs)
        name = organ_name(organs[-1])
    if action.tool == "measure" and interior:
        action.arguments["interior"] = True
    if action.tool is not None or action.finding is None or action.finding.present is False:
        return action
    meas = next((x for x in reversed(state.results) if x.name == "measure" and not x.error), None)
    if meas is None:
        return cannot("the structure was not measured")
    return Measured(name, meas, action)
