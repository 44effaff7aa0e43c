"""A nodule touching more vessels than a vessel has branches (`lesions._detached_verdict`).

Built here, independent of `imaging.phantoms` and `benchmarks.stress`: a block of aerated lung
(HU averaged over sub-slices, with noise) holding a ball of soft tissue from which thin vessels run
off in several directions. The ball and its vessels are one dense component, too long to pass as a
nodule; the openings cut the ball from them. A detached piece with more than `DETACH_MAX_ARMS`
branches was dropped as a junction of vessels, so a large nodule touching three vessels, or a
nodule on the pleura's partial-volume rim (which the opening cuts into several thin pieces), was
missed with no doubt said (stress tuning seeds 16, 58). A piece much wider than all its branches
is no junction: it is found now, and a junction of thin vessels still is no nodule. A large nodule
that the scan's first or last slice only grazes (its widest section inside the scan, wider than any
vessel's stump) is found too, with a doubt about its size. A nodule of the largest size searched
(30 mm) on a vessel measured a voxel more than that once cut from it, and was missed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters.lesions import lung_nodules

SPACING = (1.5, 0.8, 0.8)
SHAPE = (40, 110, 110)


def _lung_block(ball_mm: float, vessel_radius_mm: float, directions: list[tuple[float, float, float]],
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lung mask, truth ball) of a lung block with a ball of ``ball_mm`` (0: none) at its centre
    and vessels of ``vessel_radius_mm`` from the centre along ``directions`` (z, y, x) to the block's edge."""
    sub = 3
    centre = np.array([s * sp / 2 for s, sp in zip(SHAPE, SPACING)])
    y, x = [(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE[1:], SPACING[1:])]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    hu = np.zeros(SHAPE, np.float32)
    truth = np.zeros(SHAPE, bool)
    for k in range(SHAPE[0]):
        for s in range(sub):
            z = (k + (s + 0.5) / sub) * SPACING[0]
            points = np.stack([np.full_like(yy, z), yy, xx], axis=-1) - centre
            dense = np.zeros(yy.shape, bool)
            for d in directions:
                axis = np.asarray(d, float) / np.linalg.norm(d)
                along = np.clip(points @ axis, 0, None)
                dense |= np.linalg.norm(points - along[..., None] * axis, axis=-1) <= vessel_radius_mm
            ball = np.linalg.norm(points, axis=-1) <= ball_mm / 2
            truth[k] |= ball
            hu[k] += np.where(dense | ball, 40.0, -850.0)
    hu /= sub
    hu += np.random.default_rng(seed).normal(0, 15, SHAPE).astype(np.float32)
    lungs = np.zeros(SHAPE, bool)
    lungs[1:-1, 3:-3, 3:-3] = True  # the block's edge is the lung's: the vessels leave it there
    return hu, lungs, truth


THREE_WAYS = [(0.3, 1.0, 0.2), (-0.2, -0.6, 1.0), (0.1, -0.7, -1.0)]


def test_a_large_nodule_touching_three_vessels_is_found():
    hu, lungs, truth = _lung_block(14.0, 1.4, THREE_WAYS)
    found = lung_nodules(hu, lungs, SPACING)
    labels, n = ndimage.label(found.mask, np.ones((3, 3, 3)))
    assert n == 1, f"{n} components"
    assert (found.mask & truth).sum() >= 0.5 * truth.sum()
    assert found.mask.sum() <= 2 * truth.sum()  # the nodule, not the vessels with it
    assert any("cut from it by an opening" in d for d in found.doubts)


def test_a_junction_of_vessels_is_no_nodule():
    hu, lungs, _ = _lung_block(0.0, 2.0, THREE_WAYS + [(-0.3, 1.0, -0.6)])
    assert not lung_nodules(hu, lungs, SPACING).mask.any()


def test_a_large_nodule_grazed_by_the_scan_range_is_found_and_hedged():
    """A 16 mm nodule whose edge the scan's last slice grazes (its widest section inside the scan) was
    left out as a possible cut vessel (stress tuning seed 16); no lung vessel's stump is that wide. It
    is found now, with the doubt that part of it may lie outside the range; a nodule the range cuts
    through its middle is still left out (tests/test_lungs_split_and_attached_nodules.py)."""
    hu, lungs, truth = _lung_block(16.0, 1.4, THREE_WAYS)
    last = SHAPE[0] // 2 + 4  # 6 mm above the centre: the last slice holds a section of about 10 mm
    hu, lungs, truth = hu[:last], lungs[:last], truth[:last]
    lungs[-1] = lungs[1]  # the lung reaches the scan's last slice
    found = lung_nodules(hu, lungs, SPACING)
    assert (found.mask & truth).sum() >= 0.5 * truth.sum()
    assert any("first or last slice" in d for d in found.doubts)


def test_a_nodule_of_the_largest_size_searched_on_a_vessel_is_found():
    hu, lungs, truth = _lung_block(30.0, 1.5, [(0.3, 1.0, 0.2), (-0.3, -1.0, -0.2)])
    found = lung_nodules(hu, lungs, SPACING).mask
    assert (found & truth).sum() > 0.9 * truth.sum()
    assert ndimage.label(found)[1] == 1
