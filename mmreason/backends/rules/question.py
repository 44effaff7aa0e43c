"""What a question is about (its family's cues) and what it asks for (the form of the short answer).

Read from the question text alone, case-insensitively: the study it is about comes from the
loop's objects (`mmreason.backends.rules.state`), never from the wording of the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmreason.quantities import NUMBER, UNIT, UNITS, to_float, unit_key

#: organ words -> canonical segment targets (checked against the segment tool's target list);
#: longer phrases come first ("left kidney" before "kidney")
ORGANS: dict[str, tuple[str, ...]] = {
    "left lung": ("lung_left",), "right lung": ("lung_right",), "lungs": ("lungs",), "lung": ("lungs",),
    "liver": ("liver",), "spleen": ("spleen",), "left kidney": ("kidney_left",),
    "right kidney": ("kidney_right",), "kidney": ("kidney_left", "kidney_right"), "heart": ("heart",),
    "aorta": ("aorta",), "airway": ("airways",), "trachea": ("airways",), "bone": ("bone",), "body": ("body",),
    # adjectives name the organ as well: a "hepatic lesion" is searched in the liver, not the lungs
    "pulmonary": ("lungs",), "hepatic": ("liver",), "splenic": ("spleen",), "renal": ("kidney_left", "kidney_right"),
}

_GROWTH = re.compile(r"\b(grow|grew|growth|change[sd]?|compar|prior|previous|interval|progress|follow.?up|"
                     r"increase|decrease|shrink|shrunk|stable)", re.I)
_CTR = re.compile(r"cardio.?thoracic|\bctr\b|cardiomegaly|heart size|size of the heart"
                  r"|\b(?:enlarged|large|big|wide)\s+(?:heart|cardiac)"
                  r"|\b(?:heart|cardiac(?:\s+(?:silhouette|shadow))?)\b[^.?]{0,20}?\b(?:enlarged|large|big|wide|normal in size)",
                  re.I)
_LESION = re.compile(r"\b(nodules?|mass(es)?|lesions?|tumou?rs?|opacit(y|ies)|metastas[ie]s)\b", re.I)
_SEQUENCE_Q = re.compile(r"\bsequence\b.*\b(bright\w*|hyperintens\w*|conspicuous|signal)|"
                         r"\b(bright\w*|hyperintens\w*|conspicuous)\b.*\bsequence\b", re.I | re.S)
#: questions about every lesion together (MS lesion load): the candidates are measured as one
_BURDEN = re.compile(r"\b(burden|load|total|all (the )?lesions|lesions?'? (combined|together))\b", re.I)
_ORGAN_SIZE = re.compile(r"\b(volume|size|how (large|big)|measure)", re.I)
_MODALITY = re.compile(r"\b(modality|what (kind|type|sort) of (image|scan|study|imaging)|which imaging|"
                       r"imaging technique|is this (an? )?(ct|mri|mr|x-?ray|radiograph))", re.I)
_PLANE = re.compile(r"\b(plane|orientation|axial|coronal|sagittal|view)\b", re.I)
#: "volume 1 is the FLAIR", "volume 0: T2", "volume 2 the T1 sequence"
_NAMED_SEQUENCE = re.compile(r"\bvolume (\w+)\s*(?:is|:|=)?\s*(?:the |an? )?(t1|t2|flair)\b", re.I)
#: counting questions: how many lesions, their number, one or several
_COUNT = re.compile(r"\bhow many\b(?!\s+(mm|cm|ml|millimet\w*|centimet\w*|cc|hu|per ?cent|%|voxels?|slices?)\b)|"
                    r"\bnumber of\b|\bcount\b|\bmultiple\b|\bseveral\b|\bmore than one\b|\bsolitary\b|"
                    r"\bsingle (\w+ )?(lesion|nodule|mass|tumou?r)|\bonly one\b", re.I)
_COUNT_MANY = re.compile(r"\bmultiple\b|\bseveral\b|\bmore than one\b", re.I)
_COUNT_ONE = re.compile(r"\bsolitary\b|\bsingle\b|\bonly one\b", re.I)
#: a mean value over a structure: its attenuation (HU) on CT, its signal (no absolute unit) on MR
_ATTENUATION = re.compile(r"\b(attenuat\w*|densit(y|ies)|hounsfield|hu|ct (numbers?|values?)|intensit\w*|"
                          r"signal)\b", re.I)
#: what a question may ask beyond what the tools measure (presence, side, size, volume, the ratio,
#: the trend): name -> (cue, what it is in words); a family answers one only if it ``supports`` it
BEYOND: dict[str, tuple[re.Pattern[str], str]] = {
    "count": (_COUNT, "a count"),
    # the MR lesion search looks for a hyperintense lesion: "bright" is its own criterion; a mean
    # value over a mask (HU on CT: `attenuation.plan_attenuation`) is "attenuation"; the other
    # intensity words (enhancement, hypodense, fat ...) characterise tissue, which no tool answer states
    "bright": (re.compile(r"\b(hyperintens\w*|bright\w*)", re.I), "how bright a structure is"),
    "attenuation": (_ATTENUATION, "the attenuation or signal of a structure"),
    "intensity": (re.compile(r"\b(\w*dense|hypointens\w*|isointens\w*|enhanc\w*|dark\w*|echogenic\w*|fluid|fat|"
                             r"water|air-?filled)\b", re.I), "the character of a structure's attenuation or signal"),
    "comparison": (re.compile(r"\b(larger|bigger|smaller|greater|higher|lower|longer|shorter|wider|more|less|fewer)"
                              r"\s+than\b(?!\s+one\b)|\bcompared? (to|with)\b|\bversus\b|\bvs\b|"
                              r"\b(same|equal) (size|volume)\b|\b(larger|bigger|smaller|smallest)\b", re.I),
                   "a comparison between structures or with a threshold"),
    "normal": (re.compile(r"\b(ab)?normal\w*", re.I), "whether a structure is normal"),
    "character": (re.compile(r"\b(benign|malignan\w*|diagnos\w*|calcif\w*|spicul\w*|margins?|borders?|shape|"
                             r"round|oval|irregular|smooth|lobulated|well.?defined|ill.?defined|"
                             r"texture|cystic|cysts?|solid|sub-?solid|ground.?glass|cavit\w*|necro\w*|"
                             r"stage|grade|grading|classif\w*|characteri[sz]\w*|appearance|morpholog\w*|"
                             r"(type|kind|sort) of (lesion|nodule|mass|tumou?r|abnormality)|"
                             r"what (abnormality|finding|lesion|pathology)|most likely)\b", re.I),
                  "what a lesion is or looks like"),
    "lobe": (re.compile(r"\b(lobes?|lobar|segmental|couinaud|(upper|lower|middle) (zone|pole|lung|field)s?|apex|"
                        r"apical|bas(e|al)|hilum|hilar|anterior|posterior|superior|inferior|medial|central|"
                        r"peripher\w*)\b", re.I), "a lobe, segment or part of an organ"),
    "distance": (re.compile(r"\b(distance|how far|closest|nearest|adjacent|abut\w*|invad\w*|invasion|touch\w*|"
                            r"near|extend\w*|spread\w*)\b", re.I), "a distance or a relation between structures"),
}
#: sites a lesion may be asked about; each lesion search covers some of them (`lesion.searched_region`)
_SITE = re.compile(r"\b(pancrea\w*|bladder|prostat\w*|adrenal\w*|gall ?bladder|stomach|gastric|bowel|colon\w*|"
                   r"rect(um|al)|intestin\w*|duoden\w*|o?esophag\w*|thyroid|breasts?|bones?|osseous|spin(e|al)|"
                   r"vertebra\w*|ribs?|pelvi[sc]|uter\w*|ovar\w*|lymph\w*|nodes?|mediastin\w*|pleura|pleural|"
                   r"heart|cardiac|aort\w*|trachea\w*|airways?|muscles?|skin|liver|hepatic|spleen|splenic|"
                   r"kidneys?|renal|brain|cerebr\w*|hemispheres?|lungs?|pulmonary|chest|thora\w*|abdom\w*|head|"
                   r"neck)\b", re.I)
_NODULE_ONLY = re.compile(r"nodul|lung|pulmonary", re.I)
_NOT_NODULE = re.compile(r"\b(mass|tumou?r|lesion|cancer|neoplasm)", re.I)

# -- thresholds and comparisons (`mmreason.backends.rules.threshold`) ------------------------------
_MORE = r"larger|bigger|greater|longer|wider|higher|more|heavier"
_LESS = r"smaller|shorter|narrower|lower|less"
#: a comparison with a value: "larger than 10 mm", "over 8 mm", "above 2000 mL", "below 40 HU", "> 1 cm"
_CUT = re.compile(rf"(?:\b(?:(?P<more>{_MORE})|(?P<less>{_LESS}))\s+than|\b(?P<over>above|over|exceed(?:s|ing)?|"
                  rf"in excess of|at least)|\b(?P<under>below|under|at most)|(?P<gt>>=?|\u2265)|(?P<lt><=?|\u2264))"
                  rf"\s*(?:(?:a|an|the)\s+)?(?:(?:diameter|volume|size|value|mean|threshold|cut-?off)\s+(?:of\s+)?)?"
                  rf"(?P<number>{NUMBER})\s*(?P<unit>{UNIT})(?![A-Za-z0-9\u00b2\u00b3])", re.I)
#: one structure compared with another: "the right lung larger than the left", "the liver larger than the spleen"
_PAIR = re.compile(r"\b(?P<word>larger|bigger|greater|smaller)\b(?:\s+in\s+(?:volume|size))?\s+than\s+"
                   r"(?:that of\s+)?(?:the\s+)?(?P<rest>.*)", re.I | re.S)
#: which of a paired organ is larger: "Which lung is larger?", "which kidney is bigger"
_WHICH_PAIR = re.compile(r"\bwhich (?P<organ>lung|kidney)\b.*?\b(?P<word>larger|bigger|greater|smaller|largest|"
                         r"smallest|biggest)\b", re.I | re.S)
_PAIRED = {"lung": ("lung_right", "lung_left"), "kidney": ("kidney_right", "kidney_left")}


@dataclass(frozen=True)
class Cut:
    """A value a question compares a measurement with: ``above`` it (or below), the value in its
    dimension's base unit (mm, mm3, HU ...), the unit as written (a `UNITS` key) and the words."""

    above: bool
    value: float
    unit: str
    dimension: str
    written: str


