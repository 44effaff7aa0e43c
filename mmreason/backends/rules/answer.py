"""The short answer in the form a question asks for, the option that matches a finding, and the
hedge an answer gets from the quality of the evidence it rests on."""

from __future__ import annotations

import re
from typing import Any

from grounding.plausibility import XR_FAINT_BORDERS
from grounding.quality import worst
from mmreason.backends.rules.question import Asked
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding
from mmreason.quantities import UNITS, convert, parse_quantity, quantities_in

#: dimensions of a stated size: an assumed spacing bears on an answer that states one
_SIZE_DIMENSIONS = ("length", "area", "volume")


def fmt_length(mm: float, unit: str | None = None) -> str:
    """A length in the asked unit (``cm``), else in mm."""
    return f"{mm / 10:.2f} cm" if unit == "cm" else f"{mm:.1f} mm"


def fmt_volume(mm3: float, unit: str | None = None) -> str:
    """A volume in the asked unit (``mL`` or ``mm3``); else mL from 1 mL up, mm3 below."""
    unit = unit if unit in ("mL", "mm3") else ("mL" if mm3 >= 1000 else "mm3")
    if unit == "mm3":
        return f"{mm3:.0f} mm3"
    ml = mm3 / 1000
    return f"{ml:.1f} mL" if ml >= 100 else f"{ml:.2f} mL" if ml >= 1 else f"{ml:.3f} mL"


def short_answer(q: Asked, finding: Finding) -> str:
    """The answer in the form the question asks for (``q``), without citations (see the package
    docstring): yes/no first for a closed question, then the label, side, ratio and number asked."""
    parts: list[str] = []
    if q.yes_no and finding.present is not None:
        # "Is the nodule in the left lung?" is about the side, not only about presence
        side = finding.leaning if finding.side == "midline" else finding.side
        # lesions on both sides: there is one on the side named
        yes = finding.present and (q.named_side is None or side in (None, "bilateral", q.named_side))
        parts.append(("Yes" if yes else "No")
                     + (f", it {finding.trend}" if finding.trend else ""))
    if finding.versus:  # the comparison the yes/no (or the borderline) rests on
        parts.append(finding.versus)
    if finding.none_text:  # nothing was found: there is nothing else to describe
        return parts[0] if parts else finding.none_text[:1].upper() + finding.none_text[1:]
    if finding.label and (q.which or not parts):
        parts.append(finding.label)
    if q.side and finding.side:
        parts.append(side_words(finding))
    if finding.ratio is not None:
        parts.append(f"CTR {finding.ratio:.2f}" if parts else f"{finding.ratio:.2f}")
    if finding.count is not None and not q.yes_no:
        parts.append(count_text(finding))
    number = asked_number(q, finding)
    if number:
        parts.append(number)
    if not parts:  # nothing specific asked ("Tell me about the nodule"): the finding in brief
        parts = [p for p in ("Yes" if finding.present else "",
                             side_words(finding) if finding.side else "",
                             asked_number(Asked(size=True, volume=finding.diameter_mm is None, amount=True), finding))
                 if p]
    return "; ".join(parts)


def side_words(f: Finding) -> str:
    """``left lung``, ``midline``, or for lesions on both sides ``both sides (largest: left lung)``."""
    if f.side == "bilateral":
        return "both sides" + (f" (largest: {f.leaning} {f.site})".replace(" )", ")") if f.leaning else "")
    return "midline" if f.side == "midline" else f"{f.side} {f.site}".strip()


def count_text(f: Finding) -> str:
    """``2``, or ``at least 2`` when the search that counted was doubtful."""
    return f"at least {f.count}" if f.count_at_least else str(f.count)


def asked_number(q: Asked, f: Finding) -> str:
    if f.mean_hu is not None:
        return f"{f.mean_hu:.0f} HU (SD {f.sd_hu:.0f} HU, {f.voxels} voxels)"
    if f.trend is not None and (q.amount or q.percent or q.size):
        if q.percent and f.change_pct is not None:
            return f"{f.change_pct:+.0f}%"
        if f.change_mm is not None and (q.amount or q.size):
            return f"{f.change_mm:+.1f} mm" if q.unit != "cm" else f"{f.change_mm / 10:+.2f} cm"
    if f.diameter_mm is not None and (q.diameter or q.unit in ("mm", "cm")):
        return fmt_length(f.diameter_mm, q.unit)
    if f.volume_mm3 is not None and (q.volume or q.unit in ("mL", "mm3")
                                     or (q.size and (f.size_is_volume or f.diameter_mm is None))):
        return fmt_volume(f.volume_mm3, q.unit)
    if f.diameter_mm is not None and q.size:
        return fmt_length(f.diameter_mm, q.unit)
    return ""



