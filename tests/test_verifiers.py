"""Rule verifiers on hand-built traces whose right verdicts are known."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from grounding.evidence import Evidence, Measurement
from grounding.quality import Quality
from imaging.views import slice_view
from imaging.volume import Volume
from mmreason.case import Case
from mmreason.trace import ImageRef, ToolCall, Trace, Turn
from mmreason.verifiers import StepVerdict, VerifierConfig, VerifierError, split_steps, verify

SHAPE = (8, 40, 40)


def _volume() -> Volume:
    return Volume.from_array(np.zeros(SHAPE, np.float32), spacing=(1.0, 1.0, 1.0), modality="CT")


def _nodule_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[3:6, 12:22, 10:20] = True  # 300 voxels of 1 mm3, centred at x=14.5 (patient right)
    return mask


def _call(name: str, arguments: dict, evidence_id: str | None = None, error: str | None = None) -> ToolCall:
    raw = "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"
    return ToolCall(name=name, arguments=arguments, raw=raw, evidence_id=evidence_id, error=error)


def _view_evidence() -> Evidence:
    view = slice_view(_volume(), "axial", 4)
    view.view_id = "V1"
    return Evidence("E1", "view", {"plane": "axial", "index": 4}, "V1: axial slice 4", views=[view],
                    data={"view_id": "V1", "volume": "0"})


def _segment_evidence(laterality: str = "right", mask: np.ndarray | None = None) -> Evidence:
    mask = _nodule_mask() if mask is None else mask
    return Evidence("E2", "segment", {"target": "nodule"}, f"nodule segmented on the patient's {laterality}",
                    mask=mask, mask_volume="0",
                    measurements={"volume_mm3": Measurement(300.0, "mm3"), "volume_ml": Measurement(0.3, "mL"),
                                  "longest_diameter_mm": Measurement(14.1, "mm"),
                                  "centroid_x_mm": Measurement(14.5, "mm")},
                    data={"laterality": laterality})


def nodule_trace(claims: str, answer: str = "<answer>Yes, a nodule in the right lung [E2]</answer>",
                 question: str = "Is there a lung nodule?", segment: Evidence | None = None,
                 images: list[ImageRef] | None = None) -> Trace:
    """view (E1) -> box claim -> segment (E2) -> ``claims`` -> ``answer``."""
    c1 = _call("view", {"plane": "axial", "index": 4}, "E1")
    c2 = _call("segment", {"target": "nodule"}, "E2")
    turns = [
        Turn("system", "tools..."),
        Turn("user", question, images=images or []),
        Turn("assistant", "<think>Look at the middle axial slice first.</think>\n" + c1.raw, tool_calls=[c1]),
        Turn("tool", "[E1] V1: axial slice 4", evidence_ids=["E1"]),
        Turn("assistant", "A round opacity, the nodule, is at [10, 12, 20, 22] on V1 [E1].\n\n" + c2.raw,
             tool_calls=[c2]),
        Turn("tool", "[E2] nodule", evidence_ids=["E2"]),
        Turn("assistant", claims + "\n\n" + answer),
    ]
    return Trace(question=question, turns=turns, evidence=[_view_evidence(), segment or _segment_evidence()],
                 answer="Yes", cited_evidence=["E2"], status="answered")


def case_with(**kw) -> Case:
    return Case(id="c1", task="synthetic", images=["ct.nii.gz"], question="Is there a lung nodule?", answer="yes",
                answer_type="closed", **kw)


def by_step(verdicts: list[StepVerdict]) -> dict[int, StepVerdict]:
    return {v.step: v for v in verdicts}


# -- steps ---------------------------------------------------------------------------------------
def test_split_steps_follows_turns_calls_and_paragraphs():
    trace = nodule_trace("The nodule measures 14 mm [E2].\n\nIt lies in the right lung [E2].")
    steps = split_steps(trace)
    assert [s.kind for s in steps] == ["text", "tool_call", "text", "tool_call", "text", "text", "answer"]
    assert steps[0].text == "Look at the middle axial slice first."  # <think> content kept, tags dropped
    assert steps[1].tool_call.name == "view" and steps[1].produced == ["E1"]
    assert steps[2].cited == ["E1"] and steps[4].cited == ["E2"]
    assert steps[6].text == "Yes, a nodule in the right lung [E2]" and steps[6].cited == ["E2"]
    assert [s.index for s in steps] == list(range(7))
    assert all(s.turn in (2, 4, 6) for s in steps)


def test_correct_trace_gets_correct_verdicts():
    trace = nodule_trace("The nodule measures 14 mm and 0.3 mL [E2].\n\nIt lies in the right lung [E2].")
    v = by_step(verify(case_with(boxes=[{"label": "nodule", "image": 0, "zyx_min": [3, 12, 10],
                                         "zyx_max": [6, 22, 20]}]), trace))
    assert len(v) == 7
    assert v[0].label == "unverifiable" and v[0].score == 0.5
    assert v[1].label == "correct" and v[1].verifier == "tool"
    assert v[2].label == "correct" and v[2].iou == pytest.approx(1.0)
    assert v[3].label == "correct" and v[3].iou == pytest.approx(1.0)  # segmentation vs ground truth
    assert v[4].label == "correct", v[4].reason
    assert v[5].label == "correct", v[5].reason
    assert v[6].label == "correct", v[6].reason
    assert all(x.error_type is None for x in v.values())


@pytest.mark.parametrize("claim, ok", [
    ("The nodule measures 14 mm [E2].", True),
    ("The nodule measures 1.4 cm [E2].", True),          # cm -> mm
    ("Its volume is 300 mm3 [E2].", True),
    ("Its volume is 0.3 cm³ [E2].", True),               # cm3 -> mm3
    ("The nodule measures 20 mm [E2].", False),
    ("Its volume is 4.1 mL [E2].", False),
    ("The nodule measures 12.9 mm [E2].", True),        # within 10%
    ("The nodule measures 12.5 mm [E2].", False),       # 11% off
])
def test_measurement_claims(claim, ok):
    v = by_step(verify(None, nodule_trace(claim)))
    assert v[4].label == ("correct" if ok else "incorrect"), v[4].reason
    if not ok:
        assert v[4].error_type == "measurement_mismatch" and "E2" in v[4].evidence_ids


def test_acquisition_numbers_and_centroids_are_not_claims():
    v = by_step(verify(None, nodule_trace("With 1 mm slice thickness and a 5 mm margin the view is sharp [E1].")))
    assert v[4].label == "unverifiable"
    # 14.5 mm equals only the centroid coordinate, which is a position, not a size -> mismatch
    v = by_step(verify(None, nodule_trace("The nodule measures 17 mm [E2].")))
    assert v[4].label == "incorrect"


def test_a_caveat_quoting_the_tools_quality_reason_is_not_a_claim():
    # the tool's own doubt carries its settings' numbers; the step repeating it claims none of them
    seg = _segment_evidence()
    seg.quality = Quality("doubtful", ["on 5 mm slices (thicker than 3 mm) nodules touching a vessel are not "
                                       "searched: one may have been missed"])
    caveat = f"Caveat: {seg.quality.reasons[0]}."
    v = by_step(verify(None, nodule_trace(f"The nodule measures 14 mm [E2]. {caveat}", segment=seg)))
    assert v[4].label == "correct", v[4].reason
    # a wrong size beside the caveat is still read and still wrong
    v = by_step(verify(None, nodule_trace(f"The nodule measures 3 mm [E2]. {caveat}", segment=seg)))
    assert v[4].label == "incorrect" and "'3 mm'" in v[4].reason


def test_wrong_laterality_in_text_and_answer():
    trace = nodule_trace("It lies in the left lung [E2].", answer="<answer>Left lung [E2]</answer>")
    v = by_step(verify(None, trace))
    assert v[4].label == "incorrect" and v[4].error_type == "laterality"
    assert v[5].label == "incorrect" and v[5].error_type == "laterality"
    # a negated or image-relative side is not a claim about the patient
    v = by_step(verify(None, nodule_trace("There is no nodule in the left lung [E2].")))
    assert v[4].label == "unverifiable"
    v = by_step(verify(None, nodule_trace("It appears on the left of the image [E2].")))
    assert v[4].label == "unverifiable"


def test_left_out_is_not_a_side_and_components_on_both_sides_have_none():
    """A FLAIR answer's caveat "(160 voxels left out ...)" was read as "states left", and a search
    "on both sides of the midline (..., 27 at the midline)" as measured at the midline: two steps of
    a right answer were labelled incorrect."""
    v = by_step(verify(None, nodule_trace("Some voxels were left out where the surroundings are as bright [E2].")))
    assert v[4].label != "incorrect" and "states left" not in v[4].reason
    both = Evidence("E2", "segment", {"target": "lesion"}, "Segmented 'lesion': on both sides of the midline "
                    "(its components lie on both sides: 75 left, 74 right, 27 at the midline)", mask=_nodule_mask(),
                    mask_volume="0", measurements={"volume_ml": Measurement(43.9, "mL")})
    v = by_step(verify(None, nodule_trace("175 candidates lie in the right and left hemispheres [E2].",
                                          answer="<answer>Yes; both sides [E2]</answer>", segment=both)))
    assert all(x.label != "incorrect" for x in v.values()), [(x.step, x.reason) for x in v.values()]
    v = by_step(verify(None, nodule_trace("The largest lies in the left hemisphere [E2].", segment=both)))
    assert "measured midline" not in v[4].reason


def test_yes_no_side_question():
    q = "Is the nodule in the left lung?"
    v = by_step(verify(None, nodule_trace("Done [E2].", answer="<answer>Yes [E2]</answer>", question=q)))
    assert v[5].label == "incorrect" and v[5].error_type == "laterality"
    v = by_step(verify(None, nodule_trace("Done [E2].", answer="<answer>No [E2]</answer>", question=q)))
    assert v[5].label == "correct"


def test_laterality_against_ground_truth_label():
    case = case_with(boxes=[{"label": "right lung nodule", "image": 0, "zyx_min": [3, 12, 10], "zyx_max": [6, 22, 20]}])
    v = by_step(verify(case, nodule_trace("The nodule sits in the left upper lobe.")))
    assert v[4].label == "incorrect" and v[4].error_type == "laterality"
    # a sentence about another structure is not held against the nodule's side
    v = by_step(verify(case, nodule_trace("The left lung is well aerated.")))
    assert v[4].label == "unverifiable"


def test_unknown_and_future_evidence_ids():
    v = by_step(verify(None, nodule_trace("As E9 shows, the nodule is 14 mm.")))
    assert v[4].label == "incorrect" and v[4].error_type == "unknown_evidence" and "E9" in v[4].reason
    trace = nodule_trace("ok")
    trace.turns[4].text = trace.turns[4].text.replace("[E1]", "[E2]")  # cites E2 before segment ran
    v = by_step(verify(None, trace))
    assert v[2].label == "incorrect" and v[2].error_type == "unknown_evidence"


def test_box_claims_against_evidence_and_ground_truth():
    gt = case_with(boxes=[{"label": "nodule", "image": 0, "zyx_min": [3, 12, 10], "zyx_max": [6, 22, 20]}])
    trace = nodule_trace("The nodule is inside [12, 14, 18, 20] on V1 [E2].")
    v = by_step(verify(gt, trace))
    # 6x6 box inside a 10x10 nodule: IoU 0.36 against both the mask and the ground truth
    assert v[4].label == "incorrect" and v[4].error_type == "box_mismatch"
    assert v[4].iou == pytest.approx(0.36)
    trace = nodule_trace("The nodule is at [25, 25, 35, 35] on V1 [E2].")
    v = by_step(verify(gt, trace))
    assert v[4].label == "incorrect" and v[4].iou == 0.0
    trace = nodule_trace("The nodule is at [50, 50, 60, 60] on V1.")  # outside the 40x40 view
    v = by_step(verify(gt, trace))
    assert v[4].label == "incorrect" and "outside" in v[4].reason
    # the claimed slice misses the ground truth along z: IoU 0 even with the same in-plane box
    off = case_with(boxes=[{"label": "nodule", "image": 0, "zyx_min": [6, 12, 10], "zyx_max": [8, 22, 20]}])
    v = by_step(verify(off, nodule_trace("ok")))
    assert v[2].label == "incorrect" and v[2].iou == 0.0


def test_box_in_the_frame_the_model_saw():
    # the model saw V1 (40x40) resized to 80x80: its box [20, 24, 40, 44] is [10, 12, 20, 22] on V1
    images = [ImageRef(index=1, view_id="V1", size=(40, 40), model_size=(80, 80))]
    gt = case_with(boxes=[{"label": "nodule", "image": 0, "zyx_min": [3, 12, 10], "zyx_max": [6, 22, 20]}])
    trace = nodule_trace("The nodule is at [20, 24, 40, 44] in Image 1.", images=images)
    v = by_step(verify(gt, trace))
    assert v[4].label == "correct" and v[4].iou == pytest.approx(1.0)


def test_point_claims():
    v = by_step(verify(None, nodule_trace("The nodule centre is at point (15, 17) on V1 [E2].")))
    assert v[4].label == "correct"
    v = by_step(verify(None, nodule_trace("The nodule centre is at point (30, 30) on V1 [E2].")))
    assert v[4].label == "incorrect" and v[4].error_type == "point_outside"


def test_ground_truth_mask_from_nifti(tmp_path):
    # canonical (z, y, x) LPS -> NIfTI (i, j, k) = (x, y, z) with an RAS affine that flips x and y
    mask = _nodule_mask()
    path = tmp_path / "nodule.nii.gz"
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0).astype(np.uint8), np.diag([-1.0, -1.0, 1.0, 1.0])), path)
    case = case_with(masks={"nodule": str(path)})
    v = by_step(verify(case, nodule_trace("ok")))
    assert v[2].label == "correct" and v[2].iou == pytest.approx(1.0)


def test_missing_ground_truth_mask_raises(tmp_path):
    with pytest.raises(VerifierError, match="does not exist"):
        verify(case_with(masks={"nodule": str(tmp_path / "missing.nii.gz")}), nodule_trace("ok"))


def test_presence_answer_against_segmentation():
    empty = _segment_evidence(mask=np.zeros(SHAPE, bool))
    v = verify(None, nodule_trace("Segmented [E2].", segment=empty))
    assert v[-1].label == "incorrect" and v[-1].error_type == "inconsistent_answer"
    v = verify(None, nodule_trace("Segmented [E2].", answer="<answer>No nodule [E2]</answer>", segment=empty))
    assert v[-1].label == "correct"
    v = verify(None, nodule_trace("Segmented [E2].", answer="<answer>No, there is no nodule.</answer>"))
    assert v[-1].label == "incorrect" and v[-1].error_type == "inconsistent_answer"


def test_format_errors():
    v = verify(None, nodule_trace("ok", answer="no tags here"))
    assert v[-1].label == "incorrect" and v[-1].error_type == "format" and "<answer>" in v[-1].reason
    v = verify(None, nodule_trace("ok", answer="<answer>Yes [E2]</answer> <answer>No</answer>"))
    assert v[-1].label == "incorrect" and v[-1].error_type == "format"
    trace = nodule_trace("ok")
    bad = ToolCall(name="", arguments={}, raw='<tool_call>{"name": crop, </tool_call>', error="could not read")
    trace.turns[4] = Turn("assistant", "Zoom in.\n" + bad.raw, tool_calls=[bad])
    trace.evidence = trace.evidence[:1]
    trace.turns[5] = Turn("tool", "Error: could not read")
    v = by_step(verify(None, trace))
    steps = split_steps(trace)
    k = next(s.index for s in steps if s.kind == "tool_call" and s.tool_call is bad)
    assert v[k].label == "incorrect" and v[k].error_type == "format"
    # a well-formed call the tool rejected is a tool error, not a format error
    failed = _call("crop", {"view_id": "V7", "bbox_2d": [1, 2, 3, 4]}, error="unknown view_id 'V7'")
    trace.turns[4] = Turn("assistant", "Zoom in.\n" + failed.raw, tool_calls=[failed])
    v = by_step(verify(None, trace))
    assert v[k].label == "incorrect" and v[k].error_type == "tool_error"


def test_multiple_choice_answer_must_name_an_option():
    trace = nodule_trace("ok", answer="<answer>maybe</answer>")
    trace.options = ["yes", "no"]
    assert verify(None, trace)[-1].error_type == "format"
    trace = nodule_trace("ok", answer="<answer>A [E2]</answer>")
    trace.options = ["right lung", "left lung"]
    assert verify(None, trace)[-1].label == "correct"


def _growth_trace(answer: str, claims: str = "Compared [E1, E2].") -> Trace:
    def seg(eid: str, vol: str, mm3: float, diam: float) -> Evidence:
        return Evidence(eid, "segment", {"target": "nodule", "volume": vol}, "nodule", mask_volume=vol,
                        measurements={"volume_mm3": Measurement(mm3, "mm3"),
                                      "longest_diameter_mm": Measurement(diam, "mm")},
                        data={"laterality": "left"})
    c1, c2 = _call("segment", {"target": "nodule", "volume": "prior"}, "E1"), _call(
        "segment", {"target": "nodule", "volume": "current"}, "E2")
    turns = [Turn("user", "Has the nodule grown?"),
             Turn("assistant", c1.raw + c2.raw, tool_calls=[c1, c2]),
             Turn("tool", "E1, E2", evidence_ids=["E1", "E2"]),
             Turn("assistant", f"{claims}\n\n{answer}")]
    return Trace(question="Has the nodule grown since the prior study?", turns=turns,
                 evidence=[seg("E1", "prior", 500.0, 10.0), seg("E2", "current", 800.0, 12.0)])


@pytest.mark.parametrize("answer, label", [
    ("<answer>Yes, it grew [E1, E2]</answer>", "correct"),
    ("<answer>It increased in size</answer>", "correct"),
    ("<answer>It shrank [E1, E2]</answer>", "incorrect"),
    ("<answer>No, it did not grow; it is stable</answer>", "incorrect"),
])
def test_growth_answer_against_measured_change(answer, label):
    v = verify(None, _growth_trace(answer))
    assert v[-1].label == label, v[-1].reason
    if label == "incorrect":
        assert v[-1].error_type == "inconsistent_answer"


def test_growth_against_shrinking_measurements():
    trace = _growth_trace("<answer>The nodule grew [E1, E2]</answer>")
    trace.evidence[0].mask_volume, trace.evidence[1].mask_volume = "current", "prior"  # now it shrank
    v = verify(None, trace)
    assert v[-1].label == "incorrect" and "-37.5%" in v[-1].reason


def test_change_claims_are_measured_from_pairs():
    v = verify(None, _growth_trace("<answer>It grew [E1, E2]</answer>", "It grew by 300 mm3 (60%) and 2 mm [E1, E2]."))
    assert v[-2].label == "correct", v[-2].reason
    v = verify(None, _growth_trace("<answer>It grew [E1, E2]</answer>", "It grew by 45% [E1, E2]."))
    assert v[-2].label == "incorrect"


@pytest.mark.parametrize("claims, shrink, label", [
    ("It grew by +2.0 mm (+60%) [E1, E2].", False, "correct"),        # 10 -> 12 mm, 500 -> 800 mm3
    ("The diameter changed by 2 mm, volume by 300 mm3 [E1, E2].", False, "correct"),  # unsigned: magnitude
    ("Longest diameter 10 -> 12 mm (-2.0 mm) [E1, E2].", False, "incorrect"),  # right size, wrong sign
    ("Volume change -60% [E1, E2].", False, "incorrect"),
    ("Longest diameter 12 -> 10 mm (-2.0 mm, -37.5% by volume) [E1, E2].", True, "correct"),
    ("It shrank by \u22122 mm [E1, E2].", True, "correct"),             # Unicode minus
    ("It shrank by 2 mm (38%) [E1, E2].", True, "correct"),
    ("Change +2 mm [E1, E2].", True, "incorrect"),
    ("Change +300 mm3 [E1, E2].", True, "incorrect"),
])
def test_signed_change_claims_follow_time_order(claims, shrink, label):
    trace = _growth_trace("<answer>See above [E1, E2]</answer>", claims)
    if shrink:
        trace.evidence[0].mask_volume, trace.evidence[1].mask_volume = "current", "prior"
    v = verify(None, trace)
    assert v[-2].label == label, v[-2].reason
    if label == "incorrect":
        assert v[-2].error_type == "measurement_mismatch"


def test_signed_change_of_measure_evidence_and_unknown_order():
    # a "measure" result names its study only in data["volume"], as the measure tool writes it
    def measured(eid: str, vol: str, diam: float) -> Evidence:
        return Evidence(eid, "measure", {"evidence_id": "E0"}, "nodule", data={"volume": vol},
                        measurements={"longest_diameter_mm": Measurement(diam, "mm")})

    for vols, claim, label in ((("0", "1"), "-4.9 mm", "correct"), (("0", "1"), "+4.9 mm", "incorrect"),
                               (("1", "0"), "+4.9 mm", "correct"), (("a", "b"), "+4.9 mm", "correct"),
                               (("a", "b"), "-4.9 mm", "correct"), (("a", "b"), "-3.0 mm", "incorrect")):
        trace = Trace(question="Did it grow?", evidence=[measured("E1", vols[0], 8.9), measured("E2", vols[1], 4.0)],
                      turns=[Turn("assistant", f"8.9 mm -> 4.0 mm ({claim}) [E1, E2].\n\n<answer>no [E1, E2]</answer>")])
        assert verify(None, trace)[-2].label == label, (vols, claim)


@pytest.mark.parametrize("answer, ctr, label", [
    ("Yes, cardiomegaly [E1]", 0.56, "correct"),
    ("No cardiomegaly; the heart is normal [E1]", 0.56, "incorrect"),
    ("No [E1]", 0.45, "correct"),
    ("Yes [E1]", 0.45, "incorrect"),
])
def test_cardiomegaly_against_ctr(answer, ctr, label):
    ev = Evidence("E1", "measure", {"target": "ctr"}, f"CTR {ctr}", measurements={"ctr": Measurement(ctr, "ratio")})
    call = _call("measure", {"target": "ctr"}, "E1")
    trace = Trace(question="Is there cardiomegaly?", evidence=[ev], turns=[
        Turn("assistant", call.raw, tool_calls=[call]), Turn("tool", "E1"),
        Turn("assistant", f"The CTR is 0.56 [E1].\n\n<answer>{answer}</answer>")])
    v = verify(None, trace)
    assert v[-1].label == label, v[-1].reason
    assert v[-2].label == ("correct" if ctr == 0.56 else "incorrect")  # the stated CTR 0.56


def test_verdict_json_round_trip_and_validation():
    verdicts = verify(None, nodule_trace("It measures 20 mm [E2]."))
    for v in verdicts:
        assert StepVerdict.from_json(v.to_json()) == v
        assert 0.0 <= v.score <= 1.0
    with pytest.raises(VerifierError):
        StepVerdict(0, "maybe", 0.5)
    with pytest.raises(VerifierError):
        StepVerdict(0, "correct", 1.5)


def test_verify_rejects_unknown_kinds_and_missing_prm():
    trace = nodule_trace("ok")
    with pytest.raises(VerifierError, match="unknown verifier kind"):
        verify(None, trace, kinds=("vibes",))
    with pytest.raises(VerifierError, match="PRMScorer.from_pretrained"):
        verify(None, trace, kinds=("rule", "prm"))


def test_config_thresholds_are_used():
    loose = VerifierConfig(iou_threshold=0.3)
    v = by_step(verify(None, nodule_trace("The nodule is inside [12, 14, 18, 20] on V1 [E2]."), config=loose))
    assert v[4].label == "correct"


def test_stated_quantities_skip_settings_and_coordinates():
    from mmreason.verifiers.measurement import stated_quantities

    text = ("With 1.25 mm slice thickness and a 10 mm margin, the nodule centred at x=-52.2, z=+73.0 mm is "
            "12 x 8 mm, 0.4 mL, mean -101 HU, CTR of 52%; the cardiothoracic ratio is measured on a 2-D image.")
    got = [(q.dimension, q.value) for q in stated_quantities(text)]
    assert sorted(got) == sorted([("ratio", 0.52), ("length", 12.0), ("length", 8.0), ("volume", 400.0),
                                  ("intensity", -101.0)])
    assert [(q.dimension, q.value) for q in stated_quantities("4.5", default_unit="mL")] == [("volume", 4500.0)]


def test_ratio_claim_from_two_widths():
    heart = Evidence("E1", "measure", {}, "heart", measurements={"longest_diameter_mm": Measurement(110.0, "mm")})
    thorax = Evidence("E2", "measure", {}, "thorax", measurements={"longest_diameter_mm": Measurement(247.0, "mm")})
    for ctr, label in (("0.45", "correct"), ("0.60", "incorrect")):
        trace = Trace(question="What is the cardiothoracic ratio?", evidence=[heart, thorax],
                      turns=[Turn("assistant", f"<answer>CTR {ctr} [E1, E2]</answer>")])
        assert verify(None, trace)[-1].label == label


@pytest.mark.parametrize("claims, label, error", [
    ("It grew: 10 mm [E1] -> 12 mm [E2].", "correct", None),
    ("It shrank: 10 mm [E1] -> 12 mm [E2].", "incorrect", "inconsistent_answer"),  # prose states a change too
    ("It grew: 12 mm [E1] -> 12 mm [E2].", "incorrect", "measurement_mismatch"),  # 12 mm is E2's, not E1's
    ("It grew: 10 mm (E1, E2) -> 12 mm.", "correct", None),
])
def test_prose_change_and_numbers_bound_to_their_citation(claims, label, error):
    v = verify(None, _growth_trace("<answer>It grew [E1, E2]</answer>", claims))
    assert v[-2].label == label, v[-2].reason
    assert v[-2].error_type == error
