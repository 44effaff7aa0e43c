"""A nodule on the costal pleura that lights up one thick slice only, where the chest wall curves across the
slice beside it (`grounding.segmenters.lesions.lung_nodules`, `_one_slice_domes`).

Built here, independent of `imaging.phantoms` and `benchmarks.stress`: an ellipsoid of aerated lung in a
block of chest wall on 5 mm slices (HU averaged over sub-slices, with noise), with a 7 mm ball centred in a
slice near the lung's upper end, touching the lateral wall from inside; on the slice above, the lung's
outline has drawn in by more than the ball's width, so the wall lies over it.

Most of its voxels touch the pleura through that slice: it failed the wall-contact test of an isolated
nodule and, one slice tall, the cap tests (stress tuning seed 30 on 5 mm slices: a 7 mm juxtapleural
nodule missed). It is found now and hedged; the same dome round a core of bone (a rib's partial volume)
is not.
"""

from __future__ import annotations

import numpy as np

from grounding.segmenters.lesions import lung_nodules

SPACING = (5.0, 0.8, 0.8)
SHAPE = (14, 70, 120)
SUB = 5
#: the lung: an ellipsoid (centre, semi-axes; z, y, x mm) in a block of chest wall
LUNG_CENTRE, LUNG_AXES = (32.0, 28.0, 60.0), (32.0, 25.0, 52.0)
LUNG_HU, WALL_HU, NODULE_HU = -850.0, 40.0, 45.0
DIAMETER_MM = 7.0
#: the nodule's slice (its centre lies mid-slice) and row (mm)
NODULE_SLICE, NODULE_Y_MM = 2, 28.0


def _in_lung(z, yy, xx):
    return sum(((v - c) / a) ** 2 for v, c, a in zip((z, yy, xx), LUNG_CENTRE, LUNG_AXES)) <= 1.0


def _chest(core_hu: float = NODULE_HU) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lungs, pockets, truth): the ball touching the lateral wall from inside on its slice, its inner
    half ``core_hu``. The lung mask is the aerated lung; its pockets hold the dense tissue inside the lung's
    outline, as the chest analysis' pleural pockets do."""
    z_mm = (NODULE_SLICE + 0.5) * SPACING[0]
    across = np.sqrt(1.0 - sum(((v - c) / a) ** 2 for v, c, a in zip((z_mm, NODULE_Y_MM), LUNG_CENTRE, LUNG_AXES)))
    centre = (z_mm, NODULE_Y_MM, LUNG_CENTRE[2] - LUNG_AXES[2] * across + DIAMETER_MM / 2)

    def ball(z, yy, xx, share=1.0):
        return (z - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= (share * DIAMETER_MM / 2) ** 2

    y, x = [(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE[1:], SPACING[1:])]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    out = np.zeros(SHAPE, np.float32)
    for k in range(SHAPE[0]):
        for s in range(SUB):
            z = (k + (s + 0.5) / SUB) * SPACING[0]
            tissue = np.where(ball(z, yy, xx, 0.5), core_hu, NODULE_HU)
            out[k] += np.where(ball(z, yy, xx), tissue, np.where(_in_lung(z, yy, xx), LUNG_HU, WALL_HU))
    out = out / SUB + np.random.default_rng(0).normal(0, 15, SHAPE).astype(np.float32)
    zz, yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE, SPACING)], indexing="ij")
    outline = _in_lung(zz, yy, xx)
    lungs = outline & (out < -400)
    return out, lungs, outline & ~lungs, ball(zz, yy, xx)


def test_a_one_slice_nodule_under_the_curving_wall_is_found_and_hedged():
    hu, lungs, pockets, truth = _chest()
    # the set-up: one slice tall, and the wall lies over it on the slice above
    assert np.flatnonzero((truth & (hu > -400)).any(axis=(1, 2))).tolist() == [NODULE_SLICE]
    assert not (lungs | pockets)[NODULE_SLICE - 1][truth[NODULE_SLICE]].any()
    found = lung_nodules(hu, lungs, SPACING, pockets)
    assert (found.mask & truth).sum() >= 0.5 * (truth & (hu > -400)).sum()
    assert found.mask.sum() <= 2 * truth.sum()
    assert any("shows on one 5 mm slice only" in d for d in found.doubts)


def test_a_one_slice_dome_of_bone_is_no_nodule():
    """A rib's partial volume: the same dome round a core of bone (600 HU)."""
    hu, lungs, pockets, _ = _chest(600.0)
    assert not lung_nodules(hu, lungs, SPACING, pockets).mask.any()