def hedge(state: State, action: Action, tag: str) -> Action:
    """Qualify an answer by the quality of the evidence it rests on (`grounding.quality`).

    Only the caveats that bear on what the answer states count: an assumed spacing on a mm or mL
    figure, an assumed orientation on a side, lung fields' faint lower borders on a lung area
    (`grounding.plausibility.XR_FAINT_BORDERS`). An ``implausible`` piece of evidence, or a doubtful
    empty search (a "no" is only as good as the region searched: an implausible lung mask makes
    "no nodule" doubtful), turns the answer into a reasoned refusal; a ``doubtful`` one keeps the
    answer and says why it is uncertain.
    """
    finding = action.finding
    assert finding is not None
    level, reasons, empty_doubted = "ok", [], False
    cited = set(finding.cites)
    states_size = any(UNITS[unit][0] in _SIZE_DIMENSIONS for _, unit, _ in quantities_in(tag))
    states_area = any(UNITS[unit][0] == "area" for _, unit, _ in quantities_in(tag))
    states_side = bool(re.search(r"\b(left|right)\b", tag, re.I))
    for result in state.results:
        quality = result.payload.get("quality")
        if result.evidence_id not in cited or not quality:
            continue
        for reason in quality.get("reasons", []):
            if (("spacing assumed" in reason and not states_size)
                    or ("orientation assumed" in reason and not states_side)
                    or (reason.startswith(XR_FAINT_BORDERS) and not states_area)):
                continue
            if reason not in reasons:
                # the worst evidence's reasons first: they are the ones the answer tag names
                worse = worst([level, quality.get("level", "ok")])
                reasons.insert(0, reason) if worse != level else reasons.append(reason)
                level = worse
                empty_doubted |= result.name == "segment" and result.fact("voxels") == 0
    if not reasons:
        return action
    caveat = "; ".join(reasons)
    if level == "implausible" or (finding.present is False and empty_doubted):
        what = finding.none_text or f"the tools gave \"{tag}\""
        action.answer = (f"I cannot answer reliably: {what}, but the evidence is {level}: {caveat} "
                         f"[{', '.join(dict.fromkeys(finding.cites))}]. What the tools measured: {action.answer}")
        action.thought = "The evidence this answer rests on is not plausible enough to state it as fact."
        action.tag = f"I cannot answer reliably: {reasons[0]} [{', '.join(dict.fromkeys(finding.cites))}]"
        action.finding = None
        return action
    action.answer += f" Caveat: {caveat}."
    action.tag = uncertain(action.tag, reasons[0])
    return action


def uncertain(tag: str, reason: str) -> str:
    """``tag`` with ``reason`` in its one "(uncertain: ...)" clause (added, or joined to the one there)."""
    if tag.endswith(")") and " (uncertain: " in tag:
        return f"{tag[:-1]}; {reason})"
    return f"{tag} (uncertain: {reason})"


#: an option that is only a side ("left lung", "right", "both sides"), with no number to match as well
_SIDE_OPTION = re.compile(r"^(the )?(left|right|both|bilateral|neither|none)\b[^0-9]*$")


def option_hint(q: Asked, finding: Finding, options: list[str]) -> dict[str, Any]:
    """The `choose_option` hint of ``finding`` for a question asking ``q`` with ``options``: only
    what the question asks for may pick an option (a lesion's diameter never picks a count, its
    side never picks an answer to a size question). Options that are all yes/no, or all name a
    side, say what is asked as well as the wording does."""
    hint: dict[str, Any] = {"words": finding.words}
    lowered = [o.strip().lower().rstrip(".") for o in options]
    if finding.present is not None and (q.yes_no or set(lowered) <= {"yes", "no"}):
        hint["yes"] = finding.present
    side = finding.leaning if finding.side == "midline" else finding.side
    if side and (q.side or all(_SIDE_OPTION.match(o) for o in lowered)):
        hint["side"] = side
    if finding.trend:
        hint["trend"] = finding.trend
    if finding.count is not None:
        hint["count"], hint["at_least"] = finding.count, finding.count_at_least
    elif (asked := parse_quantity(asked_number(q, finding))) is not None:
        hint["value"], hint["unit"] = asked
    elif finding.ratio is not None:
        hint["value"] = finding.ratio
    if finding.tolerance is not None:
        hint["tolerance"] = finding.tolerance
    return hint


