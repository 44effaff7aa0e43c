"""Our scoring protocol (``ours``): transparent answer extraction and scoring against a `Case`.

Parsing (`parse_response`) drops ``<think>`` blocks, then tries these rules in order and records
which one read the answer (``parse_status``):

1. ``answer_tag``: the last ``<answer>...</answer>`` (an unclosed last tag runs to the end);
2. ``boxed``: the last ``\\boxed{...}`` (nested braces allowed);
3. ``answer_prefix``: the last line of the form ``Answer: X`` / ``Final answer: X``;
4. ``answer_is``: the last "the (final/correct) answer is X", up to the end of its sentence;
5. ``option_text``: the whole response equals (after normalisation) one option's text; for closed
   questions the implicit options are ``yes`` and ``no``;
6. ``short_answer``: the whole response is one line of at most `SHORT_ANSWER_WORDS` words (a bare
   letter, "Left lung.", "12 mm"): models asked for a short answer write exactly that;
7. ``yes_no_sentence``: a closed question whose response starts with "Yes" or "No" ("No, the
   lungs are clear.");
8. otherwise ``unparsed``: the sample is scored incorrect.

Rules 6 and 7 read untagged answers; ``strict=True`` (the protocol ``strict``) stops after rule 5.
Nothing is guessed in either mode: no first-letter heuristics, no fuzzy option matching, no
random option. The text a rule extracts is unwrapped once more: a leading "The answer is" /
"Answer:" and a ``\\boxed{}`` inside a tag are removed, so ``<answer>The answer is yes.</answer>``
reads ``yes``. Evidence citations (``[E2]``, ``(E1, E3)``), which mmreason's answer format asks
for, are removed before scoring.

Scoring by answer type (`score`):

* ``closed``: a yes/no reference is compared with the first word of the normalised prediction
  (``yes``/``no``); any other closed reference (``CT or MRI?``) by normalised exact match.
* ``open``: normalised exact match is the primary ``correct``; token recall (share of reference
  tokens present in the prediction) is reported as ``recall`` and ``recall>=0.5`` is its own
  metric (`OPEN_RECALL_THRESHOLD`); token precision/recall/F1 are in ``metrics``.
* ``choice``: the option the extracted text names by `mmreason.parsing.read_option`, the rule
  the loop and the verifiers use too: the exact text of one option ("A non-enhanced tumor" is
  that option, not the letter A), a leading letter (``B``, ``(B)``, ``B. text``, ``B: text``,
  ``A left lung``), an explicit ``the answer is B``, or exactly one option's text (normalised); a
  letter followed by the exact text of a different option contradicts itself and names nothing.
  Anything else is incorrect with ``option=None``.
* ``numeric``: the first number in the extracted text (so an answer should lead with its value),
  converted to the reference unit when the prediction states a unit (mm/cm/m, mm2/cm2,
  mm3/cm3/mL/L, HU, %), compared with relative tolerance ``case.tolerance`` (default
  `DEFAULT_REL_TOLERANCE`). Numbers and units are read by `mmreason.quantities`, the reader of
  the measurement verifier, so a score and a verdict read the same value.

The closed/open groups of our reports are the dataset's own answer types. The peers' protocols
(`benchmarks.protocols`) re-implement other rules; this module is ours.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from mmreason.case import Case
from mmreason.parsing import normalize_answer as normalize
from mmreason.parsing import last_answer_block, read_option, strip_think
from mmreason.quantities import convert, parse_quantity, strip_citations

PARSE_STATUSES = ("answer_tag", "boxed", "answer_prefix", "answer_is", "option_text", "short_answer",
                  "yes_no_sentence", "unparsed")
#: the longest untagged response read whole as the answer (rule ``short_answer``)
SHORT_ANSWER_WORDS = 6
OPEN_RECALL_THRESHOLD = 0.5
DEFAULT_REL_TOLERANCE = 0.05

_ANSWER_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:final\s+)?answer(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)\s*$",
                            re.IGNORECASE | re.MULTILINE)
_ANSWER_IS = re.compile(r"\b(?:the\s+)?(?:final\s+|correct\s+|best\s+)?answer\s+(?:is|would\s+be)\s*[:：]?\s*",
                        re.IGNORECASE)
#: "The answer is" / "Answer:" at the start of an extracted answer
_LEADING_ANSWER = re.compile(r"^\s*(?:\*\*)?(?:the\s+)?(?:final\s+|correct\s+)?answer(?:\s+is|\s*[:：])(?:\*\*)?\s*",
                             re.IGNORECASE)
_SENTENCE_END = re.compile(r"\n|(?<!\d)\.(?=\s|$)|\.(?!\d)")


@dataclass
class ParsedResponse:
    """The answer text extracted from a response and the rule that extracted it."""

    text: str | None
    status: str


@dataclass
class Score:
    """How one sample scored.

    Attributes:
        correct: the primary metric (exact match for open questions).
        parsed: the extracted answer text (None when unparsed).
        parse_status: the rule that read the answer: one of `PARSE_STATUSES` for ours, the
            peer's own rule names for the peers' protocols (`benchmarks.protocols`).
        option: the option letter the prediction names (choice questions), else None.
        recall: token recall against the reference (open questions), else None.
        value: the numeric value in the reference unit (numeric questions), else None.
        group: the closed/open group the protocol reports this case in (None: the answer type).
        metrics: further per-sample metrics of the protocol (token precision/recall/F1 ...).
        guessed: the protocol picked an option although none could be read (the peers do).
        judged: correctness came from an LLM judge.
    """

    correct: bool
    parsed: str | None
    parse_status: str
    option: str | None = None
    recall: float | None = None
    value: float | None = None
    group: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    guessed: bool = False
    judged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None  # unbalanced: not a boxed answer


def _answer_is(text: str) -> str | None:
    """The X of the last "the answer is X" in ``text``, up to the end of its sentence."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():]
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def unwrap(text: str) -> str:
    """An extracted answer without a leading "The answer is" / "Answer:" or a wrapping ``\\boxed{}``."""
    text = strip_citations(text)
    boxed = _last_boxed(text)
    if boxed is not None and boxed.strip():
        text = boxed
    return _LEADING_ANSWER.sub("", text).strip()


