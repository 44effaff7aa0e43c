"""MedEvalKit's rules (alibaba-damo-academy/MedEvalKit, the toolkit behind the Lingshu tables).

Re-implemented from ``utils/utils.py`` (``parse_response``, ``judge_judgement``,
``judge_close_end_vqa``, ``judge_open_end_vqa``, ``judge_multi_choice``) and each dataset's
``cal_metrics`` (``utils/VQA_RAD``, ``SLAKE``, ``PATH_VQA``, ``PMC_VQA``, ``OmniMedVQA``,
``MedXpertQA``, ``MedFrameQA``):

* Extraction: the last ``\\boxed{...}`` (mathruler's rule), else the text of every closed
  ``<answer>`` tag joined by spaces (the whole response when none closes); lower case; then
  the text after the last occurrence of each of "**answer**:", "**answer**", "*answer*:",
  "**answer:**", "answer is", "answer:", "答案:", "final answer", "final answer is", in turn.
  ``<think>`` blocks are not removed.
* Closed/open: VQA-RAD and PathVQA split by the reference (yes/no -> closed: 251 closed and 200
  open of VQA-RAD's 451 test questions, where the answer_type field gives 272/179); SLAKE by
  its answer_type.
* Yes/no: correct when the extracted text (newlines and full stops removed) contains "yes" or
  "no" but not both, as substrings, and contains the reference ("no" in "nodule" counts).
* Other closed (SLAKE): exact match of that text with the lower-cased reference.
* Open: exact match (``em``) is ``correct``; token precision/recall/F1 over whitespace tokens are
  reported in ``metrics`` under their true names (MedEvalKit's ``calculate_f1`` returns
  (f1, precision, recall) and its caller unpacks (precision, recall, f1), so its table's "f1"
  column is token recall). BLEU and ROUGE are not computed.
* Multiple choice: options written "A. text" (PMC-VQA "A:text", MedFrameQA "A.text"); a first
  or last paragraph that is a bare letter is taken; the text before the first "." and after the
  last ":" must equal the reference letter, or be an option's text matching it; anything else
  picks the option most similar to the whole response (difflib ratio): recorded as ``guessed``.
  OmniMedVQA and MedXpertQA first keep the ``<answer>`` text.
* ``medevalkit-judge`` (MedEvalKit's ``use_llm_judge``): the LLM judge decides open questions of
  VQA-RAD and PathVQA and every SLAKE question (its prompt asks for ``<judge>0</judge>`` when the
  answer is correct). MedEvalKit adds SLAKE's judged closed questions to the rule-scored ones in
  its totals (counting some twice); here each question has one verdict.
"""

from __future__ import annotations

import difflib

from mmreason.case import Case

from benchmarks.protocols import Judge, Protocol, letters
from benchmarks.core.scoring import Score

_PATTERNS = ("**answer**:", "**answer**", "*answer*:", "**answer:**", "answer is", "answer:", "答案:",
             "final answer", "final answer is")

JUDGE_PROMPT = """Decide whether the user's answer to a medical question is correct, given the standard answer.
An answer that expresses the same meaning as the standard answer, or another valid reading of it, is correct.

The question is: {question}

The standard answer: {answer}

The user's answer: {response}

Reply in exactly this format (0 means correct, 1 means incorrect):
<think>{{one or two sentences of reasoning}}</think>
<judge>{{0/1}}</judge>"""


def boxed(text: str) -> str | None:
    """mathruler's ``extract_boxed_content``: the stripped content of the last balanced ``\\boxed{}``."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, body = 0, text[start + len("\\boxed{"):]
    for i, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == -1:
            return body[:i].strip()
    return None


def tag_text(text: str, tag: str) -> str:
    """MedEvalKit's ``extract``: every closed ``<tag>`` joined by spaces, else the whole text."""
    parts, start = [], text.find(f"<{tag}>")
    while start != -1:
        end = text.find(f"</{tag}>", start + len(tag) + 2)
        if end == -1:
            break
        parts.append(text[start + len(tag) + 2:end])
        start = text.find(f"<{tag}>", end + len(tag) + 3)
    joined = " ".join(parts).strip()
    return joined or text


def parse_response(response: str) -> str:
    """MedEvalKit's ``parse_response`` (see the module docstring)."""
    response = response.lower()
    if "boxed" in response:
        response = boxed(response) or "None"
    elif "<answer>" in response:
        response = tag_text(response, "answer")
    for pattern in _PATTERNS:
        if pattern in response:
            response = response.split(pattern)[-1]
    return response


def _vqa_preprocess(response: str) -> str:
    found = boxed(response)
    if found is not None:
        response = found
    elif "<answer>" in response:
        response = tag_text(response, "answer")
    return response.lower().strip()


def judge_judgement(answer: str, response: str) -> bool:
    text = parse_response(response).replace("\n", "").replace(".", "")
    return (("yes" in text) != ("no" in text)) and answer.lower() in text


def judge_close_end(answer: str, response: str) -> bool:
    return parse_response(response).replace("\n", "").replace(".", "") == answer.lower()


