"""The rules planner answers only what it can ground: probes of question wordings per family,
counting, and options picked only by what the question asks.

Most tests plan from a `State` built here (the study and the tool results a model would have
read), so they run no segmenter; one counts nodules on a phantom through the real tools.
"""

from __future__ import annotations

import re

import pytest

from mmreason.backends.rules.planner import decide
from mmreason.backends.rules.state import Result, Shown, State, VolumeInfo

CT = [VolumeInfo("0", "CT", False, (64, 64, 32))]
MR = [VolumeInfo("0", "MR", False, (64, 64, 24))]
XR = [VolumeInfo("0", "XR", True, (256, 256))]
PAIR = [VolumeInfo("0", "CT", False, (64, 64, 32)), VolumeInfo("1", "CT", False, (64, 64, 32))]
TARGETS = ["lungs", "lung_left", "lung_right", "body", "nodule", "lesion", "liver", "spleen", "kidney_left",
           "kidney_right", "heart"]


def _state(question: str, volumes=CT, results=(), options=None) -> State:
    shown = [Shown(f"V{i + 1}", v.shape_xyz[:2], v.id) for i, v in enumerate(volumes)]
    return State(question, options, list(volumes), shown, list(results), TARGETS)


def _segment(eid: str, voxels: int, components: int = 1, level: str = "ok", reasons=(), **data) -> Result:
    payload = {"evidence_id": eid, "data": {"voxels": voxels, "components": components, **data}}
    if level != "ok" or reasons:
        payload["quality"] = {"level": level, "reasons": list(reasons) or [f"a {level} reason"]}
    return Result("segment", {}, None, payload, [])


def _measure(eid: str, **numbers) -> Result:
    units = {"volume_mm3": "mm3", "volume_ml": "mL", "width_mm": "mm", "mean_intensity": "HU"}
    measurements = {k: [v, units.get(k, "mm")] for k, v in numbers.items()}
    return Result("measure", {}, None, {"evidence_id": eid, "measurements": measurements,
                                        "data": {"laterality": "left", "fraction_left": 0.9}}, [])


# --------------------------------------------------------------------------- probes per family

