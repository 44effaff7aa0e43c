"""Scoring protocols: the extraction cascade and the peers' rules, pinned by the cases of issue 17."""

from __future__ import annotations

import json

import pytest

from tests.helpers.bench import materialize
from benchmarks.core import runner
from benchmarks.protocols import PROTOCOLS, ProtocolError, get_protocol
from benchmarks.protocols.lmms_eval import slake_normalize
from benchmarks.protocols.vlmevalkit import can_infer
from mmreason.case import Case
from mmreason.cli import main
from mmreason.run_spec import BackendSpec, RunSpec

OPTIONS = ["Pneumothorax", "Left lung", "A non-enhanced tumor"]


def _case(answer: str, answer_type: str, task: str = "vqa_rad", **kw) -> Case:
    return Case(id=kw.pop("id", "1"), task=task, images=[], question="q?", answer=answer, answer_type=answer_type, **kw)


def _score(protocol: str, response: str, case: Case, judge=None):
    return get_protocol(protocol).score(response, case, judge)


class ScriptedJudge:
    """A judge that replies from a list, in turn, and records its prompts."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.prompts = list(replies), []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies[min(len(self.prompts), len(self.replies)) - 1]


@pytest.mark.parametrize("response, correct, rule", [
    ("<answer>The answer is yes.</answer>", True, "answer_tag"),  # 0 of 251 on VQA-RAD before
    ("<answer>Answer: yes</answer>", True, "answer_tag"),
    ("\\boxed{yes}", True, "boxed"),
    ("The lesion enhances. So the answer is yes. It is large.", True, "answer_is"),
    ("Yes.", True, "option_text"),
    ("Yes, a mass.", True, "short_answer"),
    ("Yes, the image shows a clearly enlarged mass in the left lung.", True, "yes_no_sentence"),
    ("No, the lungs are clear on both sides of this chest radiograph.", False, "yes_no_sentence"),
    ("I cannot tell from this image whether there is any abnormality.", False, "unparsed"),
])
def test_cascade_reads_yes_no_answers_and_records_the_rule(response, correct, rule):
    score = _score("ours", response, _case("yes", "closed"))
    assert (score.correct, score.parse_status) == (correct, rule)


def test_cascade_reads_untagged_open_answers_and_bare_letters():
    assert _score("ours", "Left lung.", _case("Left lung", "open")).correct
    assert _score("ours", "B", _case("B", "choice", options=OPTIONS)).correct
    # strict mode keeps refusing untagged answers
    assert _score("strict", "B", _case("B", "choice", options=OPTIONS)).parse_status == "unparsed"
    assert _score("strict", "Left lung.", _case("Left lung", "open")).parse_status == "unparsed"


@pytest.mark.parametrize("response", ["A non-enhanced tumor", "<answer>A non-enhanced tumor</answer>",
                                      "<answer>a non-enhanced tumor.</answer>", "The answer is C"])
def test_an_option_starting_with_the_article_a_is_that_option_not_letter_a(response):
    score = _score("ours", response, _case("C", "choice", options=OPTIONS))
    assert (score.correct, score.option) == (True, "C")


def test_medevalkit_splits_vqa_rad_by_yes_no_answer_not_answer_type():
    # answer_type CLOSED but not a yes/no answer: MedEvalKit puts it with the open questions
    closed_by_type = _case("Left lung", "closed")
    assert _score("medevalkit", "<answer>left lung</answer>", closed_by_type).group == "open"
    assert _score("medevalkit", "<answer>yes</answer>", _case("Yes", "open")).group == "closed"
    assert _score("ours", "<answer>yes</answer>", _case("Yes", "open")).group is None  # ours: the answer type


@pytest.mark.parametrize("response, correct", [
    ("<answer>The answer is yes.</answer>", True),
    ("Yes, there is a nodule.", False),  # "no" in "nodule": yes and no both present
    ("\\boxed{no}", False),
    ("It is yes", True),
])
def test_medevalkit_yes_xor_no_substring_rule(response, correct):
    assert _score("medevalkit", response, _case("yes", "closed")).correct is correct


def test_medevalkit_slake_tests_the_raw_reference_and_open_token_prf():
    slake_yes = _case("Yes", "closed", task="slake")
    assert _score("medevalkit", "<answer>yes</answer>", slake_yes).parse_status == "exact"
    assert not _score("medevalkit", "<answer>The answer is yes.</answer>", slake_yes).correct  # " yes" != "yes"
    score = _score("medevalkit", "<answer>left lung lobe</answer>", _case("left lung", "open", task="slake"))
    assert not score.correct
    assert score.metrics == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8})


def test_medevalkit_guesses_the_most_similar_option():
    case = _case("B", "choice", task="omnimedvqa", options=OPTIONS)
    letter = _score("medevalkit", "<answer>B</answer>", case)
    assert (letter.correct, letter.guessed) == (True, False)
    guess = _score("medevalkit", "I would say it is probably the left lung here", case)
    assert (guess.correct, guess.guessed, guess.parse_status) == (True, True, "most_similar")
    assert not _score("ours", "I would say it is probably the left lung here", case).correct


@pytest.mark.parametrize("raw, norm", [("X-Ray", "xray"), ("x ray", "xray"), ("Yeah.", "yes"), ("Nope", "no"),
                                       ("Brain (edema)", "brain"), ("Left Lung, ", "left lung"), ("是的", "yes")])
def test_lmms_eval_slake_normalisation(raw, norm):
    assert slake_normalize(raw) == norm


def test_lmms_eval_slake_uses_the_whole_raw_response():
    case = _case("X-Ray", "open", task="slake")
    assert _score("lmms-eval", "xray", case).correct
    assert not _score("lmms-eval", "<answer>X-Ray</answer>", case).correct  # tags are not removed


def test_lmms_eval_mmmu_parser_and_seeded_random_guess():
    case = _case("B", "choice", task="mmmu_med", options=OPTIONS, id="v_1")
    assert _score("lmms-eval", "The answer is (B).", case).parse_status == "bracketed_letter"
    first = _score("lmms-eval", "hmm", case)
    assert first.guessed and first.parse_status == "random_guess"
    assert _score("lmms-eval", "hmm", case).option == first.option  # reproducible on rescore
    opened = _case("12", "open", task="mmmu_med")
    assert _score("lmms-eval", "After measuring, the result is 12.", opened).correct


def test_vlmevalkit_can_infer_reads_the_article_as_a_letter_and_needs_no_tags():
    choices = dict(zip("ABC", OPTIONS))
    assert can_infer("A non-enhanced tumor", choices) == "A"  # the peer's behaviour, kept
    assert can_infer("The correct answer is **C**. Here is why", choices) == "C"
    case = _case("C", "choice", task="medxpertqa_mm", options=OPTIONS)
    assert not _score("vlmevalkit", "<answer>C</answer>", case).correct  # "<answer>C</answer>" is one word
    assert _score("vlmevalkit", "mmmu", _case("x", "open", task="mmmu_med")) is None  # open: not scored


def test_judge_protocols_use_the_judge_and_say_so():
    case = _case("C", "choice", task="medxpertqa_mm", options=OPTIONS)
    with pytest.raises(ProtocolError, match="needs an LLM judge"):
        _score("vlmevalkit-judge", "something", case)
    judge = ScriptedJudge("C")
    score = _score("vlmevalkit-judge", "something unrelated", case, judge)
    assert (score.correct, score.judged, score.parse_status) == (True, True, "llm_match")
    failing = ScriptedJudge("I do not know")
    guess = _score("vlmevalkit-judge", "something unrelated", case, failing)
    assert guess.guessed and len(failing.prompts) == 3
    open_q = _case("left lung", "open")
    verdict = _score("medevalkit-judge", "<answer>the left one</answer>", open_q, ScriptedJudge("<judge>0</judge>"))
    assert (verdict.correct, verdict.judged) == (True, True)
    path = _score("vlmevalkit-judge", "tumor", _case("neoplasm", "open", task="pathvqa"),
                  ScriptedJudge("[Begin Correctness]yes[End Correctness]"))
    assert path.correct and path.judged


def test_every_protocol_names_its_tasks_and_covers_them():
    assert {"ours", "strict", "lmms-eval", "medevalkit", "vlmevalkit"} <= set(PROTOCOLS)
    assert get_protocol("medevalkit").covers("vqa_rad") and not get_protocol("lmms-eval").covers("vqa_rad")
    with pytest.raises(ProtocolError, match="unknown protocol"):
        get_protocol("nope")


def test_rescore_a_finished_run_under_several_protocols(tmp_path, capsys):
    root = materialize("vqa_rad", tmp_path)
    out = tmp_path / "run"
    runner.run(runner.BenchConfig(tasks=["vqa_rad"], out=out, run=RunSpec(backend=BackendSpec("tests.helpers.bench:ScriptedBackend")),
                                  data={"vqa_rad": str(root)}, progress=False), log=lambda m: None)
    samples = out / "samples_vqa_rad.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    for r in rows:  # the open question (3, "Left lung") answered the way models write
        r["response"] = "<answer>The answer is left lung.</answer>" if r["id"] == "3" else "Yes, there is a nodule."
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["bench", "--rescore", str(out), "--protocol", "medevalkit,strict"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    protocols = results["tasks"]["vqa_rad"]["protocols"]
    assert protocols["ours"]["accuracy"]["k"] == 2  # both right under ours
    assert protocols["medevalkit"]["accuracy"]["k"] == 0  # " left lung." != "left lung"; "no" in "nodule"
    assert protocols["strict"]["accuracy"]["k"] == 1  # the untagged yes is unparsed
    assert results["results"]["vqa_rad"]["accuracy,medevalkit"] == 0.0
    md = (out / "results.md").read_text()
    assert "| vqa_rad | medevalkit | 2 |" in md and "| vqa_rad | ours | 2 |" in md
    row = json.loads(samples.read_text().splitlines()[0])
    assert set(row["scores"]) == {"ours", "medevalkit", "strict"} and len(row["doc_hash"]) == 64


def test_rescore_and_compare_refuse_a_missing_or_foreign_folder(tmp_path, capsys):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("not a run")
    assert main(["bench", "--rescore", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--compare", str(tmp_path / "foreign"), str(tmp_path / "missing")]) == 2
    assert "not an mmreason bench run folder" in capsys.readouterr().err
