"""Failure classes of the classical liver and spleen found on stress tuning seeds, reproduced on the
independent synthetic abdomen: a noisy plain liver or spleen declined or cut to a sliver because
noise speckle in its band let the opening erase it, and a plain liver that took bowel of its HU
stated at quality ok."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.segmenters.organs import RAGGED_SPHERICITY, _ragged_doubt
from tests.helpers.abdomen import synthetic_abdomen


@pytest.mark.parametrize(("organ", "seed", "spacing", "noise_hu", "min_dice", "max_volume_error"), [
    # tuning seeds 201 and 102 (39 and 38 HU, 2 mm slices): declined and -22 %
    ("liver", 1, (2.0, 1.0, 1.0), 38.0, 0.92, 0.1),
    # tuning seeds 26, 31, 46 and 58 (30-39 HU): the plain spleen in its mode +- 10 HU band found as a
    # 4 % sliver of itself (Dice 0.03 here) or declined
    ("spleen", 3, (3.0, 1.0, 1.0), 28.0, 0.85, 0.25),
])
def test_noisy_plain_organ_is_found_and_said_to_be_noisy(organ, seed, spacing, noise_hu, min_dice,
                                                          max_volume_error):
    """On noisy plain CT a few percent of an organ's smoothed voxels fell outside its band at random,
    the opening's ball nearly always met one, and no core (or a sliver) was left. The 3 x 3 x 3
    majority vote before the opening keeps the organ; it is still said to be noisy."""
    case = synthetic_abdomen(seed, "non-contrast", spacing=spacing, noise_hu=noise_hu)
    organs = ClassicalSegmenter().organs(case.volume)
    assert organ in organs.masks, organs.errors.get(organ)
    mask, truth = organs.masks[organ], case.labels[organ]
    assert dice(mask, truth) >= min_dice
    assert abs(mask.sum() / truth.sum() - 1.0) <= max_volume_error
    assert any("noisy plain CT" in r for r in organs.doubts[organ])


def _ellipsoid(shape: tuple[int, int, int], radii: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    c = [(n - 1) / 2 for n in shape]
    return ((z - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((x - c[2]) / radii[2]) ** 2 <= 1.0


def test_liver_with_bowel_mixed_with_fat_is_doubtful():
    """On plain CT bowel of the liver's HU, mixed with fat, joined a liver of its HU (tuning seeds 70
    and 96: +38 %, +29 %, the latter at quality ok once the field-of-view doubt no longer applied).
    A liver-shaped mask on a coarse grid of 5 x 2 x 2 mm is not doubtful; the same with a slab of
    fat-perforated bowel beneath it is."""
    spacing = (5.0, 2.0, 2.0)
    liver = _ellipsoid((30, 110, 110), (11.0, 40.0, 48.0))
    assert _ragged_doubt(liver, spacing) is None
    bowel = np.zeros_like(liver)
    bowel[:9, 15:95, 10:100] = np.random.default_rng(0).random((9, 80, 90)) < 0.6  # tissue between fat and gas
    reason = _ragged_doubt(liver | bowel, spacing)
    assert reason is not None and "ragged" in reason and f"{RAGGED_SPHERICITY:g}" in reason
