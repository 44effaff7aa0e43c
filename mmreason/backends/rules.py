"""`RulesBackend`: a deterministic planner that answers by calling the tools. No weights.

It reads only what a model would read: the system prompt (the tool list), the user turn (the
study lines, the image captions, the question) and the ``role: tool`` messages (their text, the
``Result: {...}`` JSON line written by `mmreason.messages.result_text`, and their images). Each
call to `generate` returns the next turn - one or more ``<tool_call>`` blocks or an ``<answer>``
- so its traces have exactly the format of model traces and can serve as SFT demonstrations.

Question families, recognised by keywords (first match wins, case-insensitive):

==============  =======================================================  ==========================
family          recognised by                                            tool calls
==============  =======================================================  ==========================
growth          two or more volumes and grow/change/compare/prior/...    segment + measure per volume
                                                                         (a nodule not found on the
                                                                         current study is looked for
                                                                         where it was: view, box)
ctr             cardiothoracic / CTR / cardiomegaly / heart size         segment lungs, measure,
                (on the first 2-D volume, e.g. a radiograph beside a CT) segment heart, measure
sequence        which sequence ... brightest / hyperintense (MR)         segment the lesion; per
                                                                         sequence view its slice,
                                                                         measure lesion and brain
organ lesion    lesion/mass/... + liver, spleen or kidney (3-D CT)       segment organ, segment
                                                                         lesion within it, measure, crop
lesion          nodule / mass / lesion / tumour / opacity (3-D CT, MR)   segment, (select), measure, crop
organ volume    volume/size/how large + an organ (lungs, liver ...)      segment organ, measure (each
                                                                         kidney for "kidneys")
modality/plane  modality / what kind of image / which plane              view
==============  =======================================================  ==========================

The final turn explains the finding in prose, with evidence citations, and then gives the answer
in ``<answer>...</answer>`` in the form the question asks for (`short_answer`): ``yes``/``no``
first for a closed question, the option letter and text for a multiple-choice one, the number
with its unit for a numeric one (in the unit the question names: "in mL", "(mm)"), followed by
the cited evidence ids, e.g. ``<answer>12.9 mm [E1, E2]</answer>``; a question that asks several
things ("Is there a nodule? Where is it and how large?") gets each part, separated by
semicolons. `mmreason.parsing` reads the cited ids from the answer tag.

On MR studies with several sequences the lesion is searched on the FLAIR, then the T2, then the
others, as the question names them ("volume 1 is the FLAIR"); the next one is tried when a
search finds nothing. When the segmenter returns several candidates, the planner points
(``point_2d``) at the largest red region of the overlay image and segments again, which keeps that
one component. Laterality questions ("which side/lung ...") about a lesion are answered by the
lesion family (the side comes from ``measure``; a region at the midline is given the side most of
it lies on when options force a side). Any other question gets an answer saying it cannot be
answered by this backend, with a pointer to ``--model`` (the loop marks the episode ``abstained``).

The cardiothoracic ratio rests on two segmentations of the radiograph: the lung fields, whose
left-right width (``measure``'s ``width_mm``) is the internal thoracic diameter between the inner
rib margins, and the cardiac silhouette, whose width is the cardiac diameter; the ratio is
computed from those two evidence items in millimetres.

The sequence comparison segments the hyperintense lesion on every sequence (a sequence where
none is found does not show it bright) and divides its mean intensity by that of the whole axial
slice through it (a box over the image: head and background; the dark background air scales
every sequence's ratio alike, so the ranking is that against the head); the sequence with the
highest ratio is the one on which the lesion is brightest relative to the brain.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from grounding.plausibility import ctr_quality
from grounding.quality import worst
from mmreason.backends.base import DEFAULT_STOP
from mmreason.messages import parse_result_line
from mmreason.parsing import parse_tool_calls

#: organ words -> canonical segment targets (checked against the segment tool's target list);
#: longer phrases come first ("left kidney" before "kidney")
ORGANS: dict[str, tuple[str, ...]] = {
    "left lung": ("lung_left",), "right lung": ("lung_right",), "lungs": ("lungs",), "lung": ("lungs",),
    "liver": ("liver",), "spleen": ("spleen",), "left kidney": ("kidney_left",),
    "right kidney": ("kidney_right",), "kidney": ("kidney_left", "kidney_right"), "heart": ("heart",),
    "aorta": ("aorta",), "airway": ("airways",), "trachea": ("airways",), "bone": ("bone",), "body": ("body",),
}
#: organs searched for a focal lesion by segmenting the organ, then a lesion within it
LESION_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")
#: MR sequences in the order a hyperintense lesion is searched on (others come after, T1 last)
SEQUENCE_PREFERENCE = ("FLAIR", "T2")
#: a change of at least this many mm, or `GROWTH_PCT` per cent, of the longest diameter is growth
GROWTH_MM, GROWTH_PCT = 1.0, 10.0
#: the cardiothoracic ratio above which the heart is enlarged
CTR_ENLARGED = 0.5

_GROWTH = re.compile(r"\b(grow|grew|growth|change[sd]?|compar|prior|previous|interval|progress|follow.?up|"
                     r"increase|decrease|shrink|shrunk|stable)", re.I)
_CTR = re.compile(r"cardio.?thoracic|\bctr\b|cardiomegaly|heart size|enlarged heart|size of the heart", re.I)
_LESION = re.compile(r"\b(nodules?|mass(es)?|lesions?|tumou?rs?|opacit(y|ies)|metastas[ie]s)\b", re.I)
_SEQUENCE_Q = re.compile(r"\bsequence\b.*\b(bright\w*|hyperintens\w*|conspicuous|signal)|"
                         r"\b(bright\w*|hyperintens\w*|conspicuous)\b.*\bsequence\b", re.I | re.S)
#: questions about every lesion together (MS lesion load): the candidates are measured as one
_BURDEN = re.compile(r"\b(burden|load|total|all (the )?lesions|lesions?'? (combined|together))\b", re.I)
_ORGAN_SIZE = re.compile(r"\b(volume|size|how (large|big)|measure)", re.I)
_MODALITY = re.compile(r"\b(modality|what (kind|type|sort) of (image|scan|study|imaging)|which imaging|"
                       r"imaging technique|is this (an? )?(ct|mri|mr|x-?ray|radiograph))", re.I)
_PLANE = re.compile(r"\b(plane|orientation|axial|coronal|sagittal|view)\b", re.I)
#: a study line of the prompt: 2-D images give width x height, 3-D volumes z x y x x
_STUDY = re.compile(r"^- volume (\w+): (\w+), (2-D|3-D)(?: image)? (\d+)x(\d+)(?:x(\d+))?", re.M)
_CAPTION = re.compile(r"Image (\d+) \((\d+)x(\d+)\), view (V\d+): (.*)")
_CAPTION_VOLUME = re.compile(r"^volume (\w+) \(")
#: "volume 1 is the FLAIR", "volume 0: T2", "volume 2 the T1 sequence"
_NAMED_SEQUENCE = re.compile(r"\bvolume (\w+)\s*(?:is|:|=)?\s*(?:the |an? )?(t1|t2|flair)\b", re.I)

# -- what a question asks (read from its interrogative sentences and answer instructions) -----------
_AUXILIARY = re.compile(r"^\W*(is|are|does|do|did|has|have|had|was|were|can|could|any|should|will|would)\b", re.I)
_ASK_YES_NO = re.compile(r"\banswer (with )?yes or no\b", re.I)
_ASK_SIDE = re.compile(r"\b(which|what) (side|lung|hemisphere|kidney|lobe)\b|\bwhere\b|\bleft or right\b|"
                       r"\bright or left\b|\bside\b|\blateral", re.I)
_ASK_SIZE = re.compile(r"\b(how (large|big)|size|diameter|measure\w*|dimension\w*)\b", re.I)
_ASK_DIAMETER = re.compile(r"\b(diameter|how (long|wide)|length|width)\b", re.I)
_ASK_VOLUME = re.compile(r"\bvolume\b", re.I)
_ASK_AMOUNT = re.compile(r"\b(how (many|much)|by what|what is the (change|difference|growth)|"
                         r"change in|difference in)\b", re.I)
_ASK_PERCENT = re.compile(r"%|\bper ?cent", re.I)
_ASK_WHICH = re.compile(r"\b(which|what)\b", re.I)
#: a unit the question asks for: "in mL", "in mm", "unit (mL)"
_ASK_UNIT = re.compile(r"(?:\bin|\bunits?\s*\(?|\bunits? of)\s*(ml|millilit(?:er|re)s?|cm3|cm³|cc|mm3|mm³|"
                       r"cubic millimet(?:er|re)s?|mm|millimet(?:er|re)s?|cm|centimet(?:er|re)s?)(?![\w³])", re.I)
_UNIT_KEYS = {"ml": "mL", "cc": "mL", "cm3": "mL", "cm³": "mL", "mm3": "mm3", "mm³": "mm3", "mm": "mm", "cm": "cm"}
#: a yes/no question about growth asks about this trend
_ASKED_TREND = (("shrank", re.compile(r"shr[iu]nk|shrank|decreas|smaller|regress|reduc", re.I)),
                ("is stable", re.compile(r"stable|unchanged|same size", re.I)),
                ("changed", re.compile(r"\bchang", re.I)),
                ("grew", re.compile(r"gr[eo]w|increas|larger|bigger|enlarg|progress", re.I)))


@dataclass(frozen=True)
class Asked:
    """What a question asks for, which decides the form of the short answer."""

    yes_no: bool = False
    which: bool = False
    side: bool = False
    size: bool = False
    diameter: bool = False
    volume: bool = False
    amount: bool = False
    percent: bool = False
    unit: str | None = None
    trend: str = "grew"
    named_side: str | None = None

    @classmethod
    def of(cls, question: str) -> "Asked":
        """Read ``question``: its sentences ending in ``?`` (the whole text when none does) say
        what is asked, answer instructions ("Answer yes or no") and units anywhere in it count."""
        sentences = [s.strip() for s in re.findall(r"[^.?!]*\?", question)] or [question]
        asked = " ".join(sentences)
        unit = next((_unit_key(m.group(1)) for m in _ASK_UNIT.finditer(question)), None)
        closed = [s for s in sentences if _AUXILIARY.match(s)]
        # the trend a yes/no question asks about comes from that question ("Did it grow? By how much?")
        trend = next((t for t, rx in _ASKED_TREND if rx.search(closed[0] if closed else asked)), "grew")
        sides = set(re.findall(r"\b(left|right)\b", closed[0].lower())) if closed else set()
        return cls(yes_no=bool(closed) or bool(_ASK_YES_NO.search(question)),
                   named_side=sides.pop() if len(sides) == 1 else None,
                   which=bool(_ASK_WHICH.search(asked)), side=bool(_ASK_SIDE.search(asked)),
                   size=bool(_ASK_SIZE.search(asked)), diameter=bool(_ASK_DIAMETER.search(asked)),
                   volume=bool(_ASK_VOLUME.search(asked)),
                   amount=bool(_ASK_AMOUNT.search(asked)), percent=bool(_ASK_PERCENT.search(asked)),
                   unit=unit, trend=trend)


def _unit_key(word: str) -> str:
    w = word.lower()
    if w.startswith(("millilit", "cubic centi")):
        return "mL"
    if w.startswith("cubic millimet"):
        return "mm3"
    if w.startswith("millimet"):
        return "mm"
    if w.startswith("centimet"):
        return "cm"
    return _UNIT_KEYS.get(w, w)


@dataclass
class Finding:
    """What the tools established, from which the short answer and the option are chosen.

    Attributes:
        cites: evidence ids the answer rests on.
        present: whether the asked finding is there (None when the question is not about presence).
        none_text: set when nothing was found: what to say ("no nodule was found").
        site: what ``side`` qualifies ("lung", "hemisphere"; "" for a bare side).
        side: ``left``, ``right`` or ``midline``; ``leaning`` the side most of a midline region is on.
        diameter_mm: longest axial diameter; volume_mm3: volume (organs summed); size_is_volume:
            "how large" asks for the volume (organs) rather than the diameter (lesions).
        trend: ``grew``, ``shrank`` or ``is stable`` (follow-up); change_mm, change_pct: its size.
        ratio: the cardiothoracic ratio.
        label: a word answer (a sequence or modality name); words: words an option may contain.
    """

    cites: list[str]
    present: bool | None = None
    none_text: str = ""
    site: str = ""
    side: str | None = None
    leaning: str | None = None
    diameter_mm: float | None = None
    volume_mm3: float | None = None
    size_is_volume: bool = False
    trend: str | None = None
    change_mm: float | None = None
    change_pct: float | None = None
    ratio: float | None = None
    label: str | None = None
    words: list[str] = field(default_factory=list)

    def hint(self) -> dict[str, Any]:
        """The `choose_option` hint of this finding."""
        hint: dict[str, Any] = {"words": self.words}
        if self.present is not None:
            hint["yes"] = self.present
        side = self.leaning if self.side == "midline" else self.side
        if side:
            hint["side"] = side
        if self.trend:
            hint["trend"] = self.trend
        value = next((v for v in (self.change_mm, self.ratio, self.diameter_mm,
                                  None if self.volume_mm3 is None else self.volume_mm3 / 1000) if v is not None), None)
        if value is not None:
            hint["value"] = value
        return hint


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


def short_answer(question: str, finding: Finding) -> str:
    """The answer in the form ``question`` asks for, without citations (see the module docstring)."""
    q = Asked.of(question)
    parts: list[str] = []
    if q.yes_no and finding.present is not None:
        # "Is the nodule in the left lung?" is about the side, not only about presence
        side = finding.leaning if finding.side == "midline" else finding.side
        yes = finding.present and (q.named_side is None or side is None or side == q.named_side)
        parts.append(("Yes" if yes else "No")
                     + (f", it {finding.trend}" if finding.trend else ""))
    if finding.none_text:  # nothing was found: there is nothing else to describe
        return parts[0] if parts else finding.none_text[:1].upper() + finding.none_text[1:]
    if finding.label and (q.which or not parts):
        parts.append(finding.label)
    if q.side and finding.side:
        parts.append(f"{finding.side} {finding.site}".strip() if finding.side != "midline" else "midline")
    if finding.ratio is not None:
        parts.append(f"CTR {finding.ratio:.2f}" if parts else f"{finding.ratio:.2f}")
    number = _asked_number(q, finding)
    if number:
        parts.append(number)
    if not parts:  # nothing specific asked ("Tell me about the nodule"): the finding in brief
        parts = [p for p in ("Yes" if finding.present else "",
                             f"{finding.side} {finding.site}".strip() if finding.side else "",
                             _asked_number(Asked(size=True, volume=finding.diameter_mm is None, amount=True), finding))
                 if p]
    return "; ".join(parts)


def _asked_number(q: Asked, f: Finding) -> str:
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


@dataclass
class VolumeInfo:
    id: str
    modality: str
    is_2d: bool
    shape_xyz: tuple[int, ...]


@dataclass
class Shown:
    """An image as captioned for the model."""

    index: int
    view_id: str
    size: tuple[int, int]
    description: str
    volume: str | None
    image: Any = None


@dataclass
class Result:
    """One tool call of an earlier turn and what came back."""

    name: str
    arguments: dict[str, Any]
    text: str
    payload: dict[str, Any]
    images: list[Shown]

    @property
    def error(self) -> str | None:
        return self.text[len("Error: "):] if self.text.startswith("Error: ") else None

    @property
    def evidence_id(self) -> str | None:
        return self.payload.get("evidence_id")

    def measure(self, key: str) -> float | None:
        value = self.payload.get("measurements", {}).get(key)
        return float(value[0]) if value else None

    def fact(self, key: str) -> Any:
        return self.payload.get("data", {}).get(key)


@dataclass
class State:
    """What the planner knows: the question, the study, the initial images, the results so far."""

    question: str
    options: list[str] | None
    volumes: list[VolumeInfo]
    shown: list[Shown]
    results: list[Result]
    targets: list[str] = field(default_factory=list)

    def first_view_of(self, volume_id: str) -> Shown | None:
        return next((s for s in self.shown if s.volume == volume_id), None)

    def cites(self) -> list[str]:
        """Every evidence id produced so far."""
        return [x.evidence_id for x in self.results if x.evidence_id]


@dataclass
class Action:
    """The next turn: tool calls (``calls``), or a final answer.

    A final answer has ``answer`` (the explanation, or the whole text of an abstention) and,
    when the tools established something, ``finding``; `decide` then sets ``tag``, the text of
    the ``<answer>`` tag.
    """

    thought: str
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    finding: Finding | None = None
    tag: str = ""
    more_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return ([(self.tool, self.arguments)] if self.tool else []) + self.more_calls


class RulesBackend:
    """Deterministic planner (see the module docstring); a `Backend` with an identity image frame."""

    name = "rules"
    native_tools = False

    def __init__(self, model_id: str = "mmreason-rules-v1", **_: Any) -> None:
        self.model_id = model_id

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], *, tools: list[dict] | None = None,
                 max_new_tokens: int = 512, temperature: float = 0.0, seed: int | None = None,
                 stop: tuple[str, ...] = DEFAULT_STOP) -> list[str]:
        """The next turn of each conversation (sampling settings do not apply: it is deterministic)."""
        return [render(decide(read_state(conv, tools))) for conv in conversations]


# -- reading the conversation ---------------------------------------------------------------
def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _shown_in(parts: list[dict]) -> list[Shown]:
    """Captioned images of a message: each caption text part is followed by its image part."""
    shown = []
    for i, part in enumerate(parts):
        m = _CAPTION.search(part.get("text", "")) if part.get("type") == "text" else None
        if not m:
            continue
        desc = m.group(5).strip()
        vm = _CAPTION_VOLUME.match(desc)
        image = parts[i + 1].get("image") if i + 1 < len(parts) and parts[i + 1].get("type") == "image" else None
        shown.append(Shown(int(m.group(1)), m.group(4), (int(m.group(2)), int(m.group(3))), desc,
                           vm.group(1) if vm else None, image))
    return shown


def read_state(conversation: list[dict], tools: list[dict] | None = None) -> State:
    system = "".join(p.get("text", "") for p in _parts(conversation[0]))
    user_parts = _parts(conversation[1])
    user = "".join(p.get("text", "") for p in user_parts if p.get("type") == "text")
    qm = re.search(r"Question: (.*?)(?:\nOptions:\n(.*?)\nAnswer with the option letter\.|$)", user, re.S)
    question = qm.group(1).strip() if qm else user
    options = [re.sub(r"^[A-Z]\. ", "", line) for line in qm.group(2).splitlines()] if qm and qm.group(2) else None
    volumes = []
    for m in _STUDY.finditer(user):
        dims = tuple(int(v) for v in m.groups()[3:] if v)
        volumes.append(VolumeInfo(m.group(1), m.group(2), m.group(3) == "2-D",
                                  dims if m.group(3) == "2-D" else dims[::-1]))
    results: list[Result] = []
    pending: list[tuple[str, dict]] = []
    for msg in conversation[2:]:
        if msg.get("role") == "assistant":
            text = "".join(p.get("text", "") for p in _parts(msg))
            pending = [(c.name, c.arguments) for c in parse_tool_calls(text)]
        elif msg.get("role") == "tool":
            parts = _parts(msg)
            text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
            name, args = pending.pop(0) if pending else (msg.get("name", ""), {})
            results.append(Result(name, args, text, parse_result_line(text) or {}, _shown_in(parts)))
    return State(question, options, volumes, _shown_in(user_parts), results, _segment_targets(system, tools))


def _segment_targets(system: str, tools: list[dict] | None) -> list[str]:
    specs = list(tools or [])
    for line in system.splitlines():
        if line.startswith("{") and '"function"' in line:
            specs.append(json.loads(line))
    for spec in specs:
        fn = spec.get("function", spec)
        if fn.get("name") == "segment":
            return list(fn.get("parameters", {}).get("properties", {}).get("target", {}).get("enum", []))
    return []


# -- planning -------------------------------------------------------------------------------
def decide(state: State) -> Action:
    """The next action; a final answer with a finding gets its ``tag`` (short answer + citations)."""
    action = plan(state)
    if action.tool is not None or action.finding is None:
        action.tag = action.answer
        return action
    finding = action.finding
    tag = short_answer(state.question, finding)
    if state.options:
        letter = choose_option(state.options, finding.hint())
        if letter:
            tag = f"{letter}. {state.options[ord(letter) - ord('A')]}"
    cites = list(dict.fromkeys(finding.cites))
    action.tag = tag + (f" [{', '.join(cites)}]" if cites else "")
    return hedge(state, action, tag)


def hedge(state: State, action: Action, tag: str) -> Action:
    """Qualify an answer by the quality of the evidence it rests on (`grounding.quality`).

    Only the caveats that bear on what the answer states count: an assumed spacing on a mm or mL
    figure, an assumed orientation on a side. An ``implausible`` piece of evidence, or a doubtful
    empty search (a "no" is only as good as the region searched: an implausible lung mask makes
    "no nodule" doubtful), turns the answer into a reasoned refusal; a ``doubtful`` one keeps the
    answer and says why it is uncertain.
    """
    finding = action.finding
    assert finding is not None
    level, reasons, empty_doubted = "ok", [], False
    cited = set(finding.cites)
    states_size = bool(re.search(r"\d\s*(mm|cm|ml|mm2|mm3)\b", tag, re.I))
    states_side = bool(re.search(r"\b(left|right)\b", tag, re.I))
    for result in state.results:
        quality = result.payload.get("quality")
        if result.evidence_id not in cited or not quality:
            continue
        for reason in quality.get("reasons", []):
            if ("spacing assumed" in reason and not states_size) or ("orientation assumed" in reason
                                                                     and not states_side):
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
    action.tag += f" (uncertain: {reasons[0]})"
    return action


def choose_option(options: list[str], hint: dict[str, Any]) -> str | None:
    """The letter of the option that matches the finding (``hint``), or None when none does.

    ``hint`` keys: ``yes`` (bool, for yes/no options), ``side`` (left/right), ``trend``
    (grew/shrank/is stable), ``words`` (any of them in the option), ``value`` (the nearest number).
    """
    norm = [re.sub(r"[^a-z0-9.\- ]", "", o.lower()).strip() for o in options]
    letters = [chr(ord("A") + i) for i in range(len(options))]

    def pick(pred: Any) -> str | None:
        hits = [letter for letter, o in zip(letters, norm) if pred(o)]
        return hits[0] if len(hits) == 1 else None

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
    if hint.get("value") is not None:
        numbers = [re.search(r"-?\d+(?:\.\d+)?", o) for o in norm]
        if all(numbers):
            dist = [abs(float(m.group(0)) - float(hint["value"])) for m in numbers]  # type: ignore[union-attr]
            return letters[int(np.argmin(dist))]
    return None


def plan(state: State) -> Action:
    q = state.question
    three_d = [v for v in state.volumes if not v.is_2d]
    if len(state.volumes) >= 2 and _GROWTH.search(q):
        return plan_growth(state)
    if _CTR.search(q):
        return plan_ctr(state)
    modality = three_d[0].modality if three_d else None
    if _SEQUENCE_Q.search(q) and modality == "MR":
        return plan_sequence(state)
    organs = _organ_in(q)
    if _LESION.search(q):
        if modality == "CT" and organs and organs[0] in LESION_ORGANS:
            return plan_organ_lesion(state, organs[0])
        return plan_lesion(state) if modality in ("CT", "MR") else cannot(
            state, "lesion questions are answered on 3-D CT and MR only")
    if organs and _ORGAN_SIZE.search(q):
        return plan_organ(state, organs)
    if _MODALITY.search(q) or _PLANE.search(q):
        return plan_modality(state)
    return cannot(state, "it is not one of the question types the rules backend handles (lung nodule or "
                         "lesion presence, side and size; organ volume; lesion growth between two studies; "
                         "cardiothoracic ratio; the MR sequence a lesion is brightest on; modality and plane)")


def cannot(state: State, why: str) -> Action:
    return Action(thought="This question is outside what the rules backend can check with the tools.",
                  answer=f"I cannot answer this question with the rules backend: {why}. Run mmreason with "
                         f"--model to use a vision-language model.")


def _failed(state: State) -> Action | None:
    """An answer explaining the last error, when a tool call of the last turn failed."""
    failed = next((x for x in reversed(state.results) if x.error), None)
    if failed is not None:
        return Action(thought="A tool call failed, so the question cannot be answered reliably.",
                      answer=f"I cannot answer: the {failed.name} step failed ({failed.error}).")
    return None


def _organ_in(question: str) -> tuple[str, ...] | None:
    q = question.lower()
    for word, targets in ORGANS.items():  # longer phrases ("left lung") come before "lung"
        if re.search(rf"\b{word}s?\b", q):
            return targets
    return None


def _fmt_mm(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} mm"


def _fmt_volume(mm3: float | None) -> str:
    if mm3 is None:
        return "n/a"
    return f"{mm3 / 1000:.2f} mL ({mm3:.0f} mm3)" if mm3 >= 1000 else f"{mm3:.0f} mm3 ({mm3 / 1000:.3f} mL)"


def _lesion_target(state: State, question: str) -> str:
    """``nodule`` (4-30 mm) for a question about nodules only; ``lesion`` (masses up to 100 mm
    too) when it names a mass, tumour or lesion, so "nodule or mass" finds a 5 cm tumour."""
    asks_nodule = re.search(r"nodul|lung|pulmonary", question, re.I)
    word = "nodule" if asks_nodule and not re.search(r"\b(mass|tumou?r|lesion|cancer|neoplasm)", question, re.I) \
        else "lesion"
    return word if not state.targets or word in state.targets else "lesion"


def _is_mr(state: State) -> bool:
    return next((v.modality for v in state.volumes if not v.is_2d), None) == "MR"


def sequence_names(state: State) -> dict[str, str]:
    """Volume id -> sequence name (``T1``, ``T2``, ``FLAIR``) as the question names them."""
    ids = {v.id for v in state.volumes}
    return {m.group(1): m.group(2).upper() for m in _NAMED_SEQUENCE.finditer(state.question) if m.group(1) in ids}


def search_order(state: State) -> list[VolumeInfo]:
    """The 3-D volumes a lesion is searched on, in order: one for CT, every MR sequence for MR
    (FLAIR, then T2, then the unnamed ones, T1 last: the sequences a lesion is brightest on first)."""
    three_d = [v for v in state.volumes if not v.is_2d]
    if not _is_mr(state) or len(three_d) < 2:
        return three_d[:1]
    names = sequence_names(state)
    rank = {name: i for i, name in enumerate(SEQUENCE_PREFERENCE)}
    return sorted(three_d, key=lambda v: rank.get(names.get(v.id, ""),
                                                  len(rank) + (1 if names.get(v.id) == "T1" else 0)))


def _on(state: State, volume: VolumeInfo, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with the ``view_id`` that selects ``volume``, when the study has several."""
    shown = state.first_view_of(volume.id)
    return arguments | {"view_id": shown.view_id} if len(state.volumes) > 1 and shown else arguments