#: (question, volumes, first call or the reason of the refusal)
PROBES = [
    # lesion: presence, side, size
    ("Is there a lung nodule? Where is it and how large?", CT, "segment nodule"),
    ("Is there a hyperintense lesion in the brain?", MR, "segment lesion"),
    ("What is the diameter of the largest nodule?", CT, "segment nodule"),
    ("Is the nodule calcified?", CT, r"what a lesion is or looks like \(\"calcified\"\)"),
    ("Is the nodule solid or ground glass?", CT, "what a lesion is or looks like"),
    ("Is the nodule round with smooth margins?", CT, r"what a lesion is or looks like \(\"round\"\)"),
    ("What is the most likely diagnosis of the lung mass?", CT, "what a lesion is or looks like"),
    ("Which lobe contains the nodule?", CT, r"a lobe, segment or part of an organ \(\"lobe\"\)"),
    ("Is the nodule larger than 10 mm?", CT, "segment nodule"),
    ("Is there a nodule over 8 mm?", CT, "segment nodule"),
    ("Is the nodule larger than 10 mm?", XR, "3-D CT and MR only"),
    ("Is the nodule larger than 50%?", CT, r"the tools measure lengths, volumes and HU, not a percent"),
    ("What is the attenuation of the nodule?", CT, "segment nodule"),
    ("What is the diameter of the smallest nodule?", CT, "a comparison"),
    ("How far is the nodule from the pleura?", CT, "a distance or a relation"),
    ("What is the signal intensity of the brain lesion?", MR, "only CT values are in absolute units"),
    ("Is there a lesion in the pancreas?", CT, "asks about the pancreas, and the lesion search covers the lungs"),
    ("Is there a mediastinal mass?", CT, "asks about the mediastinal"),
    ("Is there a lesion in the liver?", MR, "asks about the liver, and the lesion search covers the brain"),
    ("Is there a nodule on this radiograph?", XR, "3-D CT and MR only"),
    # a lesion question on a 2-D image is declined for that, whatever else it asks ("hyperintense")
    ("Are there hyperintense lesions on this image? What is their total volume?", XR, "3-D CT and MR only"),
    # organ lesion
    ("Is there a focal lesion in the liver on this abdominal CT?", CT, "segment liver"),
    ("Is there a hepatic lesion?", CT, "segment liver"),
    ("What is the mean attenuation of the liver lesion in HU?", CT, "segment liver"),
    ("Is the liver lesion hypodense?", CT, r"\(\"hypodense\"\)"),
    ("Is there a lesion in the kidney?", CT, "one organ at a time"),
    ("Is the liver lesion larger than the spleen lesion?", CT, "a comparison"),
    # count
    ("How many lesions are in the liver?", CT, "segment liver"),
    ("How many nodules are there in the lungs?", CT, "segment nodule"),
    ("What is the number of lesions in the brain?", MR, "segment lesion"),
    ("Are there multiple pulmonary nodules?", CT, "segment nodule"),
    ("How many nodules are in the right lung?", CT, "segment nodule"),
    ("How many nodules are in the left and the right lung?", CT, "names both sides"),
    ("How many lesions are in the pancreas?", CT, "asks about the pancreas"),
    ("How many ribs are visible?", CT, "not one of the question types"),
    ("How many kidneys does the patient have?", CT, "not one of the question types"),
    # organ volume
    ("What is the volume of the liver?", CT, "segment liver"),
    ("How large is the spleen in mL?", CT, "segment spleen"),
    ("Is the spleen volume larger than the liver volume?", CT, "segment spleen"),
    ("Which kidney has the larger volume?", CT, "segment kidney_right"),
    ("Is the right lung larger than the left?", CT, "segment lung_right"),
    ("Is the liver attenuation lower than the spleen?", CT, r"a comparison .*\(\"lower than\"\)"),
    ("Is the liver volume above 2000 mL?", CT, "segment liver"),
    ("Is the liver longer than 16 cm?", CT, "not the craniocaudal span"),
    ("Is the mean attenuation of the liver below 40 HU?", CT, "segment liver"),
    ("Is the mean attenuation of the liver below 40 HU?", MR, "only CT values are in absolute units"),
    # a mean below a value, yes; what the tissue is (fat, fluid, hypodense ...), no
    ("Is the liver lesion hypodense, below 20 HU?", CT, r"\(\"hypodense\"\)"),
    ("Is the liver volume normal?", CT, r"whether a structure is normal"),
    ("How would you classify the splenic enlargement based on volume?", CT, "what a lesion is or looks like"),
    ("What is the mean HU of the liver?", CT, "segment liver"),
    ("What is the mean intensity of the liver?", MR, "only CT values are in absolute units"),
    # growth
    ("Did the nodule grow between the prior and the current scan?", PAIR, "segment nodule"),
    ("By how many mm did the nodule diameter change?", PAIR, "segment nodule"),
    ("Is the nodule larger than on the prior scan?", PAIR, "segment nodule"),
    ("Did the pancreatic lesion grow since the prior scan?", PAIR, "asks about the pancreatic"),
    # cardiothoracic ratio
    ("What is the cardiothoracic ratio?", XR, "segment lungs"),
    ("Is there cardiomegaly (a cardiothoracic ratio above 0.5) on this chest radiograph?", XR, "segment lungs"),
    ("Is the heart size normal?", XR, "segment lungs"),
    ("Is the cardiothoracic ratio greater than 0.55?", XR, "segment lungs"),
    ("Is the cardiothoracic ratio between 0.45 and 0.55?", XR, "several ratios"),
    # modality and plane
    ("What imaging modality is this?", CT, "view"),
    ("Is this an MRI?", CT, "view"),
    ("Is this a CT of the abdomen?", CT, "asks about the abdomen, and the modality/plane search covers the image"),
    # benchmark instructions appended to a question ask for nothing beyond it
    ("What is the cardiothoracic ratio?\nAnswer with a single word or a short phrase.", XR, "segment lungs"),
    ("What is the diameter of the nodule in mm?\nAnswer with a single number (no units, no extra words).", CT,
     "segment nodule"),
    ("Is there a single nodule?", CT, "segment nodule"),
    # nothing the backend handles
    ("Is there a pleural effusion?", CT, "not one of the question types"),
]


