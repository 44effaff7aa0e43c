"""The rules backend plans from the loop's objects: rewording the prompt changes none of its answers.

The study lines, image captions, question lines and instructions are reworded (the templates of
`mmreason.prompts`); the bundled example and phantom cases of the synthetic benchmark's families
get the same tool calls and the same answer as with the original wording. A conversation served
without the loop (`mmreason serve`) is read from its text, by patterns built from the same
templates: it gets the same answers too, in either wording.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grounding.tools import default_registry
from imaging.phantoms import NoduleSpec, brain_mr, chest_ct, chest_xray, followup_pair
from mmreason import prompts
from mmreason.backends.rules import RulesBackend
from mmreason.backends.rules.planner import family_of
from mmreason.backends.rules.state import State, VolumeInfo
from mmreason.loop import run_episode

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chest_ct.nii.gz"

REWORDED = {
    "INSTRUCTIONS": "You help radiologists. Use the tools; cite evidence ids; answer in <answer></answer>.",
    "CAPTION": "[picture #{index}: {width} by {height} px; {view_id}] {description}",
    "STUDY_HEADER": "The examination consists of:",
    "STUDY_LINE": "* series {volume_id} ({modality}): {grid}{assumed}",
    "STUDY_2D": "a {nx} by {ny} pixel picture",
    "STUDY_3D": "a stack of {nz} slices of {ny} by {nx}",
    "QUESTION": "The clinician asks: {question}",
    "QUESTION_WITH_OPTIONS": "The clinician asks: {question}\nChoices:\n{options}\nReply with a letter.",
}


class ServedRules:
    """The rules backend as a served request reaches it: the conversation's text, no loop objects."""

    name = "rules"
    native_tools = False
    reads_state = False

    def __init__(self) -> None:
        self.inner = RulesBackend()

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations, **kwargs):
        return self.inner.generate(conversations, **kwargs)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def _ct():
    return chest_ct(seed=1, spacing=(6.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=16.0, side="left")]).volume


def _followup():
    prior, current = followup_pair(seed=1, diameter_mm=(9.0, 4.0), spacing=(3.0, 2.0, 2.0))
    return [prior.volume, current.volume]


def _mr():
    ph = brain_mr(seed=1, spacing=(3.0, 2.0, 2.0), lesion_diameter_mm=14.0)
    return [ph.volumes[k] for k in ("t1", "flair", "t2")]


CASES = {
    "bundled example": (lambda: EXAMPLE, "Is there a lung nodule? Where is it and how large?", None),
    "laterality choice": (_ct, "Which lung contains the nodule?", ["Right lung", "Left lung"]),
    "ctr": (lambda: chest_xray(seed=0).volume, "What is the cardiothoracic ratio?", None),
    "threshold": (_ct, "Is the nodule larger than 10 mm?", None),
    "attenuation": (_ct, "What is the attenuation of the nodule?", None),
    # a follow-up whose current search misses the nodule: views, then a point on the view
    "growth": (_followup, "Did the nodule grow? By how many mm did it change?", None),
    "sequence": (_mr, "Volume 0 is the T1, volume 1 the FLAIR and volume 2 the T2 sequence of one brain MR. "
                      "On which sequence is the lesion brightest relative to the brain?", ["T1", "T2", "FLAIR"]),
}


def _outcome(trace) -> tuple:
    return trace.status, trace.answer, [(c.name, c.arguments) for c in trace.tool_calls()]


@pytest.mark.parametrize("case", list(CASES))
def test_rewording_the_prompt_changes_no_answer(case, registry, monkeypatch):
    make, question, options = CASES[case]
    volume = make()
    original = run_episode(volume, question, RulesBackend(), options=options, registry=registry)
    assert original.status == "answered", original.answer
    for name, text in REWORDED.items():
        monkeypatch.setattr(prompts, name, text)
    reworded = run_episode(volume, question, RulesBackend(), options=options, registry=registry)
    assert "picture #1" in reworded.turns[1].text and "Image 1" not in reworded.turns[1].text
    assert _outcome(reworded) == _outcome(original)


@pytest.mark.parametrize("case", ["bundled example", "laterality choice", "ctr", "threshold", "attenuation"])
@pytest.mark.parametrize("reword", [False, True])
def test_a_served_conversation_is_read_from_its_text_alike(case, reword, registry, monkeypatch):
    """Without the loop's objects the conversation's text is read, by patterns built from the
    templates the prompt was written with, so a served request gets the loop's answers."""
    make, question, options = CASES[case]
    volume = make()
    original = run_episode(volume, question, RulesBackend(), options=options, registry=registry)
    if reword:
        for name, text in REWORDED.items():
            monkeypatch.setattr(prompts, name, text)
    served = run_episode(volume, question, ServedRules(), options=options, registry=registry)
    # a served conversation has no mask: the point goes to the overlay's red region, the loop's
    # to the 3-D component nearest its centroid; both within a pixel of each other
    (status, answer, calls), (status0, answer0, calls0) = _outcome(served), _outcome(original)
    assert (status, answer, [name for name, _ in calls]) == (status0, answer0, [name for name, _ in calls0])
    for (_, args), (_, args0) in zip(calls, calls0):
        point, point0 = args.pop("point_2d", None), args0.pop("point_2d", None)
        assert args == args0
        assert (point is None) == (point0 is None)
        if point is not None:
            assert max(abs(a - b) for a, b in zip(point, point0)) <= 1.0, (point, point0)


@pytest.mark.parametrize("question, study, family", [
    ("Has the nodule grown since the prior scan?", [("CT", False), ("CT", False)], "growth"),
    ("Has the nodule grown since the prior scan?", [("CT", False)], "lesion"),
    ("Is the heart enlarged (cardiomegaly)?", [("XR", True)], "ctr"),
    ("On which sequence is the lesion brightest?", [("MR", False), ("MR", False)], "sequence"),
    ("Is there a lesion in the liver?", [("CT", False)], "organ lesion"),
    ("Is there a lesion in the liver?", [("MR", False)], "lesion"),
    ("Is there a nodule?", [("XR", True)], "lesion elsewhere"),
    ("What is the volume of the left kidney?", [("CT", False)], "organ volume"),
    ("Is the left kidney volume above 150 mL?", [("CT", False)], "threshold"),
    ("Is the right lung larger than the left?", [("CT", False)], "threshold"),
    ("Is the nodule larger than 8 mm on the current scan than on the prior?", [("CT", False), ("CT", False)],
     "growth"),
    ("What is the mean attenuation of the liver?", [("CT", False)], "attenuation"),
    ("How many nodules larger than 5 mm are there?", [("CT", False)], "count"),
    ("Which imaging modality is this?", [("CT", False)], "modality/plane"),
    ("What is 2 + 2?", [("CT", False)], None),
])
def test_the_family_table_chooses_by_question_and_study(question, study, family):
    volumes = [VolumeInfo(str(i), modality, two_d, (8, 8) if two_d else (8, 8, 8))
               for i, (modality, two_d) in enumerate(study)]
    chosen = family_of(State(question, None, volumes, [], []))
    assert (chosen.name if chosen else None) == family