def _searches(state: State, order: list[VolumeInfo]) -> tuple[int, Action | None]:
    """Run the unprompted lesion search over ``order`` until one finds something.

    Returns ``(n, action)``: ``n`` leading results are empty searches, and ``action`` is the next
    search (or None when a search found something or every volume was searched).
    """
    r = state.results
    target = _lesion_target(state, state.question)
    n = 0
    while n < len(r) and n + 1 < len(order) and r[n].name == "segment" and not r[n].error and not r[n].fact("voxels"):
        n += 1
    if n == len(r) and n < len(order):
        where = f" on volume {order[n].id}" + (f" ({sequence_names(state)[order[n].id]})"
                                               if order[n].id in sequence_names(state) else "")
        first = "Nothing was found there; I will search the next sequence" if n else "I will segment"
        kind = "MR" if _is_mr(state) else "CT"
        return n, Action(f"{first}{where if len(order) > 1 else ''}: {target} candidates in the whole {kind} "
                         f"volume.", "segment", _on(state, order[n], {"target": target}))
    return n, None


def plan_lesion(state: State) -> Action:
    """Segment candidates (3-D); if several, point at the largest on the overlay; measure; crop; answer."""
    target = _lesion_target(state, state.question)
    mr = _is_mr(state)
    order = search_order(state)
    empty, search = _searches(state, order)
    if search is not None:
        return search
    if failed := _failed(state):
        return failed
    r = state.results[empty:]
    seg_all = r[0]
    site = "hemisphere" if mr else "lung"
    if not seg_all.fact("voxels"):
        region = "the brain" if mr else "the lungs"
        cites = state.cites()
        return Action("The segmenter found no candidate.",
                      answer=f"No {target} was found in {region} by the {seg_all.fact('segmenter')} segmenter "
                             f"[{', '.join(cites)}].",
                      finding=Finding(cites, present=False, none_text=f"no {target} was found", site=site))
    n = seg_all.fact("components") or 1
    focus, rest = seg_all, r[1:]
    if n > 1 and not _BURDEN.search(state.question):
        if rest and rest[0].name == "segment":
            focus, rest = rest[0], rest[1:]
        elif not rest and seg_all.images and seg_all.images[0].image is not None:
            point = largest_overlay_blob(np.asarray(seg_all.images[0].image.convert("RGB")))
            if point is not None:
                return Action(f"{n} candidates were found; I will select the largest one, at {point} on the "
                              f"overlay {seg_all.images[0].view_id}.", "segment",
                              {"target": target, "view_id": seg_all.images[0].view_id, "point_2d": point})
    if not rest:
        return Action(f"I will measure {focus.evidence_id}.", "measure", {"evidence_id": focus.evidence_id})
    meas = rest[0]
    if len(rest) == 1 and focus.images and focus.fact("bbox_voxels"):
        box = _overlay_box(state, focus)
        if box is not None:
            return Action("I will zoom into the candidate on the overlay to show it.", "crop",
                          {"view_id": focus.images[0].view_id, "bbox_2d": box})
    side = _stated_side(meas.fact("laterality")) or _stated_side(focus.fact("laterality"))
    where = ("at the midline" if side == "midline" else f"in the {side} {site}" if side
             else f"in the {site} (its side is not stated: the image orientation is assumed)")
    if focus is seg_all and n > 1:
        found = f"{n} candidate regions were found, measured together: they lie {where}"
    elif n > 1:
        found = f"{n} candidate regions were found [{seg_all.evidence_id}]; the largest, the {target}, is {where}"
    else:
        found = f"There is one {target} {where}"
    return _lesion_answer(state, found, meas, side, site)


