"""The classical organ segmenter on an independent synthetic abdomen (`tests.helpers.abdomen`), not
the project's phantoms: plain, arterial and portal-venous CT, 20 slices of 5 mm (partial
coverage), thin slices, another matrix size. Reproduces the reported failures: an enhanced liver
found only in part (255 of 700 mL), an enhanced spleen "not found" by a phantom HU band."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from tests.helpers.abdomen import synthetic_abdomen

ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")


#: measured misses of the goal (liver volume within 10 %, Dice >= 0.85; spleen Dice >= 0.75;
#: kidneys >= 0.8) on these cases, kept as strict xfails so that a fix shows up (plain seed 4's right
#: kidney, 0.74, passes since the liver's band reaches 2.5 spreads below its mode)
ARTERIAL_MISS = pytest.mark.xfail(strict=True, reason="known miss: seed 4 arterial right kidney Dice 0.67 (the liver's "
                                  "+12 % is gone)")


@pytest.mark.parametrize("phase, seed", [
    ("arterial", 3), ("portal-venous", 3), ("portal-venous", 4),
    ("non-contrast", 3), ("non-contrast", 4),
    pytest.param("arterial", 4, marks=ARTERIAL_MISS),
])
def test_organs_on_partial_coverage_5mm(phase, seed):
    case = synthetic_abdomen(seed, phase)  # 20 slices of 5 mm, 256 x 256 at 1.5 mm
    seg = ClassicalSegmenter()
    organs = seg.organs(case.volume)
    assert organs.statistics.phase == phase
    liver = seg.segment(case.volume, "liver")
    assert dice(liver, case.labels["liver"]) >= 0.85
    assert liver.sum() == pytest.approx(case.labels["liver"].sum(), rel=0.10)
    masks = {organ: seg.segment(case.volume, organ) for organ in ORGANS[1:]}
    assert dice(masks["spleen"], case.labels["spleen"]) >= 0.75
    for side in ("kidney_left", "kidney_right"):
        assert dice(masks[side], case.labels[side]) >= 0.8, side
    total = liver.astype(np.uint8) + sum(m.astype(np.uint8) for m in masks.values())
    assert total.max() == 1  # no voxel belongs to two organs


def test_plain_ct_organs_are_found():
    """Plain CT: every organ is found where it is (its volume error is the known miss above)."""
    case = synthetic_abdomen(3, "non-contrast")
    organs = ClassicalSegmenter().organs(case.volume)
    assert organs.statistics.phase == "non-contrast"
    assert dice(organs.mask("liver"), case.labels["liver"]) >= 0.85
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.8
    for side in ("kidney_left", "kidney_right"):
        assert dice(organs.mask(side), case.labels[side]) >= 0.85, side


@pytest.mark.parametrize("phase", ["non-contrast", "portal-venous"])
def test_organs_on_thin_slices_and_another_matrix(phase):
    """1.25 mm slices on a 320 x 320 matrix of 1.2 mm: another grid, the same anatomy in mm (the plain
    liver leaked into the body wall and diaphragm below the lungs' outline until its band followed
    its own spread, `organs.LIVER_SPREADS_BELOW`)."""
    case = synthetic_abdomen(5, phase, spacing=(1.25, 1.2, 1.2), z_range_mm=(-95.0, 5.0), matrix=320)
    seg = ClassicalSegmenter()
    liver = seg.segment(case.volume, "liver")
    assert dice(liver, case.labels["liver"]) >= 0.85
    assert liver.sum() == pytest.approx(case.labels["liver"].sum(), rel=0.10)
    assert dice(seg.segment(case.volume, "spleen"), case.labels["spleen"]) >= 0.75
    assert dice(seg.segment(case.volume, "kidney_right"), case.labels["kidney_right"]) >= 0.8


def test_enhanced_spleen_is_not_held_to_plain_hu():
    """The reported miss: enhanced spleen at 105-130 HU is found, with the band read from the scan."""
    case = synthetic_abdomen(6, "portal-venous")
    organs = ClassicalSegmenter().organs(case.volume)
    low, high = organs.bands["spleen"]
    spleen_hu = float(np.median(case.volume.data[case.labels["spleen"]]))
    assert low < spleen_hu < high and low > 70.0
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.75
    assert "portal-venous" in organs.statistics.describe()


def test_coarse_block_means():
    """`CoarseGrid.mean` averages each block (the last block absorbs the remainder), like `sample` places them."""
    from grounding.segmenters.morphology import CoarseGrid

    data = np.random.default_rng(0).normal(size=(5, 11, 7)).astype(np.float32)
    grid = CoarseGrid((5, 11, 7), (1, 3, 4))
    means = grid.mean(data)
    assert means.shape == grid.sample(data).shape == (5, 4, 2)
    np.testing.assert_allclose(means[:, 1, 0], data[:, 3:6, 0:4].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(means[:, 3, 1], data[:, 9:, 4:].mean(axis=(1, 2)), rtol=1e-5)
