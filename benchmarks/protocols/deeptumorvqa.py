"""DeepTumorVQA's own scoring, for its task.

Re-implemented from Schuture/DeepTumorVQA (``src/deeptumorvqa/eval/metrics.py``), applied to the
whole raw response as its evaluator applies it to the model's output:

* ``<think>...</think>`` blocks (also an unclosed one) are dropped first.
* mc: the upper-cased response's first character when it is A-D, else the first standalone
  letter A-D anywhere in it; correct when it is ``correct_option``. (So "A tool call failed ..."
  reads as A: the peer's behaviour, kept.)
* freeform, by the subtype's answer type (`benchmarks.datasets.deeptumorvqa.answer_type`):
  numeric: the first number; mean relative accuracy ``max(0, 1 - |p - g| / |g|)`` goes in
  ``metrics["mra"]`` with the 5/10/20/50% tolerance hits, and ``correct`` is the 10% band;
  binary: exactly "yes"/"no", else a response starting with one, else the first of them as a word;
  categorical: exact match after lower-casing, dropping punctuation but ``-`` and collapsing
  spaces (``metrics["partial"]``: one contains the other).
* The group of every case is its stage (``question_type``): the protocol table's groups are the
  official per-stage figures (for mc; for freeform numbers the official figure is the MRA mean).
"""

from __future__ import annotations

import re

from mmreason.case import Case

from benchmarks.protocols import Judge, Protocol
from benchmarks.core.scoring import Score

_THINK = re.compile(r"<think>.*?</think>", re.S)
_THINK_OPEN = re.compile(r"<think>.*$", re.S)
_NUMBER = re.compile(r"-?[\d]+\.?\d*")
_LETTER = re.compile(r"\b([A-D])\b")
TOLERANCES = (0.05, 0.10, 0.20, 0.50)


def strip_think(text: str) -> str:
    return _THINK_OPEN.sub("", _THINK.sub("", text)).strip()


def extract_letter(text: str) -> str:
    """The peer's mc letter ("" when none)."""
    s = strip_think(text).upper()
    if s and s[0] in "ABCD":
        return s[0]
    m = _LETTER.search(s)
    return m.group(1) if m else ""


def extract_number(text: str) -> float | None:
    m = _NUMBER.search(str(text).strip())
    return float(m.group()) if m else None


def extract_binary(text: str) -> str:
    s = str(text).strip().lower()
    for word in ("yes", "no"):
        if s == word or s.startswith(word):
            return word
    for word in ("yes", "no"):
        if re.search(rf"\b{word}\b", s):
            return word
    return ""


def normalize_text(text: str) -> str:
    s = re.sub(r"[^\w\s\-]", "", str(text).strip().lower())
    return re.sub(r"\s+", " ", s)


def _mra(pred: float, gt: float) -> float:
    if gt == 0:
        return 1.0 if pred == 0 else 0.0
    return max(0.0, 1.0 - abs(pred - gt) / abs(gt))


def score(response: str, case: Case, judge: Judge | None = None) -> Score:
    stage = case.subgroups.get("question_type")
    text = strip_think(response)
    if case.answer_type == "choice":
        letter = extract_letter(response)
        return Score(letter == case.answer.strip().upper(), letter or None, "letter" if letter else "unparsed",
                     option=letter or None, group=stage)
    if case.answer_type == "numeric":
        pred, gt = extract_number(text), extract_number(case.answer)
        if pred is None or gt is None:
            return Score(False, None, "unparsed", group=stage, metrics={"mra": 0.0})
        error = abs(pred - gt) / abs(gt) if gt else (0.0 if pred == 0 else float("inf"))
        metrics = {"mra": _mra(pred, gt), **{f"tol_{int(t * 100)}": float(error <= t) for t in TOLERANCES}}
        return Score(error <= 0.10, str(pred), "first_number", value=pred, group=stage, metrics=metrics)
    if case.answer_type == "closed":
        pred = extract_binary(text)
        return Score(bool(pred) and pred == extract_binary(case.answer), pred or None,
                     "yes_no" if pred else "unparsed", group=stage)
    pred, gt = normalize_text(text), normalize_text(case.answer)
    partial = bool(pred and gt and (gt in pred or pred in gt))
    return Score(pred == gt, pred, "normalized_text", group=stage, metrics={"partial": float(partial)})


PROTOCOLS = [
    Protocol("deeptumorvqa", "DeepTumorVQA: mc letter (first character, else first standalone A-D); freeform "
             "first number within 10% (MRA recorded), yes/no, normalised exact text; grouped by stage",
             {"deeptumorvqa": score}, source="Schuture/DeepTumorVQA src/deeptumorvqa/eval/metrics.py"),
]