@dataclass(frozen=True)
class Pair:
    """Two structures a question compares by size: whether the ``first`` is ``larger`` (or smaller)
    than the ``second`` (segment targets); ``which``: it asks which of the two is (the answer a name)."""

    first: str
    second: str
    larger: bool
    which: bool = False


def cut_in(question: str) -> Cut | None:
    """The one value ``question`` compares a measurement with (None when it names none, or several)."""
    cuts = []
    for m in _CUT.finditer(" ".join(questions_in(question))):
        key = unit_key(m.group("unit"))
        if key is None:
            continue
        dimension, factor = UNITS[key]
        above = not (m.group("less") or m.group("under") or m.group("lt"))
        number = to_float(m.group("number"))[0]
        cuts.append(Cut(above, number * factor, key, dimension, f"{m.group('number')} {m.group('unit')}"))
    return cuts[0] if len(cuts) == 1 else None


def pair_in(question: str) -> Pair | None:
    """The two organs ``question`` compares by size ("Is the right lung larger than the left?",
    "Which kidney is bigger?"), or None. An elliptical second one ("than the left") is the same
    organ on the other side."""
    asked = " ".join(questions_in(question))
    if _ATTENUATION.search(asked):  # "the liver's attenuation lower than the spleen's" compares no sizes
        return None
    if m := _WHICH_PAIR.search(asked):
        first, second = _PAIRED[m.group("organ").lower()]
        return Pair(first, second, larger=not re.match(r"smaller|smallest", m.group("word"), re.I), which=True)
    m = _PAIR.search(asked)
    if m is None or _CUT.search(asked):
        return None
    first, second = organ_in(asked[: m.start()]), organ_in(m.group("rest"))
    if first is None or len(first) != 1:
        return None
    if second is None:
        side = re.match(r"(left|right)\b", m.group("rest"), re.I)
        if side is None or not first[0].endswith(("_left", "_right")):
            return None
        second = (f"{first[0].rsplit('_', 1)[0]}_{side.group(1).lower()}",)
    if len(second) != 1 or second == first:
        return None
    return Pair(first[0], second[0], larger=m.group("word").lower() != "smaller")