@pytest.mark.parametrize("question, volumes, expected", PROBES, ids=[p[0][:50] for p in PROBES])
def test_question_probes_plan_or_decline(question, volumes, expected):
    action = decide(_state(question, volumes))
    if action.tool is not None:
        first = f"{action.tool} {action.arguments.get('target', '')}".strip()
        assert first == expected, (question, action.thought)
    else:
        assert action.answer.startswith("I cannot answer") and re.search(expected, action.answer), action.answer


# --------------------------------------------------------------------------- counting

DTVQA = "How many lesions are in the liver?"
COUNT_OPTIONS = ["0", "1", "2", "3"]


def test_a_lesion_count_picks_the_option_stating_it():
    """DeepTumorVQA's counting question: the old planner measured the lesion and picked the option
    nearest its diameter ("D. 3"); the count is the search's components."""
    state = _state(DTVQA, results=[_segment("E1", 2000, target="liver"), _segment("E2", 48, components=1)],
                   options=COUNT_OPTIONS)
    action = decide(state)
    assert action.tool is None and action.tag == "B. 1 [E1, E2]"
    assert "1 focal lesions in the liver" in action.answer
    two = decide(_state(DTVQA, results=[_segment("E1", 2000), _segment("E2", 96, components=2)]))
    assert two.tag == "2 [E1, E2]"
    none = decide(_state(DTVQA, results=[_segment("E1", 2000), _segment("E2", 0, components=0)],
                         options=COUNT_OPTIONS))
    assert none.tag == "A. 0 [E1, E2]"


def test_a_count_no_option_states_is_declined():
    action = decide(_state(DTVQA, results=[_segment("E1", 2000), _segment("E2", 300, components=5)],
                           options=COUNT_OPTIONS))
    assert action.finding is None and action.answer.startswith("I cannot answer this multiple-choice question")
    assert '"5 [E1, E2]"' not in action.answer and '"5"' in action.answer and "A. 0; B. 1; C. 2; D. 3" in action.answer


def test_a_doubtful_search_gives_at_least_and_picks_only_an_option_it_implies():
    thick = "on 5 mm slices (thicker than 3 mm) nodules touching a vessel are not searched: one may have been missed"
    q = "How many nodules are in the lungs?"
    action = decide(_state(q, results=[_segment("E1", 120, components=2, level="doubtful", reasons=[thick])]))
    assert action.tag.startswith("at least 2 [E1] (uncertain: on 5 mm slices")
    assert "at least 2 nodule candidates in the lungs" in action.answer and "there may be more" in action.answer
    # options 0-3: only "3" is at least 3
    three = decide(_state(q, results=[_segment("E1", 120, components=3, level="doubtful", reasons=[thick])],
                          options=COUNT_OPTIONS))
    assert three.tag.startswith("D. 3 [E1] (uncertain:")
    # at least 1: 1, 2 and 3 all fit, so no option is picked
    one = decide(_state(q, results=[_segment("E1", 40, components=1, level="doubtful", reasons=[thick])],
                        options=COUNT_OPTIONS))
    assert one.finding is None and "matches none of the options" in one.answer
    # nothing found by a doubtful search is no count at all
    empty = decide(_state(q, results=[_segment("E1", 0, components=0, level="doubtful", reasons=[thick])]))
    assert empty.tag.startswith("I cannot answer reliably")
    # an implausible search gives no count either
    bad = decide(_state(q, results=[_segment("E1", 120, components=2, level="implausible")]))
    assert bad.finding is None and bad.tag.startswith("I cannot answer reliably")


def test_one_or_several_lesions_as_yes_no():
    many = "Are there multiple nodules in the lungs?"
    assert decide(_state(many, results=[_segment("E1", 90, components=3)])).tag == "Yes [E1]"
    assert decide(_state(many, results=[_segment("E1", 30, components=1)])).tag == "No [E1]"
    doubtful = decide(_state(many, results=[_segment("E1", 30, components=1, level="doubtful")]))
    assert doubtful.finding is None and "whether there is more than one is not known" in doubtful.answer
    solitary = "Is there a solitary pulmonary nodule?"
    assert decide(_state(solitary, results=[_segment("E1", 30, components=1)])).tag == "Yes [E1]"
    assert decide(_state(solitary, results=[_segment("E1", 90, components=2, level="doubtful")])).tag.startswith(
        "No [E1]")


