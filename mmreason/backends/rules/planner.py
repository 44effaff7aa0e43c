"""The question families, in the order they are tried, and the next turn of an episode.

Each family is a row of `FAMILIES`: a name, the cues that recognise it (a `Question` and the
study: `State`), its planner, what it answers beyond presence, side and size (``supports``) and
the region its search covers (``sites``). The first row whose test passes plans the turn. A
question no row recognises, one that asks what its family does not answer (a count, an
attenuation, a comparison, a lobe ... `question.BEYOND`), or one about a site its search does not
cover gets a reasoned refusal: the planner never answers a question it cannot ground.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mmreason.backends.rules.answer import choose_option, hedge, option_hint, short_answer, uncertain
from mmreason.backends.rules.attenuation import plan_attenuation
from mmreason.backends.rules.common import cannot
from mmreason.backends.rules.count import plan_count
from mmreason.backends.rules.ctr import plan_ctr
from mmreason.backends.rules.growth import plan_growth
from mmreason.backends.rules.lesion import LESION_ORGANS, plan_lesion, plan_organ_lesion, searched_region
from mmreason.backends.rules.modality import plan_modality
from mmreason.backends.rules.organ import plan_organ
from mmreason.backends.rules.sequence import plan_sequence
from mmreason.backends.rules.question import BEYOND
from mmreason.backends.rules.state import State
from mmreason.backends.rules.subject import subject_sites
from mmreason.backends.rules.threshold import plan_threshold
from mmreason.backends.rules.turn import Action


@dataclass(frozen=True)
class Family:
    """A question family: ``recognises(state)`` decides whether ``plan(state)`` plans its turns.

    ``supports``: the keys of `question.BEYOND` it answers (others are declined); ``sites``: the
    region its search covers, named and as the word stems naming it (None: it searches no region).
    """

    name: str
    recognises: Callable[[State], bool]
    plan: Callable[[State], Action]
    supports: frozenset[str] = frozenset()
    sites: Callable[[State], tuple[str, tuple[str, ...]]] | None = None


def _threshold(state: State) -> bool:
    """A comparison of one measured structure with a value, or of two organs by size (not a count,
    nor a change between studies, which their own families answer)."""
    q = state.q
    if q.pair is not None and not q.lesion:  # two organs; "the liver lesion larger than the spleen lesion" is not
        return True
    return q.cut is not None and (q.lesion or bool(q.organs)) and q.count is None and not q.growth


def _organ_lesion(state: State) -> bool:
    organs = state.q.organs or ()
    return state.q.lesion and state.modality() == "CT" and bool(organs) and organs[0] in LESION_ORGANS


FAMILIES: tuple[Family, ...] = (
    Family("growth", lambda s: len(s.volumes) >= 2 and s.q.growth, plan_growth, frozenset({"comparison"}),
           searched_region),
    Family("ctr", lambda s: s.q.ctr, plan_ctr, frozenset({"comparison", "normal"})),
    Family("sequence", lambda s: s.q.sequence and s.modality() == "MR", plan_sequence,
           frozenset({"bright", "intensity", "attenuation", "comparison"}), searched_region),
    Family("threshold", _threshold, plan_threshold, frozenset({"comparison", "attenuation"}), subject_sites),
    Family("attenuation", lambda s: "attenuation" in s.q.beyond and (s.q.lesion or bool(s.q.organs))
           and s.q.count is None, plan_attenuation, frozenset({"attenuation"}), subject_sites),
    Family("count", lambda s: s.q.count is not None and s.q.lesion and s.modality() in ("CT", "MR"), plan_count,
           frozenset({"count", "bright"}), searched_region),
    Family("organ lesion", _organ_lesion, plan_organ_lesion, frozenset({"bright"}), searched_region),
    Family("lesion", lambda s: s.q.lesion and s.modality() in ("CT", "MR"), plan_lesion, frozenset({"bright"}),
           searched_region),
    # it declines whatever is asked beyond presence: its reason, not a "does not measure" one, is the answer
    Family("lesion elsewhere", lambda s: s.q.lesion,
           lambda s: cannot("lesion questions are answered on 3-D CT and MR only"), frozenset(BEYOND)),
    Family("organ volume", lambda s: bool(s.q.organs) and s.q.organ_size, plan_organ),
    # the header gives the modality, not the body region: "Is this a CT of the abdomen?" is not answered
    Family("modality/plane", lambda s: s.q.modality or s.q.plane, plan_modality,
           sites=lambda s: ("the image type, not the body region", ())),
)
#: what a question no family recognises is told
UNKNOWN = ("it is not one of the question types the rules backend handles (lung nodule or lesion presence, side, "
           "size and count; organ volume; a size or mean HU against a value, two organs' volumes; the mean HU of a "
           "lesion or organ on CT; lesion growth between two studies; cardiothoracic ratio; the MR sequence "
           "a lesion is brightest on; modality and plane)")


def family_of(state: State) -> Family | None:
    """The first family of `FAMILIES` that recognises the question, or None."""
    return next((f for f in FAMILIES if f.recognises(state)), None)


def plan(state: State) -> Action:
    family = family_of(state)
    if family is None:
        return cannot(UNKNOWN)
    return ungrounded(state, family) or family.plan(state)


def ungrounded(state: State, family: Family) -> Action | None:
    """A refusal when the question asks what ``family`` does not answer, or about a site its search
    does not cover (None when it can be grounded)."""
    for key in state.q.beyond:
        if key not in family.supports:
            pattern, what = BEYOND[key]
            word = pattern.search(state.question).group(0)  # type: ignore[union-attr]
            return cannot(f"it asks for {what} (\"{word}\"), which the tools of the {family.name} question type do "
                          f"not measure")
    if family.sites is not None:
        region, stems = family.sites(state)
        outside = next((site for site in state.q.sites if not site.startswith(stems)), None)
        if outside is not None:
            return cannot(f"it asks about the {outside}, and the {family.name} search covers {region} only")
    return None


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
    cites = list(dict.fromkeys(finding.cites))
    listed = "; ".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(state.options or []))
    if state.options and finding.undecided:  # a borderline measurement decides no option
        return Action("The measurement cannot decide between the options.",
                      answer=f"I cannot answer this multiple-choice question: {finding.undecided} "
                             f"[{', '.join(cites)}], so none of the options ({listed}) can be chosen. {action.answer}")
    if state.options:
        letter = choose_option(state.options, option_hint(state.q.asked, finding, state.options))
        if letter is None:  # picking the nearest anyway would be a guess stated as fact
            return Action("The finding matches none of the options.",
                          answer=f"I cannot answer this multiple-choice question: the tools found \"{tag}\" "
                                 f"[{', '.join(cites)}], which matches none of the options ({listed}). "
                                 f"{action.answer}")
        tag = f"{letter}. {state.options[ord(letter) - ord('A')]}"
    action.tag = tag + (f" [{', '.join(cites)}]" if cites else "")
    if finding.caveat:
        action.tag = uncertain(action.tag, finding.caveat)
        action.answer += f" Caveat: {finding.caveat}."
    return hedge(state, action, tag)
