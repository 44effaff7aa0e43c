"""A nodule whose cap alone the lung shows, on slices thicker than 3 mm
(`grounding.segmenters.lesions.lung_nodules`, `_thick_pleural_caps`).

On `tests.helpers.wall_chest` (independent of `imaging.phantoms` and `benchmarks.stress`), a ball centred on the
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
from tests.helpers.wall_chest import LUNG_CENTRE, SPACING, WALL_HU, chest_with_ball, lateral_wall_x

NODULE_Y_MM = 38.0
CORE_SHARE = 0.6


def _chest(diameter_mm: float, core_hu: float = WALL_HU) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lungs, pockets, truth): a soft-tissue ball of ``diameter_mm`` centred on the lateral wall (half of
    it bulges into the lung as a dome) and on a slice boundary, its inner `CORE_SHARE` of the diameter
    ``core_hu``; the truth is its part inside the lung's outline."""
    centre = (LUNG_CENTRE[0], NODULE_Y_MM, lateral_wall_x(LUNG_CENTRE[0], NODULE_Y_MM))
    hu, lungs, pockets, outline, ball = chest_with_ball(centre, diameter_mm, WALL_HU, CORE_SHARE, core_hu)
    return hu, lungs, pockets, outline & ball


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