def test_nodules_are_counted_on_a_phantom_through_the_tools():
    from grounding.tools import default_registry
    from imaging.phantoms import NoduleSpec, chest_ct
    from mmreason.backends import get_backend
    from mmreason.loop import run_episode

    ph = chest_ct(seed=1, spacing=(3.0, 3.0, 3.0), nodules=[NoduleSpec(diameter_mm=14.0, side="left"),
                                                            NoduleSpec(diameter_mm=14.0, side="right")])
    trace = run_episode(ph.volume, "How many nodules are there?", get_backend("rules"),
                        registry=default_registry(), options=["1", "2", "3", "4"])
    assert [c.name for c in trace.tool_calls()] == ["segment"]
    assert trace.answer_option == "B" and trace.answer.startswith("B. 2 [E1]"), trace.answer


# --------------------------------------------------------------------------- options: only what is asked picks one

def _nodule(question: str, options: list[str], diameter: float = 12.0, volume_mm3: float = 900.0) -> State:
    return _state(question, results=[_segment("E1", 120, target="nodule", laterality="left"),
                                     _measure("E2", longest_diameter_mm=diameter, perpendicular_diameter_mm=10.0,
                                              volume_mm3=volume_mm3, centroid_x_mm=30.0, centroid_y_mm=0.0,
                                              centroid_z_mm=0.0)], options=options)


def test_a_side_does_not_pick_an_option_for_a_size_question():
    action = decide(_nodule("What is the diameter of the nodule?", ["Left lung, 30 mm", "Right lung, 12 mm"]))
    assert action.tag == "B. Right lung, 12 mm [E1, E2]"


def test_a_number_of_another_dimension_picks_no_option():
    action = decide(_nodule("What is the volume of the nodule?", ["5 mm", "10 mm", "15 mm"]))
    assert action.finding is None and "matches none of the options" in action.answer


def test_a_figure_far_from_every_option_picks_none():
    """255 mL against options 150/700/600/5000: the nearest (150) would be a guess."""
    question = "What is the volume of the liver in cm³?"
    options = ["150.0", "700.0", "600.0", "5000.0"]
    far = decide(_state(question, results=[_segment("E1", 2555, target="liver"),
                                           _measure("E2", volume_ml=255.5, volume_mm3=255_500.0,
                                                    longest_diameter_mm=150.0)], options=options))
    assert far.finding is None and '"255.5 mL [E1, E2]"' not in far.answer and "matches none" in far.answer
    near = decide(_state(question, results=[_segment("E1", 6900, target="liver"),
                                            _measure("E2", volume_ml=690.0, volume_mm3=690_000.0,
                                                     longest_diameter_mm=150.0)], options=options))
    assert near.tag == "B. 700.0 [E1, E2]"


def test_is_this_an_mri_on_a_ct_is_answered_no():
    view = Result("view", {}, None, {"evidence_id": "E1"}, [])
    action = decide(_state("Is this an MRI?", results=[view], options=["Yes", "No"]))
    assert action.tag == "B. No [E1]"


@pytest.mark.parametrize("question, ratio, expected", [
    ("Is the heart size normal?", 0.62, "No"),
    ("Is the heart size normal?", 0.40, "Yes"),
    ("Is the cardiothoracic ratio greater than 0.6?", 0.55, "No"),
    ("Is the cardiothoracic ratio less than 0.5?", 0.40, "Yes"),
    ("Is there cardiomegaly?", 0.62, "Yes"),
])
def test_a_yes_no_about_the_ratio_answers_what_it_asks(question, ratio, expected):
    thorax, heart = 300.0, 300.0 * ratio
    results = [_segment("E1", 5000), _measure("E2", width_mm=thorax), _segment("E3", 2000),
               _measure("E4", width_mm=heart)]
    action = decide(_state(question, XR, results))
    assert action.tag.startswith(f"{expected}; CTR {ratio:.2f}"), action.tag


def test_yes_no_or_side_options_say_what_is_asked():
    """Options that are only yes/no, or only sides, are answered by presence or side even when the
    wording has no auxiliary ("Lung nodule present?")."""
    assert decide(_nodule("Lung nodule present?", ["Yes", "No"])).tag == "A. Yes [E1, E2]"
    assert decide(_nodule("Nodule location?", ["Right lung", "Left lung", "Both lungs"])).tag == "B. Left lung [E1, E2]"