# -- what a question asks (read from its interrogative sentences and answer instructions) -----------
_AUXILIARY = re.compile(r"^\W*(is|are|does|do|did|has|have|had|was|were|can|could|any|should|will|would)\b", re.I)
_ASK_YES_NO = re.compile(r"\banswer (with )?yes or no\b", re.I)
_ASK_SIDE = re.compile(r"\b(which|what) (side|lung|hemisphere|kidney|lobe)\b|\bwhere\b|\bleft or right\b|"
                       r"\bright or left\b|\bside\b|\blateral", re.I)
_ASK_SIZE = re.compile(r"\b(how (large|big)|size|diameter|measure\w*|dimension\w*)\b", re.I)
_ASK_DIAMETER = re.compile(r"\b(diameter|how (long|wide)|length|width)\b", re.I)
#: a lesion burden (load) is a total volume
_ASK_VOLUME = re.compile(r"\b(volume|burden|lesion load)\b", re.I)
_ASK_AMOUNT = re.compile(r"\b(how (many|much)|by what|what is the (change|difference|growth)|"
                         r"change in|difference in)\b", re.I)
_ASK_PERCENT = re.compile(r"%|\bper ?cent", re.I)
_ASK_WHICH = re.compile(r"\b(which|what)\b", re.I)
#: a unit the question asks for: "in mL", "in mm", "unit (mL)", "in cubic millimetres"
_ASK_UNIT = re.compile(rf"(?:\bin|\bunits?\s*\(?|\bunits? of)\s*({UNIT})(?![\w²³])", re.I)
#: the unit an asked unit is answered in: lengths in mm or cm, volumes in mL or mm3
_ANSWER_UNIT = {"mm": "mm", "cm": "cm", "ml": "mL", "cc": "mL", "cm3": "mL", "mm3": "mm3"}
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
        sentences = questions_in(question)
        asked = " ".join(sentences)
        unit = next((u for m in _ASK_UNIT.finditer(question) if (u := _ANSWER_UNIT.get(unit_key(m.group(1)) or ""))),
                    None)
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