def _stated_side(side: Any) -> str | None:
    """A side the tools stated (``unknown``, from an assumed orientation, is none)."""
    return side if side in ("left", "right", "midline") else None


def _lesion_answer(state: State, found: str, meas: Result, side: str | None, site: str) -> Action:
    """The answer about a measured lesion: position, diameters, volume, mean intensity, citations."""
    cx, cy, cz = (meas.measure(f"centroid_{a}_mm") for a in "xyz")
    cites = state.cites()
    mean = meas.measure("mean_intensity")
    unit = "HU" if meas.payload.get("measurements", {}).get("mean_intensity", [0, "HU"])[1] == "HU" else "a.u."
    text = (f"{found}, centred at x={cx:+.1f}, y={cy:+.1f}, z={cz:+.1f} mm (LPS); "
            f"longest axial diameter {_fmt_mm(meas.measure('longest_diameter_mm'))} x "
            f"{_fmt_mm(meas.measure('perpendicular_diameter_mm'))}, volume {_fmt_volume(meas.measure('volume_mm3'))}"
            + (f", mean {mean:.0f} {unit}" if mean is not None else "") + f" [{', '.join(cites)}].")
    fraction_left = meas.fact("fraction_left")
    leaning = None if fraction_left is None else ("left" if fraction_left > 0.5 else "right")
    return Action("The measurements give the side, position and size.", answer=text,
                  finding=Finding(cites, present=True, site=site, side=side, leaning=leaning,
                                  diameter_mm=meas.measure("longest_diameter_mm"),
                                  volume_mm3=meas.measure("volume_mm3")))