def test_the_plane_of_a_volume_with_an_assumed_orientation_is_not_stated():
    npy = [VolumeInfo("0", "CT", False, (16, 16, 8), orientation_assumed=True)]
    action = decide(_state("In which plane is this image taken?", npy, options=["Axial", "Coronal", "Sagittal"]))
    assert action.tool is None and "orientation is assumed" in action.answer
    header = decide(_state("In which plane is this image taken?", CT))
    assert header.tool == "view"


def test_several_lesions_in_an_organ_are_not_called_one():
    """The organ search's components were measured together and called "one lesion"."""
    results = [_segment("E1", 2000, target="liver"), _segment("E2", 96, components=3),
               _measure("E3", longest_diameter_mm=60.0, perpendicular_diameter_mm=20.0, volume_mm3=9000.0,
                        centroid_x_mm=0.0, centroid_y_mm=0.0, centroid_z_mm=0.0)]
    size = decide(_state("How large is the liver lesion?", results=results))
    assert size.answer.startswith("3 candidate lesions were found in the liver, measured together")
    assert size.tag.endswith("(uncertain: the 3 candidates are measured together, not one lesion alone)")
    presence = decide(_state("Is there a lesion in the liver?", results=results))
    assert presence.tag == "Yes [E1, E2, E3]"


# --------------------------------------------------------------------------- which candidate, which side

def _candidates(sphere_z: tuple[int, int]):
    """A 3-D lesion (left, 6 x 10 x 10 voxels, z ``sphere_z``) and a thin wide false find (right, one
    slice of 16 x 16 voxels at z 10, a third of the lesion's volume but larger on its own slice): the
    volume, its mask, and the segment overlay on axial slice 10 with the mask painted red."""
    import numpy as np
    from PIL import Image

    from imaging.views import plane_geometry
    from imaging.volume import Volume

    zyx_to_lps = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    vol = Volume(data=np.zeros((20, 64, 64), dtype=np.float32), spacing=(2.0, 1.0, 1.0), affine=zyx_to_lps,
                 modality="MR")
    mask = np.zeros(vol.shape, dtype=bool)
    mask[sphere_z[0]:sphere_z[1], 27:37, 42:52] = True  # array x grows to the patient's left (LPS)
    mask[10, 24:40, 8:24] = True
    geometry = plane_geometry(vol, "axial", 10)
    rgb = np.full((geometry.height, geometry.width, 3), 90, dtype=np.uint8)
    rgb[mask[10]] = (255, 48, 48)  # the segment tool's red; this grid shows voxels 1:1
    overlay = Shown("V2", (2 * geometry.width, 2 * geometry.height), "0", Image.fromarray(rgb), geometry)
    return vol, mask, overlay


def _seg_with_mask(mask, overlay) -> Result:
    from grounding.measurements import mask_bbox

    bbox = mask_bbox(mask)
    return Result("segment", {"target": "lesion"}, None,
                  {"evidence_id": "E1", "data": {"voxels": int(mask.sum()), "components": 2, "volume": "0",
                                                 "bbox_voxels": [[s.start, s.stop] for s in bbox]}},
                  [overlay], mask)


def test_the_largest_candidate_in_3d_is_pointed_at_not_the_largest_on_the_overlay():
    # a brain tumour (6.9 mL) was answered on the wrong side: a 4 mL false find looked larger on the
    # overlay slice. The choice is the mask's largest 3-D component, pointed at in the model's frame.
    from imaging.locate import locate_point

    vol, mask, overlay = _candidates((7, 13))  # the lesion crosses the overlay slice, smaller there
    mr = [VolumeInfo("0", "MR", False, (64, 64, 20), voxel_mm3=2.0)]
    action = decide(_state("Is there a lesion? Which side?", mr, [_seg_with_mask(mask, overlay)]))
    assert action.tool == "segment" and action.arguments["view_id"] == "V2", action
    located = locate_point(overlay.geometry, action.arguments["point_2d"], frame_size=overlay.size)
    z, y, x = located.index()
    assert mask[z, y, x] and x >= 42, (action.arguments, located.index())  # inside the 3-D lesion
    assert "1.20 mL" in action.thought  # 600 voxels of 2 mm3
    # a served conversation has no mask: the overlay image is all there is to go by
    served = _seg_with_mask(mask, overlay)
    served.mask = None
    point = decide(_state("Is there a lesion? Which side?", mr, [served])).arguments["point_2d"]
    assert locate_point(overlay.geometry, point, frame_size=overlay.size).index()[2] < 24


