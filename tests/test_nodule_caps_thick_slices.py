"""A nodule whose cap alone the lung shows, on slices thicker than 3 mm
(`grounding.segmenters.lesions.lung_nodules`, `_thick_pleural_caps`).

Built here, independent of `imaging.phantoms` and `benchmarks.stress`: an ellipsoid of aerated lung in a
block of chest wall on 5 mm slices (HU averaged over sub-slices, with noise), with a ball centred on the
lateral wall, which bulges into the lung as a dome.

The dome on the pleura (`_pleural_caps`) was searched on slices up to 3 mm only: on thicker ones a rib
curving across a slice lays domes of its partial volume on the pleura too. 9-17 mm juxtapleural nodules
on 4-5 mm slices were missed (stress tuning seeds 1, 7, 77, 514, 522, 548). A cap of soft tissue is
found now and hedged; a dome of bone is not.
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters.lesions import lung_nodules

SPACING = (5.0, 0.8, 0.8)
SHAPE = (14, 70, 120)
SUB = 5
#: the lung: an ellipsoid (centre, semi-axes; z, y, x mm) in a block of chest wall
LUNG_CENTRE, LUNG_AXES = (32.0, 28.0, 60.0), (32.0, 25.0, 52.0)
LUNG_HU, WALL_HU = -850.0, 40.0
NODULE_Y_MM = 38.0
CORE_SHARE = 0.6
INSIDE_WALL_MM = 0.0


def _in_lung(z, yy, xx):
    return sum(((v - c) / a) ** 2 for v, c, a in zip((z, yy, xx), LUNG_CENTRE, LUNG_AXES)) <= 1.0


def _chest(diameter_mm: float, core_hu: float = WALL_HU) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lungs, pockets, truth): a soft-tissue ball of ``diameter_mm`` centred on the lateral wall (half of
    it bulges into the lung as a dome) and on a slice boundary, its inner `CORE_SHARE` of the diameter
    ``core_hu``. The lung mask is the aerated lung; its pockets hold the dense tissue inside the lung's
    outline, as the chest analysis' pleural pockets do."""
    wall_x = LUNG_CENTRE[2] - LUNG_AXES[2] * np.sqrt(1.0 - ((NODULE_Y_MM - LUNG_CENTRE[1]) / LUNG_AXES[1]) ** 2)
    centre = (LUNG_CENTRE[0], NODULE_Y_MM, wall_x - INSIDE_WALL_MM)

    def ball(z, yy, xx, share=1.0):
        return (z - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= (share * diameter_mm / 2) ** 2

    y, x = [(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE[1:], SPACING[1:])]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    out = np.zeros(SHAPE, np.float32)
    for k in range(SHAPE[0]):
        for s in range(SUB):
            z = (k + (s + 0.5) / SUB) * SPACING[0]
            tissue = np.where(ball(z, yy, xx, CORE_SHARE), core_hu, WALL_HU)
            out[k] += np.where(ball(z, yy, xx), tissue, np.where(_in_lung(z, yy, xx), LUNG_HU, WALL_HU))
    out = out / SUB + np.random.default_rng(0).normal(0, 15, SHAPE).astype(np.float32)
    zz, yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE, SPACING)], indexing="ij")
    outline = _in_lung(zz, yy, xx)
    lungs = outline & (out < -400)
    return out, lungs, outline & ~lungs, outline & ball(zz, yy, xx)


@pytest.mark.parametrize("diameter_mm", [14.0])
def test_a_nodules_cap_on_thick_slices_is_found_and_hedged(diameter_mm):
    hu, lungs, pockets, truth = _chest(diameter_mm)
    found = lung_nodules(hu, lungs, SPACING, pockets)
    assert (found.mask & truth).sum() >= 0.5 * truth.sum()
    assert found.mask.sum() <= 2 * truth.sum()
    assert any("lies on the pleura as a dome on 5 mm slices" in d for d in found.doubts)


def test_a_dome_of_bone_on_thick_slices_is_no_nodule():
    """A rib's partial volume curving across a slice: the same dome of soft tissue round a core of bone
    (600 HU), whose median is soft tissue."""
    hu, lungs, pockets, _ = _chest(14.0, 600.0)
    assert not lung_nodules(hu, lungs, SPACING, pockets).mask.any()
