"""Failure classes of the classical plain-CT liver found on the stress benchmark's tuning seeds, each
reproduced on the independent synthetic abdomen: the body wall behind the liver taken with it when
the right lung lies above the scan (no lung outlines the rib cage on that side), bowel a little
darker than the liver taken with it through a band of fixed width, and a noisy plain liver whose
volume was stated without doubt."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from tests.helpers.abdomen import synthetic_abdomen
from tests.test_organ_neighbours import _lean_wall_case
from tests.test_organ_priors_and_stripped_flair import _world


def test_plain_liver_keeps_off_the_wall_without_the_right_lung():
    """The lean body wall of the liver's HU, and the right lung out of the field (a scan of the
    bases starting below the right dome, the higher one; the left lung's base is in it): the cage's
    bins on the right held no lung and bounded nothing, and the liver took the wall behind it
    (tuning seeds 18 and 19: +22 %, +32 %). The cage is symmetric: the left lung's outline bounds
    the right side too."""
    case = _lean_wall_case((-95.0, 5.0))
    data = case.volume.data
    x, _, _ = _world(case.volume)
    body = ndimage.binary_fill_holes(data > -500.0, structure=np.ones((1, 3, 3), bool))
    right_lung = body & (data < -500.0) & (x < 0.0)
    data[right_lung] = -90.0  # the cavity's fat where the lung was
    organs = ClassicalSegmenter().organs(case.volume)
    liver, truth = organs.mask("liver"), case.labels["liver"]
    assert dice(liver, truth) >= 0.93
    assert abs(liver.sum() / truth.sum() - 1.0) <= 0.06


def _bowel_hugging_the_liver(step_hu: float, noise_hu: float):
    """Plain CT with bowel ``step_hu`` darker than the liver wrapped around its lower half (within
    60 mm of it, below its centre, in the cavity where no organ is)."""
    case = synthetic_abdomen(1, "non-contrast", z_range_mm=(-150.0, 5.0), noise_hu=noise_hu)
    data = case.volume.data
    liver = case.labels["liver"]
    liver_hu = float(np.median(data[liver]))
    _, _, z = _world(case.volume)
    organs = liver.copy()  # the bowel touches the liver, and keeps a voxel off the other organs
    for name in ("spleen", "kidney_left", "kidney_right", "heart"):
        organs |= ndimage.binary_dilation(case.labels[name], iterations=1)
    near = ndimage.distance_transform_edt(~liver, sampling=case.volume.spacing) <= 60.0
    centre_z = float(np.broadcast_to(z, liver.shape)[liver].mean())
    soft = (data > -50.0) & (data < 100.0) | (data < -60.0) & (data > -120.0)  # tissue or fat, not air or bone
    bowel = near & ~organs & soft & np.broadcast_to(z < centre_z, liver.shape)
    bowel &= ndimage.binary_erosion(data > -500.0, iterations=8)  # inside the body, off the skin
    data[bowel] = liver_hu - step_hu + np.random.default_rng(0).normal(0.0, noise_hu, int(bowel.sum()))
    return case


def test_plain_liver_does_not_take_bowel_a_little_darker():
    """Bowel 9 HU darker than the liver (the stress generator's bowel is 20-45 HU, its plain liver
    48-65) lay inside the band of mode - 15 HU, and the liver took it (here +34 %, Dice 0.85; tuning
    seed 60: +167 %). The band reaches `LIVER_SPREADS_BELOW` spreads of the liver's own smoothed HU below its mode."""
    case = _bowel_hugging_the_liver(9.0, 10.0)
    liver, truth = ClassicalSegmenter().organs(case.volume).mask("liver"), case.labels["liver"]
    assert dice(liver, truth) >= 0.93
    assert liver.sum() / truth.sum() - 1.0 <= 0.1


def test_noisy_plain_liver_is_doubtful():
    """A plain liver at a noise SD of 34 HU (tuning seeds with SD above 35 HU were 15-35 % off in four
    of five, stated without doubt) carries a noise doubt, whether or not this one is off; at 10 HU
    it does not."""
    noisy = synthetic_abdomen(1, "non-contrast", spacing=(1.25, 1.5, 1.5), noise_hu=34.0)
    organs = ClassicalSegmenter().organs(noisy.volume)
    assert "liver" in organs.masks
    assert any("noisy plain CT" in r for r in organs.doubts.get("liver", []))
    quiet = ClassicalSegmenter().organs(synthetic_abdomen(1, "non-contrast", noise_hu=10.0).volume)
    assert "liver" in quiet.masks
    assert not any("noisy plain CT" in r for r in quiet.doubts.get("liver", []))
