"""FLAIR lesion search: deep grey nuclei (thalamus, basal ganglia) as bright as faint lesions.

On FLAIR the deep grey nuclei may lie 10-20 % above white matter: a plateau as bright as a faint
lesion, a few mL on each side of the ventricles. On fresh brain-MR stress tuning seeds (200-259)
they were the largest class of false lesion volume (68 mL over 60 brains, up to 8 mL in one). What
tells them from a faint lesion is that they come in mirrored pairs: the brain is built here (not
with the stress generator nor the project's phantoms) with the two nuclei slightly out of mirror
position, as a real head is, and a faint lesion of the same level on one side only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters.lesions import mr_hyperintense_lesion

VOXEL = 1.5
SPACING = (VOXEL, VOXEL, VOXEL)
WHITE = 90.0
#: the nuclei's and the faint lesion's plateau: about 2.5 white-matter SDs above white matter
FAINT = 104.0


def _brain(seed: int, nuclei: bool):
    """(image, truth): an ellipsoidal, skull-stripped brain of textured white matter (90, spread about
    6) with dark ventricles, three bright lesions (140 at the centre fading to 115), a faint lesion
    (a 6 mm plateau at `FAINT`) on the left, and, if ``nuclei``, a deep grey nucleus at `FAINT` beside
    each ventricle (the right one 3 mm further out and 4 mm further back than the left's mirror)."""
    rng = np.random.default_rng(seed)
    shape = (80, 104, 92)
    z, y, x = (np.indices(shape).astype(np.float32) - np.array(shape, np.float32)[:, None, None, None] / 2) * VOXEL
    r = np.sqrt((x / 56) ** 2 + (y / 70) ** 2 + (z / 52) ** 2)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0)
    img = (WHITE + 5.0 * texture / texture.std() + rng.normal(0, 3.0, shape)).astype(np.float32)
    if nuclei:
        for cx, cy in ((-18.0, 4.0), (21.0, 8.0)):
            nucleus = ((x - cx) / 7) ** 2 + ((y - cy) / 12) ** 2 + ((z + 2) / 8) ** 2 <= 1
            img[nucleus] += FAINT - WHITE
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        ventricles |= ((x - side * 8) / 4) ** 2 + (y / 22) ** 2 + ((z - 10) / 7) ** 2 <= 1
    img[ventricles] = 25.0 + rng.normal(0, 3.0, int(ventricles.sum()))
    truth = np.zeros(shape, bool)
    for (cx, cy, cz), rad in [((20, -35, 20), 4.5), ((-25, 30, 15), 4.0), ((10, 45, -20), 4.0)]:
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / rad
        inside = d <= 1
        img[inside] = np.maximum(img[inside], (140 - 25 * d[inside] ** 2).astype(np.float32))
        truth |= inside
    faint = np.sqrt((x + 30) ** 2 + (y + 20) ** 2 + (z - 25) ** 2) <= 6.0
    img[faint] += FAINT - WHITE
    truth |= faint
    img[r > 1.0] = 0.0
    return img, truth, faint


def test_mirrored_deep_grey_nuclei_are_not_lesions_and_a_faint_lesion_is():
    """The nuclei (about 7 mL) were found as lesions beside 1.6 mL of truth; they are now left out
    as mirrored normal tissue, with a doubt saying so, while the faint lesion at their level, which
    has no twin across the midline, is still found."""
    img, truth, faint = _brain(3, nuclei=True)
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    mask = np.isin(found.labels, found.kept)
    assert abs(mask.sum() / truth.sum() - 1.0) <= 0.3
    assert (mask & faint).sum() >= 0.5 * faint.sum()
    assert found.mirrored_left_out * np.prod(SPACING) / 1000.0 >= 3.0  # most of both nuclei, mL
    doubt = found.doubt()
    assert doubt is not None and "across the brain's midline" in doubt


def test_brain_without_nuclei_loses_no_lesion_to_the_mirror():
    """Without nuclei nothing is mirrored: the same lesions, the same burden, no mirror doubt."""
    img, truth, faint = _brain(3, nuclei=False)
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    mask = np.isin(found.labels, found.kept)
    assert abs(mask.sum() / truth.sum() - 1.0) <= 0.3
    assert (mask & faint).sum() >= 0.5 * faint.sum()
    assert found.mirrored_left_out == 0
