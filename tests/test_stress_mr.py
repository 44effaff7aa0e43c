"""The brain-MR stress generator renders and its scoring tells a perfect answer from a miss."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stress import split_seeds
from benchmarks.stress_mr.anatomy import CSF, WM, draw_head
from benchmarks.stress_mr.evaluate import score_case, summarize
from benchmarks.stress_mr.render import MROptions, generate_case, write_case
from imaging.io import load

#: a coarse grid keeps each case about a second
FAST = MROptions(max_voxels=700_000, min_inplane_mm=2.0, max_inplane_mm=2.0, thicknesses=(3.0,))


@pytest.fixture(scope="module")
def case():
    # the first tuning seed whose brain holds a lesion the coarse grid shows
    for seed in split_seeds("tuning", 10):
        c = generate_case(seed, FAST)
        if c.lesions:
            return c
    raise AssertionError("no lesioned brain among the first ten tuning seeds")


def test_case_is_deterministic_and_round_trips(case, tmp_path):
    again = generate_case(case.seed, FAST)
    assert np.array_equal(again.image, case.image) and np.array_equal(again.truth, case.truth)
    volume = load(write_case(case, tmp_path))
    assert volume.modality == "MR"
    assert volume.shape == case.image.shape and np.array_equal(volume.data, case.image)
    assert volume.spacing == pytest.approx(case.geometry.spacing)


def test_flair_contrast_lesions_bright_csf_dark(case):
    wm_level = case.params["white_matter_level"]
    lesion_median = float(np.median(case.image[case.truth]))
    assert lesion_median > 1.1 * wm_level  # lesions brighter than white matter on FLAIR
    head = draw_head(np.random.default_rng(case.seed))
    # the tissue map holds white matter and CSF, and the ventricles are CSF
    v = head.ventricles[0]
    mid = tuple(0.5 * (a + b) for a, b in zip(v.p0, v.p1))
    assert head.labels(*(np.array([m]) for m in mid))[0] == CSF
    assert head.labels(*(np.array([c]) for c in head.cerebrum_centre + np.array([0, 0, 0.55 * head.cerebrum_radii[2]])))[0] == WM


def test_perfect_mask_scores_dice_one_and_empty_mask_a_miss(case):
    voxel_ml = float(np.prod(case.geometry.spacing)) / 1000.0
    perfect = score_case(case, case.truth.copy(), "ok", [], "", voxel_ml)
    assert perfect["dice"] == 1.0 and perfect["burden_error"] == 0.0
    assert all(les["detected"] for les in perfect["lesions"]) and perfect["false_positives"] == 0
    assert perfect["verdict"] == "right"
    empty = score_case(case, np.zeros_like(case.truth), "ok", [], "", voxel_ml)
    assert empty["dice"] == 0.0 and empty["burden_error"] == -1.0
    assert not any(les["detected"] for les in empty["lesions"])
    assert "no lesion found" in empty["why"] and empty["verdict"] == "confident"
    flagged = score_case(case, np.zeros_like(case.truth), "doubtful", ["thick slices"], "", voxel_ml)
    assert flagged["verdict"] == "flagged"
    # a found blob away from every lesion is a false positive
    spurious = case.truth.copy()
    far = np.zeros_like(spurious)
    far[0, :3, :3] = True
    assert not (far & case.truth).any()
    assert score_case(case, spurious | far, "ok", [], "", voxel_ml)["false_positives"] == 1


def test_summary_counts_confidently_wrong(case):
    voxel_ml = float(np.prod(case.geometry.spacing)) / 1000.0
    rows = []
    for mask in (case.truth.copy(), np.zeros_like(case.truth)):
        row = score_case(case, mask, "ok", [], "", voxel_ml)
        rows.append({"case": case.describe(), "modality": "MR", "loader_roundtrip": True, **row,
                     "seconds": {"generate": 1.0, "load": 0.1, "segment": 1.0}})
    s = summarize(rows)
    assert s["confidently_wrong"] == 1 and s["verdicts"]["right"] == 1
    assert s["dice_median"] == pytest.approx(0.5)