#: a measured number picks the nearest numeric option only when within this fraction of the larger of
#: the two (or of the smallest gap between options, for figures near zero): a figure far from every
#: option means the measurement or the options are about something else, and the nearest is a guess
OPTION_TOLERANCE = 0.25
_NUMBER_WORDS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                             "nine", "ten"))} | {"none": 0, "no": 0, "single": 1}


def choose_option(options: list[str], hint: dict[str, Any]) -> str | None:
    """The letter of the option that matches the finding (``hint``), or None when none does.

    ``hint`` keys (`option_hint`): ``yes`` (bool, for yes/no options), ``side`` (left/right; for
    ``bilateral`` the option saying both sides or bilateral),
    ``trend`` (grew/shrank/is stable), ``words`` (any of them in the option), ``count`` with
    ``at_least`` (the option stating that number; for ``at_least`` the one option not below it),
    ``value`` with ``unit`` (the nearest number of the same dimension, when close: see
    `OPTION_TOLERANCE`, or ``tolerance`` in ``unit`` when given; options without a unit are read
    in ``unit``).
    """
    norm = [re.sub(r"[^a-z0-9.\- ]", "", o.lower()).strip() for o in options]
    letters = [chr(ord("A") + i) for i in range(len(options))]

    def pick(pred: Any) -> str | None:
        hits = [letter for letter, o in zip(letters, norm) if pred(o)]
        return hits[0] if len(hits) == 1 else None

    if hint.get("side") == "bilateral" and (found := pick(lambda o: "both" in o or "bilateral" in o)):
        return found
    if "side" in hint and hint["side"] in ("left", "right"):
        other = "left" if hint["side"] == "right" else "right"
        if found := pick(lambda o: hint["side"] in o and other not in o):
            return found
    if "trend" in hint:
        words = {"grew": ("grow", "grew", "increase", "larger", "progress"),
                 "shrank": ("shr", "decrease", "smaller", "regress"), "is stable": ("stable", "unchanged", "no change")}
        if found := pick(lambda o: any(w in o for w in words[hint["trend"]])):
            return found
    if "yes" in hint:
        if found := pick(lambda o: o == ("yes" if hint["yes"] else "no")):
            return found
    if hint.get("words"):
        if found := pick(lambda o: any(re.search(rf"\b{re.escape(w.lower())}\b", o) for w in hint["words"])):
            return found
    if hint.get("count") is not None:
        counts = [_option_count(o) for o in norm]
        if None in counts:
            return None
        n = hint["count"]
        return pick(lambda o: _option_count(o) >= n if hint.get("at_least") else _option_count(o) == n)
    if hint.get("value") is not None:
        return _nearest_option(options, letters, float(hint["value"]), hint.get("unit"), hint.get("tolerance"))
    return None


def _option_count(option: str) -> int | None:
    """The whole number an option states (``3``, ``three``, ``3 lesions``), None otherwise."""
    word = option.split()[0] if option.split() else ""
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    number = parse_quantity(option)
    return int(number[0]) if number is not None and number[0] == int(number[0]) and number[0] >= 0 else None


def _nearest_option(options: list[str], letters: list[str], value: float, unit: str | None,
                    tolerance: float | None = None) -> str | None:
    """The option whose number (in ``unit``) is nearest ``value``, when close enough: within
    ``tolerance`` (absolute, in ``unit``; then no other option may be) when given, else `OPTION_TOLERANCE`."""
    values = []
    for option in options:
        number = parse_quantity(option)
        if number is None:
            return None
        converted = convert(number[0], number[1], unit) if number[1] and unit else number[0]
        if converted is None:  # another dimension: a length option for a volume
            return None
        values.append(converted)
    dist = [abs(v - value) for v in values]
    best = dist.index(min(dist))
    distinct = sorted(set(values))
    gap = min((b - a for a, b in zip(distinct, distinct[1:])), default=0.0)
    if tolerance is not None:  # two options within the measurement's uncertainty: choosing one would be a guess
        within = [letter for letter, d in zip(letters, dist) if d <= tolerance]
        return within[0] if len(within) == 1 else None
    return letters[best] if dist[best] <= OPTION_TOLERANCE * max(abs(value), abs(values[best]), gap) else None
