"""FLAIR lesion search: the classes the brain-MR stress benchmark showed (issue 11).

Each brain is built here (not with the stress generator nor the project's phantoms): an
ellipsoidal brain of textured white matter with dark ventricles, then the doubts a thick-slice or
grey-matter-blind search must carry when it finds nothing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import expit

from grounding.segmenters.lesions import BrainTissue, MRLesions, mr_hyperintense_lesion

VOXEL = 1.5


def _brain(seed: int, shape=(72, 96, 84), spacing=(VOXEL, VOXEL, VOXEL), radii=(52.0, 66.0, 48.0)):
    """(z, y, x) mm, depth below the surface (mm), brain mask and textured white matter at 100
    (smoothed spread about 5) with two dark ventricles; outside the brain 0 (skull-stripped)."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.indices(shape).astype(np.float32)
               - np.array(shape, np.float32)[:, None, None, None] / 2) * np.array(spacing, np.float32)[:, None, None, None]
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    brain = r <= 1.0
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0)
    img = (100.0 + 5.0 * texture / texture.std() + rng.normal(0, 3.0, shape)).astype(np.float32)
    for side in (-1, 1):
        v = ((x - side * 9) / 5) ** 2 + (y / 22) ** 2 + ((z - 4) / 8) ** 2 <= 1
        img[v] = 25.0 + rng.normal(0, 3.0, int(v.sum()))
    return rng, (z, y, x), (1.0 - r) * min(radii), brain, img


def _found(img, spacing=(VOXEL, VOXEL, VOXEL)) -> MRLesions:
    return mr_hyperintense_lesion(img, spacing, np.ones(img.shape, bool))


def test_nothing_found_on_thick_slices_is_doubtful():
    """A 6 mm lesion on 5 mm slices shows on one slice at a fraction of its contrast: 'no lesion'
    there was stated at quality ok."""
    spacing = (5.0, VOXEL, VOXEL)
    _, (z, y, x), _, brain, img = _brain(9, shape=(20, 96, 84), spacing=spacing)
    d = np.sqrt((x - 20) ** 2 + (y + 20) ** 2 + (z - 2.5) ** 2) / 3.0
    img += (12.0 * expit((1.0 - d) / 0.1)).astype(np.float32)  # faint, half of it in each slice
    img[~brain] = 0.0
    found = _found(img, spacing)
    assert not found.kept
    assert "on 5 mm slices" in (found.doubt() or "")
    thin = MRLesions(np.zeros((4, 4, 4), np.int32), [], found.tissue, 64, None, slice_mm=1.0)
    assert thin.doubt() is None  # the same search on thin slices carries no such doubt


def test_nothing_found_where_grey_matter_set_the_levels_is_doubtful():
    """Where grey matter is a peak of its own far above white matter, lesions had to clear it:
    'no lesion' there missed every lesion fainter than grey matter and was stated at quality ok."""
    peak = BrainTissue(white=100.0, spread=5.0, grey=140.0, grey_spread=4.0, grey_share=0.4)
    labels = np.zeros((4, 4, 4), np.int32)
    nothing = MRLesions(labels, [], peak, 64, None, slice_mm=1.0)
    assert "fainter than grey matter are missed" in nothing.doubt()
    low = BrainTissue(white=100.0, spread=5.0, grey=112.0, grey_spread=2.0, grey_share=0.4)  # seed 4 SDs up
    assert MRLesions(labels, [], low, 64, None, slice_mm=1.0).doubt() is None


def test_lesions_found_where_grey_matter_set_the_levels_still_doubt_the_faint_ones():
    """Bright lesions found well above a grey-matter peak, and lesions as faint as grey matter missed
    beside them (stress tuning seeds 21 and 34: a third of the burden missed): the burden was stated
    at quality ok because something was found."""
    peak = BrainTissue(white=100.0, spread=5.0, grey=140.0, grey_spread=4.0, grey_share=0.4)
    labels = np.zeros((8, 8, 8), np.int32)
    labels[2:5, 2:5, 2:5] = 1
    found = MRLesions(labels, [1], peak, 4000, lesion_median=190.0, slice_mm=1.0)
    assert peak.grey_contrast(190.0) >= 2.0  # the lesions found are clearly brighter than grey matter
    assert "fainter than grey matter are missed" in (found.doubt() or "")
