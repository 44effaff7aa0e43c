"""A nodule on the costal pleura that lights up one thick slice only, where the chest wall curves across the
slice beside it (`grounding.segmenters.lesions.lung_nodules`, `_one_slice_domes`).

On `tests.helpers.wall_chest` (independent of `imaging.phantoms` and `benchmarks.stress`), a 7 mm ball centred in a
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
from tests.helpers.wall_chest import SPACING, chest_with_ball, lateral_wall_x

NODULE_HU = 45.0
DIAMETER_MM = 7.0
#: the nodule's slice (its centre lies mid-slice) and row (mm)
NODULE_SLICE, NODULE_Y_MM = 2, 28.0


def _chest(core_hu: float = NODULE_HU) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lungs, pockets, truth): the ball touching the lateral wall from inside on its slice, its inner
    half ``core_hu``."""
    z_mm = (NODULE_SLICE + 0.5) * SPACING[0]
    centre = (z_mm, NODULE_Y_MM, lateral_wall_x(z_mm, NODULE_Y_MM) + DIAMETER_MM / 2)
    hu, lungs, pockets, _, ball = chest_with_ball(centre, DIAMETER_MM, NODULE_HU, 0.5, core_hu)
    return hu, lungs, pockets, ball


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
