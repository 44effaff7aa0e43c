"""``python -m benchmarks.real_scans`` on a manifest built here from a phantom: scores, verdicts, skips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.real_scans import (
    ManifestError,
    check_answer,
    judge,
    label_mask,
    label_on_grid,
    load_label,
    main,
    missing_or_changed,
    segment_structures,
    sha256_of,
)
from grounding.evidence import Evidence
from grounding.quality import Quality
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.volume import Volume
from mmreason.trace import Trace


def _ref(folder, name):
    return {"file": name, "repo": "example/phantoms", "path": name, "commit": "0" * 40,
            "sha256": sha256_of(folder / name), "licence": "made in the test"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    phantom = chest_ct(seed=1, nodules=[NoduleSpec(diameter_mm=12.0, side="right")])
    phantom.save(data)
    nodule = phantom.truth["nodules"][0]
    entry = {
        "id": "phantom_chest", "kind": "ct_chest",
        "image": _ref(data, "ct.nii.gz"),
        "labels": [_ref(data, "labels/lungs.nii.gz"), _ref(data, "labels/nodule_1.nii.gz")],
        "segment": [{"target": "lungs", "label": 0, "values": [1]}, {"target": "nodule", "label": 1, "min_value": 0.5}],
        "questions": [{"question": "Is there a lung nodule? Where is it and how large?",
                       "expected": {"finding": "present", "side": nodule["side"], "diameter_mm": 12.0}}],
    }
    missing = {**entry, "id": "not_downloaded", "group": "held-out",
               "image": {**entry["image"], "file": "absent.nii.gz"}}
    changed = {**entry, "id": "changed", "labels": [{**entry["labels"][0], "sha256": "f" * 64}]}
    manifest = tmp_path_factory.mktemp("manifest") / "manifest.json"
    manifest.write_text(json.dumps({"scans": [entry, missing, changed]}))
    out = tmp_path_factory.mktemp("out")
    assert main(["--manifest", str(manifest), "--data", str(data), "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_segmentation_is_scored_against_the_labels(run):
    results, _ = run
    rows = {r["target"]: r for r in results["entries"][0]["segmentation"]}
    assert rows["lungs"]["dice"] > 0.9 and abs(rows["lungs"]["volume_error"]) < 0.1 and rows["lungs"]["unit"] == "mL"
    assert rows["nodule"]["dice"] > 0.5
    assert results["totals"]["segmentation"]["ct_chest:lungs"]["n"] == 1


def test_questions_are_answered_as_infer_does_and_judged(run):
    results, out = run
    [first] = results["entries"][0]["questions"]
    assert first["verdict"] == "right" and len(first["checks"]) == 3
    assert all(c.startswith("ok") for c in first["checks"])
    assert (out / "traces" / "phantom_chest-q1" / "trace.json").exists()
    assert Trace.load(out / "traces" / "phantom_chest-q1" / "trace.json").answer == first["answer"]
    assert results["totals"]["questions"] == {"n": 1, "right": 1, "hedged": 0, "wrong": 0}
    assert results["totals"]["wrong_with_flagged_evidence"] == 0


def test_missing_and_changed_files_are_skipped_with_the_reason(run, capsys):
    results, out = run
    reasons = {s["id"]: s["reason"] for s in results["skipped"]}
    assert "absent.nii.gz is missing (copy it from example/phantoms@0000000000:ct.nii.gz)" in reasons["not_downloaded"]
    assert "does not match its sha256" in reasons["changed"]
    assert results["totals"]["scans_run"] == 1 and results["totals"]["scans_skipped"] == 2
    markdown = (out / "results.md").read_text()
    assert "skipped not_downloaded" in markdown and "| phantom_chest | ct_chest | lungs |" in markdown
    # figures per group: the held-out group is reported apart from the scans thresholds were set on
    by_group = results["totals_by_group"]
    assert by_group["held-out"]["scans_skipped"] == 1 and by_group["held-out"]["scans_run"] == 0
    assert by_group["tuning"]["scans_run"] == 1 and by_group["tuning"]["questions"]["right"] == 1
    assert "Group `held-out`: scans run 0, skipped 1" in markdown


def _trace(answer, status="answered", quality=None):
    trace = Trace(question="q", answer=answer, status=status, cited_evidence=["E1"])
    trace.evidence.append(Evidence(id="E1", tool="measure", arguments={}, text="", quality=quality or Quality()))
    return trace


def test_wrong_answers_with_doubt_are_hedged_and_declines_are_never_right():
    expected = {"finding": "present", "volume_ml": 10.0}
    assert judge(_trace("Yes; 10.5 mL"), expected)["verdict"] == "right"
    assert judge(_trace("Yes; 3 mL"), expected)["verdict"] == "wrong"
    # the doubt the evidence carries counts only when the answer passes it on
    flagged = judge(_trace("Yes; 3 mL", quality=Quality("doubtful", ["spacing assumed"])), expected)
    assert flagged["verdict"] == "wrong" and flagged["evidence_flags"] == ["E1 doubtful: spacing assumed"]
    passed_on = judge(_trace("Yes; 3 mL (uncertain: no spacing)", quality=Quality("doubtful", ["x"])), expected)
    assert passed_on["verdict"] == "hedged" and passed_on["hedge_signals"] == ["wording: uncertain"]
    assert judge(_trace("Possibly a lesion, 3 mL"), expected)["verdict"] == "hedged"
    declined = judge(_trace("I cannot answer: 10 mL would be a guess", status="abstained"), expected)
    assert declined["verdict"] == "hedged" and "status abstained" in declined["hedge_signals"]


def test_answer_parsing_units_sides_and_ratios():
    ok, _ = check_answer("Yes; left; 2.1 cm; 4500 mm3", "", {"finding": "present", "side": "left",
                                                             "diameter_mm": 20.0, "volume_ml": 4.4})
    assert ok
    ok, checks = check_answer("No; CTR 0.41", "", {"enlarged": False, "ctr": 0.47})
    assert not ok and checks == ["FAIL CTR: expected 0.47, answered 0.41 (-0.060, tolerance 0.05)",
                                 "ok   heart enlarged: expected False, answered False"]
    ok, checks = check_answer("Yes; midline", "", {"side": "right"})
    assert not ok and checks == ["FAIL side: expected right, answered midline"]
    # a caveat's words are not the finding
    ok, checks = check_answer("Yes; left lung; 42.6 mL (uncertain: none like it on the right; no nodule was found "
                              "there)", "", {"finding": "present"})
    assert ok, checks
    ok, checks = check_answer("No nodule was found (uncertain: on 5 mm slices one may have been missed)", "",
                              {"finding": "present"})
    assert not ok and checks == ["FAIL finding: expected present, answered absent"]


def test_half_resolution_2d_labels_are_resampled_and_label_lists_united():
    image = Volume(data=np.zeros((1, 4, 6), np.float32), spacing=(1.0, 1.0, 1.0), affine=np.eye(4), modality="XR")
    half = Volume(data=np.array([[[255, 0, 0], [0, 0, 255]]], np.float32), spacing=(1.0, 2.0, 2.0),
                  affine=np.diag([1.0, 2.0, 2.0, 1.0]), modality="XR")
    resized = label_on_grid(image, half, {"file": "m.png", "resize_to_image": True})
    np.testing.assert_array_equal(resized[0], np.kron(half.data[0], np.ones((2, 2))))
    with pytest.raises(Exception, match="not on the image's grid"):
        label_on_grid(image, half, {"file": "m.png"})
    other = np.zeros((1, 4, 6), np.float32)
    other[0, 0, 5] = 255
    united = label_mask([resized, other], {"label": [0, 1], "min_value": 128})
    assert united.sum() == 9 and united[0, 0, 5]


def test_folder_references_check_every_listed_file(tmp_path):
    (tmp_path / "series").mkdir()
    for name in ("a.dcm", "b.dcm"):
        (tmp_path / "series" / name).write_bytes(name.encode())
    files = [{"name": n, "sha256": sha256_of(tmp_path / "series" / n)} for n in ("a.dcm", "b.dcm")]
    entry = {"id": "series", "image": {"file": "series", "repo": "r/r", "commit": "c", "path": "p", "files": files}}
    assert missing_or_changed(entry, tmp_path) is None
    (tmp_path / "series" / "b.dcm").write_bytes(b"changed")
    assert "b.dcm does not match its sha256" in missing_or_changed(entry, tmp_path)
    (tmp_path / "series" / "a.dcm").unlink()
    assert "a.dcm is missing" in missing_or_changed(entry, tmp_path)


def test_labels_on_another_grid_of_the_same_patient_coordinates_are_resampled_through_the_affines():
    # image: 4 mm slices starting at z = 0; label: 1 mm slices starting at z = -1 mm, shifted 2 mm in x
    image = Volume.from_array(np.zeros((3, 4, 4), np.float32), spacing=(4.0, 1.0, 1.0), modality="MR")
    label = Volume.from_array(np.zeros((12, 4, 4), np.float32), spacing=(1.0, 1.0, 1.0), origin=(2.0, 0.0, -1.0),
                              modality="MR")
    label.data[5, 1, 0] = 3  # patient z = 4 mm (image slice 1), x = 2 mm (image column 2)
    on_grid = label_on_grid(image, label, {"file": "m.nii.gz", "resample_by_world": True})
    assert on_grid.shape == image.shape and np.argwhere(on_grid).tolist() == [[1, 1, 2]] and on_grid.max() == 3
    with pytest.raises(Exception, match="not on the image's grid"):
        label_on_grid(image, label, {"file": "m.nii.gz"})


def _structure_set(path, contours_by_roi):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.SOPClassUID, ds.SOPInstanceUID = "RTSTRUCT", "1.2.840.10008.5.1.4.1.1.481.3", generate_uid()
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, (name, polygons) in enumerate(contours_by_roi.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber, item.ContourSequence = number, Sequence()
        for points in polygons:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [float(c) for point in points for c in point]
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
    ds.save_as(path, enforce_file_format=True)


def test_rt_structure_sets_are_rasterised_on_the_image_grid(tmp_path):
    # 2 mm slices from z = 10 mm, 1 mm pixels from (x, y) = (20, 30) mm, all LPS
    image = Volume.from_array(np.zeros((4, 12, 12), np.float32), spacing=(2.0, 1.0, 1.0),
                              origin=(20.0, 30.0, 10.0), modality="CT")

    def square(x0, y0, side, z):
        return [(x0, y0, z), (x0 + side, y0, z), (x0 + side, y0 + side, z), (x0, y0 + side, z)]

    # a 6 x 6 mm square on slice 1 (z = 12 mm) with a 2 x 2 mm hole, and a lung on slices 2-3
    _structure_set(tmp_path / "rs.dcm", {"GTV-1": [square(21.5, 31.5, 6, 12.0), square(23.5, 33.5, 2, 12.0)],
                                         "Lung L": [square(25.5, 35.5, 3, z) for z in (14.0, 16.0)]})
    ref = {"file": "rs.dcm", "rtstruct_rois": {"1": "GTV-1", "2": ["Lung L"]}}
    label = load_label(image, tmp_path / "rs.dcm", ref)
    gtv, lung = label == 1, label == 2
    assert gtv[1].sum() == 36 - 4 and gtv[[0, 2, 3]].sum() == 0  # centres 22..27 filled, 24..25 the hole
    assert gtv[1, 2, 2] and not gtv[1, 4, 4] and not gtv[1, 1, 1]
    assert lung[2].sum() == lung[3].sum() == 9 and lung[:2].sum() == 0
    with pytest.raises(ManifestError, match="no ROI named 'Heart'"):
        load_label(image, tmp_path / "rs.dcm", {"file": "rs.dcm", "rtstruct_rois": {"1": "Heart"}})
    _structure_set(tmp_path / "off.dcm", {"GTV-1": [square(21.5, 31.5, 6, 13.0)]})  # between two slices
    with pytest.raises(ManifestError, match="does not lie on a slice"):
        load_label(image, tmp_path / "off.dcm", {"file": "off.dcm", "rtstruct_rois": {"1": "GTV-1"}})


def test_sizes_on_an_assumed_spacing_say_so(tmp_path):
    from PIL import Image

    from benchmarks.real_scans import size_of
    from imaging.io import load

    path = tmp_path / "film.png"
    Image.fromarray(np.full((40, 50), 128, dtype=np.uint8)).save(path)
    film = load(path)
    mask = np.zeros(film.shape, dtype=bool)
    mask[0, :10, :10] = True
    # 100 pixels at the loader's assumed 1 mm: 1 cm2 "of pixels", labelled as such
    assert size_of(mask, film) == (1.0, "cm2 (spacing assumed)")


def test_a_segmenter_crash_is_scored_as_a_failure_and_the_run_goes_on():
    """A bug in a segmenter on one real scan (an IndexError on an empty part) stopped the whole
    benchmark; it is now that structure's failure, with the error named."""
    class Crashing:
        def segment(self, volume, target):
            raise IndexError("index -1 is out of bounds for axis 0 with size 0")

    volume = Volume.from_array(np.zeros((4, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0))
    entry = {"id": "scan", "kind": "mr_flair", "segment": [{"target": "lesion", "label": 0}]}
    [row] = segment_structures(entry, volume, [np.ones((4, 8, 8), bool)], Crashing())
    assert row["error"].startswith("crashed: IndexError") and row["dice"] == 0.0 and row["found"] is None