@dataclass(frozen=True)
class Question:
    """The cues of a question that choose its family (`mmreason.backends.rules.planner.FAMILIES`)
    and steer its planner.

    Attributes:
        text: the question as asked.
        growth, ctr, sequence, lesion, organ_size, modality, plane: the family cues (see the
            package docstring's table).
        burden: it asks about every lesion together (lesion load): candidates are measured as one.
        organs: the segment targets of the first organ it names (None when it names none).
        nodule: it asks about lung nodules only (a 4-30 mm search), not a mass or tumour.
        count: it asks how many lesions there are: ``"number"`` (how many), ``"many"`` (several?),
            ``"one"`` (a single one?), or None.
        beyond: what it asks beyond presence, side, size and volume (keys of `BEYOND`).
        sites: the anatomical sites it names, lower case ("liver", "pancreas", "chest").
        sequences: volume id -> sequence name (``T1``, ``T2``, ``FLAIR``) as the question names them.
        asked: what it asks for (`Asked`).
        cut: the value it compares a measurement with ("larger than 10 mm"; `cut_in`).
        pair: the two organs it compares by size ("the right lung larger than the left"; `pair_in`).
    """

    text: str
    growth: bool = False
    ctr: bool = False
    sequence: bool = False
    lesion: bool = False
    burden: bool = False
    organ_size: bool = False
    modality: bool = False
    plane: bool = False
    organs: tuple[str, ...] | None = None
    nodule: bool = False
    count: str | None = None
    beyond: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    sequences: dict[str, str] = field(default_factory=dict)
    asked: Asked = field(default_factory=Asked)
    cut: Cut | None = None
    pair: Pair | None = None

    @classmethod
    def of(cls, text: str) -> "Question":
        # what is asked beyond the families, and where, is read from the questions themselves: an
        # appended instruction ("Answer with a single word") asks for no count
        asked = " ".join(questions_in(text))
        return cls(text=text, growth=bool(_GROWTH.search(text)), ctr=bool(_CTR.search(text)),
                   sequence=bool(_SEQUENCE_Q.search(text)), lesion=bool(_LESION.search(text)),
                   burden=bool(_BURDEN.search(text)), organ_size=bool(_ORGAN_SIZE.search(text)),
                   modality=bool(_MODALITY.search(text)), plane=bool(_PLANE.search(text)),
                   organs=organ_in(text),
                   nodule=bool(_NODULE_ONLY.search(text)) and not _NOT_NODULE.search(text),
                   count=count_form(asked), beyond=tuple(k for k, (rx, _) in BEYOND.items() if rx.search(asked)),
                   sites=tuple(dict.fromkeys(m.group(0).lower() for m in _SITE.finditer(asked))),
                   sequences={m.group(1): m.group(2).upper() for m in _NAMED_SEQUENCE.finditer(text)},
                   asked=Asked.of(text), cut=cut_in(text), pair=pair_in(text))


def questions_in(text: str) -> list[str]:
    """The sentences of ``text`` that end in ``?`` (the whole text when none does); a decimal point
    ("above 0.6?") does not end a sentence."""
    return [s.strip() for s in re.findall(r"(?:[^.?!]|\.(?=\d))*\?", text)] or [text]


def organ_in(question: str) -> tuple[str, ...] | None:
    """The segment targets of the first organ ``question`` names (longer phrases first)."""
    q = question.lower()
    for word, targets in ORGANS.items():  # longer phrases ("left lung") come before "lung"
        if re.search(rf"\b{word}s?\b", q):
            return targets
    return None


def count_form(question: str) -> str | None:
    """How ``question`` asks about the number of lesions: ``"many"`` (several?), ``"one"`` (a
    solitary one?), ``"number"`` (how many), or None when it does not."""
    if not _COUNT.search(question):
        return None
    return "many" if _COUNT_MANY.search(question) else "one" if _COUNT_ONE.search(question) else "number"
