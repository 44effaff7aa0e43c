"""FLAIR lesion search: a moderate plaque on the flank of a bright lesion, with no summit of its own.

A plaque of flat, moderate brightness (a confluent periventricular load, about five white-matter SDs)
overlapping a bright lesion rises monotonically into it: `_lesion_basins` finds no summit of its own
to split it off, and the component is cut half way to the bright lesion's peak, above the plaque's
whole plateau. On brain-MR stress dev seed 26 a 5 mL confluent load was found as 0.05 mL. The brain
is the deep-grey test's (textured white matter 90, spread about 6); the bright lesion peaks at 190,
the plaque is a plateau 30 above white matter (about six SDs), 10 mm in radius, overlapping it.
"""

from __future__ import annotations

import numpy as np

from grounding.segmenters import lesions
from grounding.segmenters.lesions import mr_hyperintense_lesion

from test_flair_deep_grey import SPACING, _brain
from test_flair_joined_lesions import bright_beside_moderate

def _plaque_on_a_flank():
    """(image, truth of all lesions, the plaque's truth, the bright lesion's truth): a 10 mm plaque
    overlapping the bright lesion (peak 100), with no band between them."""
    return bright_beside_moderate(100.0, 10.0, band=False)


def test_a_plaque_on_a_bright_lesions_flank_gets_its_own_edge(monkeypatch):
    """Before, the plaque lay wholly below the bright lesion's edge and was missed; now the cores it
    leaves below that edge are thick enough to be a lesion of their own, cut at their own half maximum."""
    img, truth, plaque, bright = _plaque_on_a_flank()
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    mask = np.isin(found.labels, found.kept)
    assert (mask & plaque).sum() >= 0.8 * plaque.sum()
    assert (mask & bright).sum() >= 0.8 * bright.sum()
    assert abs(mask.sum() / truth.sum() - 1.0) <= 0.3
    # the plaque's extent beside the bright lesion is a judgement, and the evidence says so
    assert found.shoulder_voxels > 0
    assert "flank of a brighter lesion" in (found.doubt() or "")

    # the class, not the seed: without the flank's own lesions the plaque is lost
    monkeypatch.setattr(lesions, "_shoulders", lambda *args: [])
    old = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    assert (np.isin(old.labels, old.kept) & plaque).sum() < 0.3 * plaque.sum()


def test_a_bright_lesions_skirt_on_the_next_slice_is_not_a_plaque():
    """A bright lesion alone on 5 mm slices: the slices next to it hold it partial-volumed (thick cores
    below its edge right above and below it, `MR_SHOULDER_MAX_SHADOW`), which is not a second lesion."""
    img, truth, _ = _brain(1, False)
    thick = img[::5][:, :, :].copy()
    spacing = (SPACING[0] * 5, SPACING[1], SPACING[2])
    # a bright lesion spanning one thick slice, 8 mm wide, peak 165, fading gradually
    z, y, x = (np.indices(thick.shape).astype(np.float32) - np.array(thick.shape, np.float32)[:, None, None, None] / 2)
    d = np.sqrt((x * spacing[2] + 20.0) ** 2 + (y * spacing[1] + 10.0) ** 2 + (z * spacing[0] / 1.6) ** 2) / 8.0
    inside = thick > 0
    thick[inside] += (75.0 / (1.0 + np.exp((d - 1.0) / 0.25)))[inside].astype(np.float32)
    lesion = (d <= 1.0) & inside
    found = mr_hyperintense_lesion(thick, spacing, np.ones(thick.shape, bool))
    mask = np.isin(found.labels, found.kept)
    before_truth = truth[::5]
    assert (mask & lesion).sum() >= 0.7 * lesion.sum()
    assert (mask & ~lesion & ~before_truth).sum() <= 0.3 * lesion.sum()
