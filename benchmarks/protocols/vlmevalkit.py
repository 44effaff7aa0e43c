"""VLMEvalKit's rules (open-compass/VLMEvalKit) for the medical sets it ships.

Re-implemented from ``vlmeval/utils/matching_util.py`` (``can_infer_option``,
``can_infer_text``, ``can_infer``), ``vlmeval/dataset/utils/multiple_choice.py``
(``extract_answer_from_item``, the option-matching prompt) and
``vlmeval/dataset/image_shortqa.py`` (``ShortQA_auxeval``). Covered: MedXpertQA MM, OmniMedVQA
and MMMU (multiple choice) as ImageMCQ datasets, PathVQA as a short-answer dataset.

* Options (``can_infer_option``): the response with .()[],:;!*#{} turned into spaces and split on
  whitespace; a refusal phrase reads as "Z" (no answer); exactly one option letter among the words
  and within the last five words -> that letter; else "(correct) answer is B" -> B.
* Option text (``can_infer_text``): unless the response is longer than twice all option texts
  together, exactly one option text (lower case) contained in it -> that letter.
* ``vlmevalkit`` is its ``exact_matching`` policy: an unmatched response is wrong ("Z"). The raw
  prediction is matched (no tag or think removal).
* ``vlmevalkit-judge``: an unmatched response goes to the LLM with VLMEvalKit's matching prompt
  (answer a letter or Z), up to three tries read by the same matcher; after three failures a
  random letter or Z is drawn (recorded as ``guessed``). PathVQA is judged by the LLM against the
  reference with the ShortQA rule: the verdict between "[Begin Correctness]" and "[End
  Correctness]" must contain "yes" or "no" but not both; three unreadable verdicts score 0.
  VLMEvalKit cannot score PathVQA without a judge, so ``vlmevalkit`` does not cover it.
"""

from __future__ import annotations

import re

from mmreason.case import Case

from benchmarks.protocols import Judge, Protocol, letters, seeded_choice
from benchmarks.core.scoring import Score

_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
             "I'm sorry, but without the image provided", "Cannot determine the answer")
_VERBOSE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")

MATCH_PROMPT = (
    "You help match an answer to one option of a single-choice question. Given the question, its options and "
    "an answer, find the option most similar in meaning to the answer. If every option means something "
    "clearly different from the answer, output Z. Output a single uppercase letter: one of the option letters, "
    "or Z.\n"
    "Example 1:\nQuestion: Which organ is enlarged?\nOptions: A. liver B. spleen C. heart D. kidney\n"
    "Answer: the spleen looks big\nYour output: B\n"
    "Example 2:\nQuestion: Which organ is enlarged?\nOptions: A. liver B. spleen C. heart D. kidney\n"
    "Answer: the pancreas\nYour output: Z\n"
    "Example 3:\nQuestion: {question}?\nOptions: {options}\nAnswer: {prediction}\nYour output: ")

SHORTQA_PROMPT = (
    "Evaluate whether a model's response correctly answers a visual question, given the ground-truth answer.\n"
    "The response is correct if it has the same meaning as the ground truth, even phrased differently, or adds "
    "relevant details without changing that meaning. It is wrong if it contradicts the ground truth, misses "
    "essential information or adds incorrect information.\n"
    "Give your verdict as [Begin Correctness]yes or no[End Correctness] followed by [Begin Reason]a brief "
    "reason[End Reason].\n\n"
    "[Begin Question]{question}[End Question]\n[Begin Ground-Truth]{answer}[End Ground-Truth]\n"
    "[Begin Response]{response}[End Response]")


def can_infer_option(answer: str, choices: dict[str, str]) -> str | None:
    if any(r in answer for r in _REFUSALS):
        return "Z"
    text = answer
    for ch in ".()[],:;!*#{}":
        text = text.replace(ch, " ")
    words = text.split()
    found = [c for c in choices if c in words]
    if len(found) == 1 and words.index(found[0]) > len(words) - 5:
        return found[0]
    if not found and sum(z in words for z in ("Z", "")) == 1:
        return "Z"
    m = _VERBOSE.search(answer)
    return m.group(1).upper() if m and m.group(1).upper() in choices else None


def can_infer_text(answer: str, choices: dict[str, str]) -> str | None:
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    found = [k for k, v in choices.items() if str(v).lower() in answer]
    return found[0] if len(found) == 1 else None


def can_infer(answer: str, choices: dict[str, str]) -> str | None:
    return can_infer_option(answer, choices) or can_infer_text(answer, choices)


def _mcq(use_judge: bool):
    name = "vlmevalkit-judge" if use_judge else "vlmevalkit"

    def score(response: str, case: Case, judge: Judge | None = None) -> Score | None:
        if case.answer_type != "choice":
            return None  # MMMU open questions are outside VLMEvalKit's MCQ evaluation
        choices = dict(zip(letters(case), case.options or []))
        option, rule, guessed = can_infer(response, choices), "can_infer", False
        if option is None and judge is not None:
            prompt = MATCH_PROMPT.format(question=case.question, prediction=response,
                                         options=" ".join(f"{k}. {v}" for k, v in choices.items()))
            for _ in range(3):
                option = can_infer(judge(prompt), choices)
                if option:
                    rule = "llm_match"
                    break
            else:
                option, rule, guessed = seeded_choice(name, case, [*choices, "Z"]), "random_guess", True
        option = option or "Z"
        return Score(option == case.answer.strip().upper(), option, rule if option != "Z" or rule != "can_infer"
                     else "no_match", option=None if option == "Z" else option, guessed=guessed,
                     judged=rule == "llm_match")
    return score


def score_shortqa(response: str, case: Case, judge: Judge | None = None) -> Score:
    """PathVQA: ``ShortQA_auxeval`` with the judge (see the module docstring)."""
    assert judge is not None  # Protocol.score refuses a judge protocol without one
    prompt = SHORTQA_PROMPT.format(question=case.question, answer=case.answer, response=response)
    for _ in range(3):
        verdict = judge(prompt)
        if "[Begin Correctness]" in verdict and "[End Correctness]" in verdict:
            said = verdict.split("[Begin Correctness]")[1].split("[End Correctness]")[0].strip().lower()
            if ("yes" in said) != ("no" in said):
                return Score("yes" in said, response, "llm_judge", judged=True)
    return Score(False, response, "judge_failed", judged=True)


_SOURCE = ("open-compass/VLMEvalKit vlmeval/utils/matching_util.py, vlmeval/dataset/utils/multiple_choice.py, "
           "vlmeval/dataset/image_shortqa.py")
_MCQ_TASKS = ("medxpertqa_mm", "omnimedvqa", "mmmu_med")

PROTOCOLS = [
    Protocol("vlmevalkit", "VLMEvalKit exact_matching: can_infer option/text matching, unmatched is wrong "
             "(MedXpertQA, OmniMedVQA, MMMU choice)", {t: _mcq(False) for t in _MCQ_TASKS}, source=_SOURCE),
    Protocol("vlmevalkit-judge", "VLMEvalKit with a judge LLM: unmatched answers matched by the LLM (random "
             "option after 3 failures); PathVQA judged", {**{t: _mcq(True) for t in _MCQ_TASKS},
                                                          "pathvqa": score_shortqa},
             needs_judge=True, source=_SOURCE),
]