def plan_organ_lesion(state: State, organ: str) -> Action:
    """Segment the organ, then a lesion within it; measure it, show it, answer."""
    r = state.results
    name = _organ_name(organ)
    if state.targets and organ not in state.targets:
        return cannot(state, f"the segment tool has no '{organ}' target with this segmenter")
    if not r:
        return Action(f"I will segment the {name} first, to search it for a lesion.", "segment", {"target": organ})
    if failed := _failed(state):
        return failed
    if not r[0].fact("voxels"):
        return Action("The organ mask is empty.",
                      answer=f"I cannot answer: the {name} was not found [{r[0].evidence_id}].")
    if len(r) == 1:
        return Action(f"I will segment a focal lesion within the {name} ({r[0].evidence_id}).", "segment",
                      {"target": "lesion", "within": r[0].evidence_id})
    seg = r[1]
    if not seg.fact("voxels"):
        cites = state.cites()
        return Action("Nothing in the organ differs from it.",
                      answer=f"No focal lesion was found in the {name} [{', '.join(cites)}].",
                      finding=Finding(cites, present=False, none_text=f"no focal lesion was found in the {name}"))
    if len(r) == 2:
        return Action(f"I will measure the lesion ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    meas = r[2]
    if len(r) == 3 and seg.images and seg.fact("bbox_voxels"):
        box = _overlay_box(state, seg)
        if box is not None:
            return Action("I will zoom into the lesion on the overlay to show it.", "crop",
                          {"view_id": seg.images[0].view_id, "bbox_2d": box})
    action = _lesion_answer(state, f"There is one lesion in the {name}", meas, meas.fact("laterality"), "")
    action.finding.side = None  # type: ignore[union-attr]  # the organ says where it is
    return action


def largest_overlay_blob(rgb: np.ndarray) -> list[float] | None:
    """Centre ``[x, y]`` (pixel edge frame) of the largest red region of a segment overlay image.

    The segment tool paints the mask red (fill blends (255, 48, 48) at 40 %, outline opaque), so
    red exceeds green by more than 80 inside the mask and by much less elsewhere.
    """
    red = (rgb[..., 0].astype(np.int16) - rgb[..., 1].astype(np.int16)) >= 60
    labels, n = ndimage.label(red)
    if n == 0:
        return None
    sizes = ndimage.sum(red, labels, range(1, n + 1))
    ys, xs = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return [round(float(xs.mean()) + 0.5, 1), round(float(ys.mean()) + 0.5, 1)]


def _voxel_box(vol: VolumeInfo, size: tuple[int, int], bbox_voxels: list[list[int]], scale: float,
               min_pad: float = 8.0) -> list[float]:
    """A box (pixels of an axial image of ``size`` showing ``vol``) around voxel bounds (z, y, x),
    padded on each side by ``scale`` times the region's size (at least ``min_pad`` pixels)."""
    (_, _), (y0, y1), (x0, x1) = bbox_voxels
    w, h = size
    sx, sy = w / vol.shape_xyz[0], h / vol.shape_xyz[1]
    pad_x, pad_y = max(min_pad, scale * (x1 - x0) * sx), max(min_pad, scale * (y1 - y0) * sy)
    return [round(max(0.0, x0 * sx - pad_x), 1), round(max(0.0, y0 * sy - pad_y), 1),
            round(min(float(w), x1 * sx + pad_x), 1), round(min(float(h), y1 * sy + pad_y), 1)]


def _overlay_box(state: State, seg: Result) -> list[float] | None:
    """Box (overlay pixels) around the segmented region, with a margin, on the axial overlay."""
    vol = next((v for v in state.volumes if v.id == str(seg.fact("volume"))), None)
    if vol is None or vol.is_2d:
        return None
    return _voxel_box(vol, seg.images[0].size, seg.fact("bbox_voxels"), 1.0)


def plan_growth(state: State) -> Action:
    """Segment and measure the lesion on the first two volumes (prior, current); report the change.

    When the unprompted search finds nothing on the current study but found the lesion on the
    prior, the current study is looked at where the lesion was: an axial view through the prior
    lesion's centre, then a segmentation inside a box around the prior lesion's position (the
    studies share a grid), as a reader compares the same location.
    """
    r = state.results
    target = _lesion_target(state, state.question)
    vols = state.volumes[:2]
    step = len(r)
    if failed := _failed(state):
        return failed
    if step in (0, 2):
        vol = vols[step // 2]
        shown = state.first_view_of(vol.id)
        if shown is None:
            return cannot(state, f"volume {vol.id} has no view to select it with")
        when = "prior (first)" if step == 0 else "current (second)"
        if step == 2 and not r[0].fact("voxels"):
            return Action("Nothing was found on the prior study.",
                          answer=f"I cannot determine the change: no {target} was found on the prior study "
                                 f"[{r[0].evidence_id}].")
        return Action(f"I will segment the {target} on the {when} study, volume {vol.id}.", "segment",
                      {"target": target, "view_id": shown.view_id})
    if step == 3 and not r[2].fact("voxels"):
        centre = r[1].fact("centroid_voxel")
        if vols[0].shape_xyz != vols[1].shape_xyz or not centre:
            return Action("Nothing was found on the current study.",
                          answer=f"I cannot determine the change: no {target} was found on volume "
                                 f"{vols[1].id} [{r[2].evidence_id}].")
        z = int(round(centre[0]))
        return Action(f"No {target} was found by the search of the current study [{r[2].evidence_id}]; I will look "
                      f"at the slice where it was on the prior study (axial slice {z}).", "view",
                      {"volume": vols[1].id, "plane": "axial", "index": z})
    if step == 4 and r[2].fact("voxels") is not None and not r[2].fact("voxels"):
        view = r[3].images[0] if r[3].images else None
        if view is None:
            return cannot(state, "the view of the current study came back without an image")
        _, cy, cx = r[1].fact("centroid_voxel")
        sx, sy = view.size[0] / vols[1].shape_xyz[0], view.size[1] / vols[1].shape_xyz[1]
        point = [round((cx + 0.5) * sx, 1), round((cy + 0.5) * sy, 1)]
        return Action(f"I will segment the {target} at its prior position, {point} on {view.view_id}.",
                      "segment", {"target": target, "view_id": view.view_id, "point_2d": point})
    segs = [x for x in r if x.name == "segment"]
    measures = [x for x in r if x.name == "measure"]
    if len(measures) < len(segs) and len(measures) < 2:
        seg = segs[-1]
        if not seg.fact("voxels"):
            return Action("Nothing was found on the current study.",
                          answer=f"I cannot determine the change: no {target} was found on volume "
                                 f"{vols[1].id} where it was on the prior study [{', '.join(state.cites())}].")
        return Action(f"I will measure it ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    m0, m1 = measures[0], measures[1]
    d0, d1 = m0.measure("longest_diameter_mm"), m1.measure("longest_diameter_mm")
    v0, v1 = m0.measure("volume_mm3"), m1.measure("volume_mm3")
    dd, pct = d1 - d0, 100.0 * (d1 - d0) / d0 if d0 else float("nan")
    vpct = 100.0 * (v1 - v0) / v0 if v0 else float("nan")
    trend = ("grew" if dd >= GROWTH_MM or pct >= GROWTH_PCT
             else "shrank" if dd <= -GROWTH_MM or pct <= -GROWTH_PCT else "is stable")
    side = m1.fact("laterality")
    cites = [m0.evidence_id, m1.evidence_id]
    where = f" (in the {side} lung)" if side in ("left", "right") and target == "nodule" else ""
    text = (f"The {target}{where} {trend}: longest axial diameter {d0:.1f} mm [{m0.evidence_id}] -> {d1:.1f} mm "
            f"[{m1.evidence_id}] ({dd:+.1f} mm, {pct:+.0f}%); volume {v0:.0f} -> {v1:.0f} mm3 ({vpct:+.0f}%).")
    asked = Asked.of(state.question).trend
    yes = trend != "is stable" if asked == "changed" else trend == asked
    return Action("Both time points are measured.", answer=text,
                  finding=Finding([c for c in cites if c], present=yes, trend=trend, change_mm=dd, change_pct=pct,
                                  side=side, site="lung" if target == "nodule" else ""))


def plan_organ(state: State, organs: tuple[str, ...]) -> Action:
    """Segment and measure each organ (both kidneys for "kidneys"); report volumes and their sum."""
    r = state.results
    missing = [o for o in organs if state.targets and o not in state.targets]
    if missing:
        return cannot(state, f"the segment tool has no '{missing[0]}' target with this segmenter (targets: "
                             f"{', '.join(state.targets)}); an organ segmenter such as --segmenter "
                             f"totalsegmentator provides it")
    if failed := _failed(state):
        return failed
    step = len(r)
    if step < 2 * len(organs):
        organ = organs[step // 2]
        if step % 2 == 0:
            return Action(f"I will segment the {_organ_name(organ)} in 3-D.", "segment", {"target": organ})
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot determine it: the {_organ_name(organ)} was not "
                                                       f"found [{seg.evidence_id}].")
        return Action("I will measure the mask.", "measure", {"evidence_id": seg.evidence_id})
    parts, total = [], 0.0
    for k, organ in enumerate(organs):
        seg, meas = r[2 * k], r[2 * k + 1]
        vol_ml = meas.measure("volume_ml")
        size = (f"volume {vol_ml:.1f} mL ({meas.measure('volume_mm3'):.0f} mm3)" if vol_ml is not None
                else f"area {meas.measure('area_mm2'):.0f} mm2")
        total += meas.measure("volume_mm3") or 0.0
        parts.append(f"the {_organ_name(organ)} {size}; longest axial diameter "
                     f"{_fmt_mm(meas.measure('longest_diameter_mm'))} [{seg.evidence_id}, {meas.evidence_id}]")
    text = "; ".join(parts)
    text = text[0].upper() + text[1:] + (f"; together {total / 1000:.1f} mL." if len(organs) > 1 else ".")
    single = r[1].measure("longest_diameter_mm") if len(organs) == 1 else None
    return Action("The measurements answer the question.", answer=text,
                  finding=Finding(state.cites(), volume_mm3=total if total else None, diameter_mm=single,
                                  size_is_volume=True))


def _organ_name(target: str) -> str:
    """``kidney_left`` -> ``left kidney``; ``liver`` -> ``liver``."""
    if target.endswith(("_left", "_right")):
        organ, side = target.rsplit("_", 1)
        return f"{side} {organ}"
    return target.replace("_", " ")


def plan_modality(state: State) -> Action:
    r = state.results
    vol = state.volumes[0]
    if not r:
        args = {} if not vol.is_2d else {"plane": "axial", "mode": "slice"}
        return Action("I will open the image to check its type and plane.", "view", args)
    if failed := _failed(state):
        return failed
    names = {"CT": "a CT scan", "MR": "an MRI", "XR": "an X-ray (radiograph)", "US": "an ultrasound image",
             "PT": "a PET scan"}
    what = names.get(vol.modality, f"a {vol.modality} image")
    if vol.is_2d:
        plane = "a frontal (coronal-plane) projection" if vol.modality == "XR" else "a single 2-D image"
        kind = "2-D"
    else:
        plane = "axial (the volume is shown in axial, coronal and sagittal planes)"
        kind = "3-D volume"
    text = f"This is {what}, {kind}; plane: {plane} [{r[0].evidence_id}]."
    modality_word = {"CT": "ct", "MR": "mri", "XR": "x-ray"}.get(vol.modality, vol.modality.lower())
    plane_word = "axial" if not vol.is_2d else "frontal"
    asks_plane = bool(_PLANE.search(state.question)) and not _MODALITY.search(state.question)
    label = f"{plane_word} plane" if asks_plane else what[what.index(" ") + 1:]
    return Action("The study header and the view give modality and plane.", answer=text,
                  finding=Finding([r[0].evidence_id] if r[0].evidence_id else [], label=label,
                                  present=vol.modality.lower() in state.question.lower() or None,
                                  words=[modality_word, vol.modality.lower(), "axial" if not vol.is_2d else "pa"]))


def plan_sequence(state: State) -> Action:
    """Which MR sequence shows the lesion brightest relative to the brain (see the module docstring).

    One turn segments the hyperintense lesion on every sequence; one views, on each sequence where
    it was found, the axial slice through its centre; one measures each lesion and the whole slice;
    the answer is the sequence with the highest lesion-to-slice ratio.
    """
    r = state.results
    mr = [v for v in state.volumes if not v.is_2d]
    names = sequence_names(state)
    if not r:
        calls = [("segment", _on(state, v, {"target": "lesion"})) for v in mr]
        return Action("I will segment the hyperintense lesion on every sequence.", calls[0][0], calls[0][1],
                      more_calls=calls[1:])
    if failed := _failed(state):
        return failed
    segs = r[:len(mr)]
    found = [(v, seg) for v, seg in zip(mr, segs) if seg.fact("voxels")]
    if not found:
        return Action("No sequence shows a hyperintense lesion.",
                      answer=f"No hyperintense lesion was found on any sequence [{', '.join(state.cites())}].",
                      finding=Finding(state.cites(), present=False, none_text="no hyperintense lesion was found"))
    views = r[len(mr):len(mr) + len(found)]
    if not views:
        calls = []
        for v, seg in found:
            (z0, z1), _, _ = seg.fact("bbox_voxels")
            calls.append(("view", {"volume": v.id, "plane": "axial", "index": (z0 + z1 - 1) // 2}))
        return Action("I will view the axial slice through the lesion on each sequence where it was found.",
                      calls[0][0], calls[0][1], more_calls=calls[1:])
    measures = r[len(mr) + len(found):]
    if not measures:
        calls = []
        for (_, seg), view in zip(found, views):
            shown = view.images[0]
            calls.append(("measure", {"evidence_id": seg.evidence_id}))
            calls.append(("measure", {"view_id": shown.view_id,
                                      "bbox_2d": [0.0, 0.0, float(shown.size[0]), float(shown.size[1])]}))
        return Action("I will measure the mean intensity of each lesion and of the whole slice through it.",
                      calls[0][0], calls[0][1], more_calls=calls[1:])
    ratios, lines = {}, []
    for k, (v, seg) in enumerate(found):
        lesion, whole = measures[2 * k], measures[2 * k + 1]
        name = names.get(v.id, f"volume {v.id}")
        ratio = (lesion.measure("mean_intensity") or 0.0) / max(whole.measure("mean_intensity") or 0.0, 1e-6)
        ratios[name] = ratio
        lines.append(f"{name}: lesion {lesion.measure('mean_intensity'):.0f} / slice "
                     f"{whole.measure('mean_intensity'):.0f} = {ratio:.2f} [{lesion.evidence_id}, {whole.evidence_id}]")
    missing = [names.get(v.id, f"volume {v.id}") for v, seg in zip(mr, segs) if not seg.fact("voxels")]
    best = max(ratios, key=ratios.get)  # type: ignore[arg-type]
    text = ("Mean intensity of the lesion relative to the whole axial slice through it: " + "; ".join(lines)
            + (f"; not hyperintense on {', '.join(missing)}" if missing else "")
            + f". The lesion is brightest relative to the brain on {best}.")
    return Action("Every sequence is measured.", answer=text, finding=Finding(state.cites(), label=best, words=[best]))


#: the two segmentations of the cardiothoracic ratio: target, what its width measures
CTR_STEPS = (("lungs", "thoracic width: the lung fields' outer margins, at the inner rib margins"),
             ("heart", "cardiac width: the cardiac silhouette's right and left borders"))


def plan_ctr(state: State) -> Action:
    """Cardiothoracic ratio on a radiograph: segment lungs and heart, measure both widths, divide."""
    r = state.results
    vol = next((v for v in state.volumes if v.is_2d), None)
    if vol is None:
        return cannot(state, "the cardiothoracic ratio is measured on a 2-D chest radiograph")
    missing = [t for t, _ in CTR_STEPS if state.targets and t not in state.targets]
    if missing:
        return cannot(state, f"the segment tool has no '{missing[0]}' target with this segmenter")
    if failed := _failed(state):
        return failed
    step = len(r)
    if step < 2 * len(CTR_STEPS):
        target, what = CTR_STEPS[step // 2]
        if step % 2 == 0:
            on = f" (volume {vol.id})" if len(state.volumes) > 1 else ""
            return Action(f"I will segment the {target} on the radiograph{on} ({what}).", "segment",
                          _on(state, vol, {"target": target}))
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot answer: no {target} was found [{seg.evidence_id}].")
        return Action(f"I will measure the left-right width of {seg.evidence_id}.", "measure",
                      {"evidence_id": seg.evidence_id})
    thor, card = r[1].measure("width_mm"), r[3].measure("width_mm")
    if not thor or not card:
        return cannot(state, "the measurements did not return left-right widths")
    ratio = card / thor
    quality = ctr_quality(ratio)
    if not quality.trusted:
        cites = [c for c in (r[2].evidence_id, r[3].evidence_id, r[0].evidence_id, r[1].evidence_id) if c]
        return Action("The measured ratio is not anatomically plausible.",
                      answer=f"I cannot answer reliably: {quality.reasons[0]} (cardiac width {card:.1f} mm / "
                             f"thoracic width {thor:.1f} mm) [{', '.join(cites)}].")
    enlarged = ratio > CTR_ENLARGED
    verdict = (f"enlarged (cardiomegaly, ratio > {CTR_ENLARGED})" if enlarged
               else f"within normal limits (ratio <= {CTR_ENLARGED})")
    text = (f"The cardiothoracic ratio is {ratio:.2f}: cardiac width {card:.1f} mm [{r[2].evidence_id}, "
            f"{r[3].evidence_id}] / thoracic width {thor:.1f} mm [{r[0].evidence_id}, {r[1].evidence_id}]; "
            f"the heart size is {verdict}.")
    cites = [r[2].evidence_id, r[3].evidence_id, r[0].evidence_id, r[1].evidence_id]
    return Action("Both widths are measured.", answer=text,
                  finding=Finding([c for c in cites if c], present=enlarged, ratio=ratio))


# -- rendering a turn -----------------------------------------------------------------------
def render(action: Action) -> str:
    """A turn as a model writes it: the thought and the calls, or the explanation and the answer tag."""
    if action.calls:
        blocks = "\n".join(f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>"
                           for n, a in action.calls)
        return f"{action.thought}\n{blocks}"
    if action.finding is None:  # an abstention: the explanation is the answer
        prose = f"{action.answer}\n" if action.tag and action.tag != action.answer else ""
        return f"{action.thought}\n{prose}<answer>{action.tag or action.answer}</answer>"
    return f"{action.answer}\n<answer>{action.tag}</answer>"