def token_prf(response: str, answer: str) -> dict[str, float]:
    pred, ref = set(response.lower().split()), set(answer.lower().split())
    if not pred or not ref or not pred & ref:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    p, r = len(pred & ref) / len(pred), len(pred & ref) / len(ref)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r)}


def _judge_says_correct(judge: Judge, case: Case, response: str) -> tuple[bool, str]:
    verdict = judge(JUDGE_PROMPT.format(question=case.question, answer=case.answer, response=response))
    return tag_text(verdict, "judge").strip() == "0", verdict


def _yes_no_group(case: Case) -> str:
    return "closed" if case.answer.lower().strip() in ("yes", "no") else "open"


def _score_vqa(case: Case, response: str, group: str, judge: Judge | None, slake: bool) -> Score:
    text = _vqa_preprocess(response)
    # VQA-RAD and PathVQA lower-case the reference first; SLAKE tests the raw one, so its "Yes"
    # goes to the exact-match rule, not the yes/no rule
    answer = case.answer if slake else case.answer.lower().strip()
    if judge is not None and (slake or group == "open"):
        ok, _ = _judge_says_correct(judge, case, text)
        return Score(ok, text, "llm_judge", group=group, judged=True)
    if group == "closed":
        if answer in ("yes", "no"):
            return Score(judge_judgement(answer, text), parse_response(text), "yes_xor_no", group=group)
        return Score(judge_close_end(answer, text), parse_response(text), "exact", group=group)
    parsed = parse_response(text)
    prf = token_prf(parsed, answer)
    return Score(parsed == answer.lower(), parsed, "exact", group=group, metrics=prf, recall=prf["recall"])


def score_yes_no_split(response: str, case: Case, judge: Judge | None = None) -> Score:
    """VQA-RAD and PathVQA: closed means a yes/no reference."""
    return _score_vqa(case, response, _yes_no_group(case), judge, slake=False)


def score_slake(response: str, case: Case, judge: Judge | None = None) -> Score:
    group = "open" if case.answer_type == "open" else "closed"
    return _score_vqa(case, response, group, judge, slake=True)


def judge_multi_choice(choices: list[str], answer: str, response: str) -> tuple[bool, str, str]:
    """MedEvalKit's ``judge_multi_choice`` -> (correct, what was compared, rule)."""
    alphas = [chr(ord("a") + i) for i in range(len(choices))]
    response = response.lower()
    paragraphs = response.split("\n\n")
    if paragraphs[0] in alphas:
        response = paragraphs[0]
    elif paragraphs[-1].split(".")[0] in alphas:
        response = paragraphs[-1].split(".")[0]
    response = parse_response(response).strip().lower().replace("\n", "")
    lowered = [c.lower() for c in choices]
    split = response.split(".")[0].split(":")[-1]
    answer = answer.strip().lower()
    if split == answer:
        return True, split, "letter"
    if split in alphas:
        return lowered[alphas.index(split)] == answer, split, "letter"
    if split in lowered:
        return answer in alphas and split == lowered[alphas.index(answer)], split, "option_text"
    ratios = [difflib.SequenceMatcher(None, c, response).ratio() for c in lowered]
    best = next((i for i, r in enumerate(ratios) if r == max(ratios) and r > 0), 0)
    return alphas[best] == answer or lowered[best] == answer, alphas[best], "most_similar"


def _choice_scorer(style: str, answer_tag_first: bool):
    def score(response: str, case: Case, judge: Judge | None = None) -> Score:
        choices = [f"{letter}{style}{text}" for letter, text in zip(letters(case), case.options or [])]
        if answer_tag_first:
            response = tag_text(response, "answer")
        ok, read, rule = judge_multi_choice(choices, case.answer, response)
        option = read.upper() if len(read) == 1 and read.upper() in letters(case) else None
        return Score(ok, read, rule, option=option, guessed=rule == "most_similar")
    return score


_CHOICE = {
    "pmc_vqa": _choice_scorer(":", answer_tag_first=False),
    "omnimedvqa": _choice_scorer(". ", answer_tag_first=True),
    "medxpertqa_mm": _choice_scorer(". ", answer_tag_first=True),
    "medframeqa": _choice_scorer(".", answer_tag_first=False),
}
_SOURCE = "alibaba-damo-academy/MedEvalKit utils/utils.py and utils/<dataset>/<dataset>.py (cal_metrics)"

PROTOCOLS = [
    Protocol("medevalkit", "MedEvalKit: closed = yes/no answer (VQA-RAD, PathVQA), yes-xor-no substring rule, "
             "open exact match + token P/R/F1, most-similar option when none parses",
             {"vqa_rad": score_yes_no_split, "pathvqa": score_yes_no_split,
              "slake": score_slake, **_CHOICE}, source=_SOURCE),
    Protocol("medevalkit-judge", "MedEvalKit with use_llm_judge: open questions (all of SLAKE) judged by an LLM",
             {"vqa_rad": score_yes_no_split, "pathvqa": score_yes_no_split, "slake": score_slake},
             needs_judge=True, source=_SOURCE),
]