def parse_response(response: str, options: list[str] | None = None, answer_type: str = "open",
                   strict: bool = False) -> ParsedResponse:
    """Extract the answer text from a raw model response; see the module docstring for the order.

    ``<think>...</think>`` blocks are removed first: a draft answer inside them is not the answer.
    ``strict`` keeps only the rules that need no untagged reading (1 to 5).
    """
    tag = last_answer_block(response)
    if tag is not None and unwrap(tag.group(1)):
        return ParsedResponse(unwrap(tag.group(1)), "answer_tag")
    response = strip_think(response)
    boxed = _last_boxed(response)
    if boxed is not None and unwrap(boxed):
        return ParsedResponse(unwrap(boxed), "boxed")
    prefixed = [unwrap(p) for p in _ANSWER_PREFIX.findall(response)]
    if prefixed and prefixed[-1]:
        return ParsedResponse(prefixed[-1], "answer_prefix")
    stated = _answer_is(response)
    if stated is not None and unwrap(stated):
        return ParsedResponse(unwrap(stated), "answer_is")
    candidates = list(options or []) + (["yes", "no"] if answer_type == "closed" else [])
    whole = normalize(response)
    for option in candidates:
        if whole and whole == normalize(option):
            return ParsedResponse(option, "option_text")
    if strict:
        return ParsedResponse(None, "unparsed")
    bare = strip_citations(response).strip()
    if bare and "\n" not in bare and len(bare.split()) <= SHORT_ANSWER_WORDS:
        return ParsedResponse(bare.rstrip(".").strip(), "short_answer")
    first = whole.split()[0] if whole else ""
    if answer_type == "closed" and first in ("yes", "no"):
        return ParsedResponse(first, "yes_no_sentence")
    return ParsedResponse(None, "unparsed")


def token_recall(prediction: str, reference: str) -> float:
    """Share of the reference's normalised tokens that occur in the prediction (0 if no tokens)."""
    ref = normalize(reference).split()
    if not ref:
        return 0.0
    pred = set(normalize(prediction).split())
    return sum(t in pred for t in ref) / len(ref)


def numeric_match(value: float, reference: float, rel_tolerance: float) -> bool:
    """``|value - reference| <= rel_tolerance * |reference|`` (absolute ``rel_tolerance`` if ref is 0)."""
    bound = rel_tolerance * abs(reference) if reference != 0 else rel_tolerance
    return abs(value - reference) <= bound + 1e-12


def token_prf(prediction: str, reference: str) -> dict[str, float]:
    """Token precision, recall and F1 of the normalised prediction against the reference (sets of tokens)."""
    pred, ref = set(normalize(prediction).split()), set(normalize(reference).split())
    common = len(pred & ref)
    if not pred or not ref or not common:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    p, r = common / len(pred), common / len(ref)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r)}


def score_response(response: str, case: Case, strict: bool = False) -> Score:
    """Parse and score one raw response against ``case`` (see the module docstring)."""
    parsed = parse_response(response, case.options, case.answer_type, strict=strict)
    if parsed.text is None:
        return Score(False, None, parsed.status)
    return score_parsed(parsed, case)


def score_parsed(parsed: ParsedResponse, case: Case) -> Score:
    text = parsed.text or ""
    kind = case.answer_type
    if kind == "choice":
        letter = read_option(text, case.options or [])
        return Score(letter is not None and letter == case.answer.strip().upper(), text, parsed.status, option=letter)
    if kind == "numeric":
        qty = parse_quantity(text)
        ref = parse_quantity(case.answer)
        if qty is None or ref is None:
            return Score(False, text, parsed.status)
        ref_unit = case.unit or ref[1]
        value = convert(qty[0], qty[1], ref_unit)
        ref_value = convert(ref[0], ref[1], ref_unit)
        tol = case.tolerance if case.tolerance is not None else DEFAULT_REL_TOLERANCE
        ok = value is not None and ref_value is not None and numeric_match(value, ref_value, tol)
        return Score(ok, text, parsed.status, value=value)
    pred, ref = normalize(text), normalize(case.answer)
    if kind == "closed" and ref in ("yes", "no"):
        first = pred.split()[0] if pred else ""
        return Score(first == ref, text, parsed.status)
    if kind == "open":
        prf = token_prf(text, case.answer)
        return Score(bool(pred) and pred == ref, text, parsed.status, recall=token_recall(text, case.answer),
                     metrics=prf)
    return Score(bool(pred) and pred == ref, text, parsed.status)
