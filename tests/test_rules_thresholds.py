"""The threshold and attenuation families of the rules planner: a measured quantity against a value
the question names, two organs against each other, and the mean HU over a mask.

The old planner declined every one of these questions ("a comparison ... which the tools do not
measure", "the attenuation or signal of a structure", or not a question type at all). Most tests
plan from a `State` holding the tool results a model would have read; two run the real tools.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from mmreason.backends.rules.planner import decide
from mmreason.backends.rules.state import Result, Shown, State, VolumeInfo
from mmreason.backends.rules.threshold import diameter_margin, volume_margin

CT = [VolumeInfo("0", "CT", False, (64, 64, 32))]
MR = [VolumeInfo("0", "MR", False, (64, 64, 24))]
TARGETS = ["lungs", "lung_left", "lung_right", "body", "nodule", "lesion", "liver", "spleen", "kidney_left",
           "kidney_right", "heart"]
THICK = [5.0, 1.6, 1.6]
THIN = [1.0, 0.7, 0.7]


def _state(question: str, results=(), options=None, volumes=CT) -> State:
    shown = [Shown(f"V{i + 1}", v.shape_xyz[:2], v.id) for i, v in enumerate(volumes)]
    return State(question, options, list(volumes), shown, list(results), TARGETS)


def _segment(eid: str, voxels: int, level: str = "ok", reasons=(), **data) -> Result:
    payload = {"evidence_id": eid, "data": {"voxels": voxels, "components": 1 if voxels else 0, **data}}
    if level != "ok" or reasons:
        payload["quality"] = {"level": level, "reasons": list(reasons) or [f"a {level} reason"]}
    return Result("segment", {}, None, payload, [])


def _measure(eid: str, spacing=THICK, voxels: int = 100, interior_voxels: int | None = None, level: str = "ok",
             reasons=(), **numbers) -> Result:
    units = {"volume_mm3": "mm3", "volume_ml": "mL", "mean_intensity": "HU", "std_intensity": "HU",
             "interior_mean_intensity": "HU"}
    numbers = {"centroid_x_mm": -30.0, "centroid_y_mm": 0.0, "centroid_z_mm": 0.0, "longest_diameter_mm": 10.0,
               "perpendicular_diameter_mm": 8.0} | numbers
    if "volume_mm3" in numbers:
        numbers["volume_ml"] = numbers["volume_mm3"] / 1000
    data = {"laterality": "right", "fraction_left": 0.1, "spacing_mm": list(spacing), "voxels": voxels}
    if interior_voxels is not None:
        data["interior_voxels"] = interior_voxels
    payload = {"evidence_id": eid, "measurements": {k: [v, units.get(k, "mm")] for k, v in numbers.items()},
               "data": data}
    if level != "ok" or reasons:
        payload["quality"] = {"level": level, "reasons": list(reasons) or [f"a {level} reason"]}
    return Result("measure", {}, None, payload, [])


def _nodule(question: str, diameter: float, spacing=THICK, options=None) -> State:
    return _state(question, [_segment("E1", 60, target="nodule", laterality="right"),
                             _measure("E2", spacing, longest_diameter_mm=diameter, volume_mm3=600.0)], options)


# --------------------------------------------------------------------------- a value against a cut-off

def test_a_diameter_clear_of_the_cut_off_is_yes_or_no_with_both_values():
    # the short answer names what was measured and its side ("No" alone would deny a side the question names)
    assert decide(_nodule("Is the nodule larger than 10 mm?", 12.9)).tag == \
        "Yes; right lung nodule 12.9 mm against a threshold of 10 mm [E1, E2]"
    assert decide(_nodule("Is the nodule smaller than 10 mm?", 12.9)).tag.startswith("No; right lung nodule 12.9 mm")
    assert decide(_nodule("Is there a nodule over 8 mm?", 12.9)).tag.startswith("Yes; right lung nodule 12.9 mm")
    # a cut-off in cm is answered in cm
    assert decide(_nodule("Is the nodule larger than 1 cm?", 6.0)).tag == \
        "No; right lung nodule 0.60 cm against a threshold of 1 cm [E1, E2]"


def test_a_diameter_within_its_own_uncertainty_is_borderline_not_yes_or_no():
    """9.6 mm against 10 mm on 5 mm slices: the largest section may miss the widest level by 2.5 mm."""
    action = decide(_nodule("Is the nodule larger than 10 mm?", 9.6))
    assert action.tag.startswith("Borderline: right lung nodule 9.6 mm against a threshold of 10 mm [E1, E2] "
                                 "(uncertain: 9.6 mm is within the margin of +/-")
    assert "on 5 mm slices" in action.tag and not re.match(r"(Yes|No)\b", action.tag)
    assert action.finding is not None and action.finding.present is None
    # the same values on 1 mm slices with 0.7 mm pixels are decided: the uncertainty is the slices'
    thin = decide(_nodule("Is the nodule larger than 10 mm?", 9.0, spacing=THIN))
    assert thin.tag == "No; right lung nodule 9.0 mm against a threshold of 10 mm [E1, E2]"
    assert decide(_nodule("Is the nodule larger than 10 mm?", 9.0)).tag.startswith("Borderline: right lung nodule 9.0")


def test_the_diameter_margin_grows_with_slice_thickness():
    thin, _ = diameter_margin(10.0, THIN)
    thick, why = diameter_margin(10.0, THICK)
    # a 10 mm section half a slice off the widest level belongs to a sphere sqrt(10^2 + t^2) wide
    assert thin == pytest.approx(0.7 + np.sqrt(101) - 10)
    assert thick == pytest.approx(1.6 + np.sqrt(125) - 10) and "on 5 mm slices" in why
    # the smaller the section against the slice, the more the lesion may be wider
    assert diameter_margin(4.0, THICK)[0] == pytest.approx(1.6 + np.sqrt(41) - 4)


def test_borderline_and_undecided_multiple_choice_is_declined_decided_picks():
    options = ["Yes", "No"]
    assert decide(_nodule("Is the nodule larger than 10 mm?", 12.9, options=options)).tag.startswith("A. Yes [E1, E2]")
    assert decide(_nodule("Is the nodule larger than 10 mm?", 12.9, THIN, options)).tag == "A. Yes [E1, E2]"
    borderline = decide(_nodule("Is the nodule larger than 10 mm?", 9.6, options=options))
    assert borderline.finding is None
    assert borderline.answer.startswith("I cannot answer this multiple-choice question: 9.6 mm is within the "
                                        "margin of +/-")
    assert "none of the options (A. Yes; B. No) can be chosen" in borderline.answer


def test_no_nodule_found_is_no_to_a_nodule_over_a_size():
    action = decide(_state("Is there a nodule over 8 mm?", [_segment("E1", 0, target="nodule")]))
    assert action.tag == "No [E1]" and "No nodule was found" in action.answer


def test_an_organ_volume_against_a_value_and_its_evidence_doubts():
    liver = [_segment("E1", 150_000, target="liver"),
             _measure("E2", THICK, voxels=150_000, volume_mm3=1_500_000.0, longest_diameter_mm=180.0)]
    action = decide(_state("Is the liver volume above 2000 mL?", liver))
    assert action.tag == "No; liver 1500.0 mL against a threshold of 2000 mL [E1, E2]"
    assert "with a margin of +/-" in action.answer
    margin, _ = volume_margin(1_500_000.0, THICK)
    assert 40_000 < margin < 150_000  # a few % of a liver on 5 x 1.6 x 1.6 mm voxels
    doubtful = liver[:1] + [_measure("E2", THICK, voxels=150_000, volume_mm3=1_500_000.0, level="doubtful",
                                     reasons=["reaches the last slice of the scan: the structure may be cut off"])]
    hedged = decide(_state("Is the liver volume above 2000 mL?", doubtful))
    assert hedged.tag == ("No; liver 1500.0 mL against a threshold of 2000 mL [E1, E2] (uncertain: reaches the last "
                          "slice of the scan: the structure may be cut off)")
    near = liver[:1] + [_measure("E2", THICK, voxels=150_000, volume_mm3=1_960_000.0)]
    assert decide(_state("Is the liver volume above 2000 mL?", near)).tag.startswith(
        "Borderline: liver 1960.0 mL against a threshold of 2000 mL [E1, E2] (uncertain:")


def test_a_mean_hu_against_a_value_uses_the_calibration_margin():
    def liver(mean: float) -> list[Result]:
        return [_segment("E1", 100_000, target="liver"),
                _measure("E2", THICK, voxels=100_000, interior_voxels=80_000, volume_mm3=1_280_000.0,
                         mean_intensity=mean, std_intensity=12.0, interior_mean_intensity=mean + 1)]
    q = "Is the mean attenuation of the liver below 40 HU?"
    assert decide(_state(q, liver(20.0))).tag == "Yes; liver 20 HU against a threshold of 40 HU [E1, E2]"
    assert decide(_state(q, liver(58.0))).tag == "No; liver 58 HU against a threshold of 40 HU [E1, E2]"
    assert decide(_state(q, liver(35.0))).tag.startswith("Borderline: liver 35 HU against a threshold of 40 HU")


# --------------------------------------------------------------------------- two organs

def _lungs(right_mm3: float, left_mm3: float) -> list[Result]:
    return [_segment("E1", 100_000, target="lung_right"), _measure("E2", volume_mm3=right_mm3),
            _segment("E3", 90_000, target="lung_left"), _measure("E4", volume_mm3=left_mm3)]


def test_two_organs_are_compared_by_volume():
    q = "Is the right lung larger than the left?"
    first = decide(_state(q))
    assert first.tool == "segment" and first.arguments == {"target": "lung_right"}
    assert decide(_state(q, _lungs(1_733_700.0, 1_445_900.0)[:2])).arguments == {"target": "lung_left"}
    assert decide(_state(q, _lungs(1_733_700.0, 1_445_900.0))).tag == \
        "Yes; right lung 1733.7 mL against left lung 1445.9 mL [E1, E2, E3, E4]"
    assert decide(_state("Is the right lung smaller than the left?", _lungs(1_733_700.0, 1_445_900.0))).tag \
        .startswith("No; ")
    which = decide(_state("Which lung is larger?", _lungs(1_733_700.0, 1_445_900.0), ["left lung", "right lung"]))
    assert which.tag == "B. right lung [E1, E2, E3, E4]"
    close = decide(_state(q, _lungs(1_500_000.0, 1_450_000.0)))
    assert close.tag.startswith("Borderline: right lung 1500.0 mL against left lung 1450.0 mL")
    assert "differ by less than their summed margin" in close.tag


# --------------------------------------------------------------------------- mean HU

def _liver_hu(mean: float, sd: float = 12.0, interior: float | None = None, voxels: int = 100_000,
              interior_voxels: int = 80_000, options=None, question="What is the mean HU of the liver?") -> State:
    numbers = {"mean_intensity": mean, "std_intensity": sd, "volume_mm3": voxels * 12.8}
    if interior is not None:
        numbers["interior_mean_intensity"] = interior
    return _state(question, [_segment("E1", voxels, target="liver"),
                             _measure("E2", THICK, voxels=voxels, interior_voxels=interior_voxels, **numbers)],
                  options)


def test_the_mean_hu_asks_measure_for_the_interior_and_answers_mean_sd_and_voxels():
    segment = decide(_state("What is the mean HU of the liver?"))
    assert segment.tool == "segment" and segment.arguments == {"target": "liver"}
    measure = decide(_state("What is the mean HU of the liver?", [_segment("E1", 100_000, target="liver")]))
    assert measure.tool == "measure" and measure.arguments == {"evidence_id": "E1", "interior": True}
    action = decide(_liver_hu(58.4, interior=59.0))
    assert action.tag == "58 HU (SD 12 HU, 100000 voxels) [E1, E2]"
    assert "58.4 HU (SD 12.0 HU) over the 100000 voxels of its mask (5 mm slices, 1.6 x 1.6 mm pixels)" in action.answer


def test_partial_volume_is_a_caveat_when_the_interior_differs():
    """A small nodule on thick slices: its edge voxels average it with the lung around it."""
    q = "What is the attenuation of the nodule?"
    state = _state(q, [_segment("E1", 68, target="nodule", laterality="right"),
                       _measure("E2", THICK, voxels=68, interior_voxels=4, mean_intensity=-85.0, std_intensity=144.0,
                                interior_mean_intensity=37.0, volume_mm3=870.0)])
    action = decide(state)
    assert action.tag.startswith("-85 HU (SD 144 HU, 68 voxels) [E1, E2] (uncertain: partial volume: the nodule's "
                                 "interior (4 voxels clear of its edge) has a mean of 37 HU")
    none = _state(q, [_segment("E1", 20, target="nodule"),
                      _measure("E2", THICK, voxels=20, interior_voxels=0, mean_intensity=-300.0, std_intensity=200.0,
                               volume_mm3=256.0)])
    assert "no voxel of the nodule is clear of its edge on these 5 mm slices" in decide(none).tag


def test_mean_hu_options_are_picked_within_the_calibration_margin_only():
    options = ["20 HU", "58 HU", "100 HU", "150 HU"]
    assert decide(_liver_hu(55.0, options=options)).tag == "B. 58 HU [E1, E2]"
    # 75 HU is 17 HU from 58: more than calibration, so no option is it
    far = decide(_liver_hu(75.0, options=options))
    assert far.finding is None and "matches none of the options" in far.answer
    # two options within the margin: choosing one would be a guess
    close = decide(_liver_hu(55.0, options=["52", "58", "100", "150"]))
    assert close.finding is None and "matches none of the options" in close.answer


def test_mean_intensity_on_mr_is_declined_for_its_units():
    action = decide(_state("What is the mean intensity of the lesion?", volumes=MR))
    assert action.tool is None and "only CT values are in absolute units (HU)" in action.answer


# --------------------------------------------------------------------------- through the tools

@pytest.fixture(scope="module")
def nodule_ct():
    from imaging.phantoms import NoduleSpec, chest_ct

    return chest_ct(seed=1, spacing=(3.0, 3.0, 3.0), nodules=[NoduleSpec(diameter_mm=16.0, side="right")])


def _episode(phantom, question: str):
    from grounding.tools import default_registry
    from mmreason.backends import get_backend
    from mmreason.loop import run_episode

    return run_episode(phantom.volume, question, get_backend("rules"), registry=default_registry())


def test_a_threshold_through_the_tools_on_a_phantom(nodule_ct):
    from mmreason.verifiers import verify

    trace = _episode(nodule_ct, "Is the nodule larger than 8 mm?")
    assert trace.status == "answered"
    assert re.match(r"Yes; right lung nodule 1\d\.\d mm against a threshold of 8 mm \[E1, E2, E3\]", trace.answer)
    # every number of the answer is a measurement, the cut-off or a margin: no step is found incorrect
    assert not [v for v in verify(None, trace) if v.label == "incorrect"]


def test_the_attenuation_through_the_tools_on_a_phantom(nodule_ct):
    from mmreason.verifiers import verify

    trace = _episode(nodule_ct, "What is the attenuation of the nodule?")
    measure = next(e for e in trace.evidence if e.tool == "measure")
    assert measure.arguments == {"evidence_id": "E1", "interior": True}
    interior = measure.measurements["interior_mean_intensity"].value
    assert interior == pytest.approx(nodule_ct.truth["nodules"][0]["hu"], abs=30)
    m = re.match(r"(-?\d+) HU \(SD (\d+) HU, (\d+) voxels\) \[E1, E2, E3\]", trace.answer)
    assert m, trace.answer
    assert int(m.group(1)) == round(measure.measurements["mean_intensity"].value)
    assert int(m.group(3)) == measure.data["voxels"]
    assert not [v for v in verify(None, trace) if v.label == "incorrect"]


@pytest.mark.parametrize("question", ["Is the kidney volume above 150 mL?", "What is the mean HU of the kidneys?"])
def test_two_organs_named_for_one_value_are_declined(question):
    action = decide(_state(question))
    assert action.tool is None and "names 2 organs (left kidney, right kidney) to measure" in action.answer
