"""lmms-eval's rules for the medical tasks it ships: SLAKE and the MMMU medical subjects.

Re-implemented from EvolvingLMMs-Lab/lmms-eval (``lmms_eval/tasks/slake/utils.py``,
``lmms_eval/tasks/mmmu/utils.py``, ``lmms_eval/tasks/_task_utils/mmmu_mcq_utils.py``):

* SLAKE: the whole raw response (no tag or think removal) and the reference are normalised the
  same way (lower case; text in ASCII or full-width parentheses dropped; ASCII and Chinese
  punctuation to spaces; spaces collapsed; "x ray"/"xray" -> "xray"; a whole answer among
  yes/yeah/yep/true or no/nope/false (and the Chinese synonyms) -> "yes"/"no"), then compared
  exactly. Closed/open follow SLAKE's ``answer_type``.
* MMMU multiple choice: after stripping ,.!?;:' from both ends, the letters written "(B)", else
  "B " , else "B." are candidates; failing those, in a response of more than five words, the
  options whose text occurs in it; the last-placed candidate wins; none -> a random letter
  (recorded as ``guessed``; seeded per case here, unseeded in lmms-eval).
* MMMU open: the key sub-responses (after "so", "is", "thus", "therefore", "final", "answer",
  "result", "could be", and "=" in the last sentence) plus every number in them, normalised
  (numbers rounded to 2 decimals); correct when a string candidate contains the normalised
  reference or a number equals it. lmms-eval keeps only the first element of a Python set of
  candidates (its order depends on the hash seed); this keeps them all, as MMMU's own evaluator.
"""

from __future__ import annotations

import ast
import re
import string

from mmreason.case import Case

from benchmarks.protocols import Judge, Protocol, letters, seeded_choice
from benchmarks.core.scoring import Score

_YES = {"yes", "yeah", "yep", "true", "是", "是的", "有", "包含", "可以", "能", "会", "正常"}
_NO = {"no", "nope", "false", "否", "不是", "没有", "无", "不包含", "不能", "不会", "不可以", "不正常", "异常"}
_ZH_PUNCT = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～、，。；：《》？【】（）"
_PUNCT_TABLE = str.maketrans({c: " " for c in string.punctuation + _ZH_PUNCT})


def slake_normalize(text: object) -> str:
    """lmms-eval's SLAKE answer normalisation (see the module docstring)."""
    out = ("" if text is None else str(text)).strip().lower()
    out = re.sub(r"\([^)]*\)", " ", out)
    out = re.sub(r"（[^）]*）", " ", out)
    out = re.sub(r"\s+", " ", out.translate(_PUNCT_TABLE)).strip()
    if out in ("x ray", "xray"):
        out = "xray"
    if out in _YES:
        return "yes"
    return "no" if out in _NO else out


def score_slake(response: str, case: Case, judge: Judge | None = None) -> Score:
    pred = slake_normalize(response)
    return Score(pred == slake_normalize(case.answer), pred, "whole_response")


def parse_mmmu_choice(response: str, choices: list[str], index2ans: dict[str, str]) -> tuple[str | None, str]:
    """(letter, rule) as MMMU's parser reads them; (None, "random_guess") when nothing parses."""
    for ch in ",.!?;:'":
        response = response.strip(ch)
    response = f" {response} "
    rule, by_text = "", False
    candidates = [c for c in choices if f"({c})" in response]
    if candidates:
        rule = "bracketed_letter"
    else:
        candidates = [c for c in choices if f"{c} " in response]
        rule = "letter_space"
    if not candidates:
        candidates = [c for c in choices if f"{c}." in response]
        rule = "letter_dot"
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, text in index2ans.items() if text.lower() in response.lower()]
        rule, by_text = "option_text", True
    if not candidates:
        return None, "random_guess"
    if len(candidates) == 1:
        return candidates[0], rule
    if by_text:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    elif rule == "bracketed_letter":
        starts = [response.rfind(f"({c})") for c in candidates]
    else:
        starts = [response.rfind(f" {c} ") for c in candidates]
    return candidates[starts.index(max(starts))], rule


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _normalize_str(text: str) -> list[str | float]:
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def _numbers(text: str) -> list[str]:
    commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", text)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", text)
    simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", text)
    return commas + scientific + simple


def parse_mmmu_open(response: str) -> list[str | float]:
    """MMMU's candidate answers of an open response (see the module docstring)."""
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    text = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", text)
    keys = []
    for i, sentence in enumerate(sentences):
        marks = indicators + (["="] if i == len(sentences) - 1 else [])
        tails = [sentence.split(m)[-1].strip() for m in marks if m in sentence]
        shortest = min(tails, key=len) if tails else None
        if shortest and shortest not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    keys = keys or [text]
    preds: list[str] = keys + [n for k in keys for n in _numbers(k)]
    out: list[str | float] = []
    for p in preds:
        for v in _normalize_str(p):
            if v not in out:
                out.append(v)
    return out


def _gold_list(answer: str) -> list[str]:
    if answer.strip().startswith("["):
        try:
            value = ast.literal_eval(answer)
        except (ValueError, SyntaxError):
            return [answer]
        if isinstance(value, list):
            return [str(v) for v in value]
    return [answer]


def score_mmmu(response: str, case: Case, judge: Judge | None = None) -> Score:
    if case.answer_type == "choice":
        choices = letters(case)
        index2ans = dict(zip(choices, case.options or []))
        letter, rule = parse_mmmu_choice(response, choices, index2ans)
        guessed = letter is None
        if guessed:
            letter = seeded_choice("lmms-eval", case, choices)
        return Score(letter == case.answer.strip().upper(), letter, rule, option=letter, guessed=guessed)
    preds = parse_mmmu_open(response)
    golds = [g for answer in _gold_list(case.answer) for g in _normalize_str(answer)]
    correct = any((isinstance(p, str) and any(isinstance(g, str) and g in p for g in golds))
                  or (not isinstance(p, str) and p in golds) for p in preds)
    return Score(correct, str(preds[0]) if preds else None, "key_subresponses")


PROTOCOLS = [
    Protocol("lmms-eval", "lmms-eval: SLAKE normalised exact match; MMMU option parser (random option when none "
             "parses) and open-answer containment", {"slake": score_slake, "mmmu_med": score_mmmu},
             source="EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/slake/utils.py, tasks/mmmu/utils.py"),
]