def test_the_largest_candidate_off_the_overlay_slice_is_viewed_first():
    from imaging.locate import locate_point
    from imaging.views import plane_geometry

    vol, mask, overlay = _candidates((2, 8))  # the lesion does not reach the overlay slice
    mr = [VolumeInfo("0", "MR", False, (64, 64, 20), voxel_mm3=2.0)]
    seg = _seg_with_mask(mask, overlay)
    action = decide(_state("Is there a lesion? Which side?", mr, [seg]))
    assert action.tool == "view" and action.arguments["plane"] == "axial", action
    assert 2 <= action.arguments["index"] < 8
    view = Shown("V3", (128, 128), "0", None, plane_geometry(vol, "axial", action.arguments["index"]))
    viewed = Result("view", action.arguments, None, {"evidence_id": "E2"}, [view])
    action = decide(_state("Is there a lesion? Which side?", mr, [seg, viewed]))
    assert action.tool == "segment" and action.arguments["view_id"] == "V3", action
    z, y, x = locate_point(view.geometry, action.arguments["point_2d"], frame_size=view.size).index()
    assert mask[z, y, x] and x >= 42


def _bilateral(components_left: int, components_right: int, right_mm3: float, laterality: str) -> Result:
    return _segment("E1", 900, components=components_left + components_right, target="lesion",
                    laterality=laterality, components_left=components_left, components_right=components_right,
                    components_midline=0, largest_left_mm3=400.0, largest_right_mm3=right_mm3)


def _measured_right(eid: str) -> Result:
    result = _measure(eid, longest_diameter_mm=9.0, perpendicular_diameter_mm=8.0, volume_mm3=500.0,
                      centroid_x_mm=-30.0, centroid_y_mm=0.0, centroid_z_mm=0.0)
    result.payload["data"] = {"laterality": "right", "fraction_left": 0.0}
    return result


@pytest.mark.parametrize("volumes, site", [(MR, "hemisphere"), (CT, "lung")])
def test_lesions_on_both_sides_are_not_given_one_side(volumes, site):
    # bilateral MS lesions were answered "right hemisphere" from the side of the measured (or the
    # combined) centroid; a fully bilateral load would have read "midline"
    word = "lesion" if site == "hemisphere" else "nodule"
    seg = _bilateral(2, 3, 500.0, "right")
    picked = _segment("E2", 250, target=word, laterality="right")
    results = [seg, picked, _measured_right("E3")]
    action = decide(_state(f"Is there a {word}? Which side is it on?", volumes, results))
    assert f"on both sides (2 in the left {site}, 3 in the right" in action.answer, action.answer
    assert f"the largest, the {word}, is in the right {site}" in action.answer
    assert action.tag.startswith(f"Yes; both sides (largest: right {site})"), action.tag
    # a yes/no naming a side: there are lesions on that side even though the largest is on the other
    assert decide(_state(f"Is the {word} in the left {site}?", volumes, results)).tag.startswith("Yes")
    options = decide(_state(f"Which side is the {word} on?", volumes, results, options=["left", "right", "both"]))
    assert options.tag.startswith("C. both"), options.tag
    # measured together (a load): their combined centroid is not their side
    load = decide(_state(f"What is the total {word} burden and on which side?", volumes,
                         [_bilateral(2, 3, 500.0, "midline"), _measured_right("E2")]))
    assert "they lie on both sides" in load.answer and "midline" not in load.tag, load.tag


def test_a_few_voxels_on_the_other_side_do_not_make_a_lesion_bilateral():
    seg = _bilateral(1, 1, 10.0, "right")  # 10 mm3 against 400: a false find, not a second lesion
    seg.payload["data"]["largest_right_mm3"], seg.payload["data"]["largest_left_mm3"] = 400.0, 10.0
    action = decide(_state("Is there a lesion? Which side is it on?", MR,
                           [seg, _segment("E2", 250, laterality="right"), _measured_right("E3")]))
    assert action.tag.startswith("Yes; right hemisphere"), action.tag
