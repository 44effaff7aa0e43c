"""Nodule search failure classes the stress benchmark found (tuning seeds), rebuilt on the project's
own phantoms (`imaging.phantoms.chest_ct`) or on analytic lung blocks built here.

* On 5 mm slices thin vessels crossing the slices obliquely break, at the -400 HU search level, into
  blobs one slice tall and about a slice wide: phantom seed 4 at 5 x 2 x 2 mm gave four such
  "nodules" of 5-7 voxels beside its one real nodule (`lesions._drop_streak_pieces`); a nodule with
  the haze of the lung's apex on the slice beside it is no streak.
* On 0.5 mm slices the scan range is short (28-48 mm) and cuts many structures: a junction of
  vessels and an airway the first slice cut were taken for nodules the range only grazes, and so
  was a structure running through every slice (`lesions._whole_enough`, `lesions._grazed`).
* An airway's wall cut short by the scan range or its branching is a compact ring around air: it was
  a nodule on 1.5 and 0.5 mm slices (`lesions._rings`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters.chest import LEFT, RIGHT
from grounding.segmenters.classical import ClassicalSegmenter
from imaging.phantoms.chest import chest_ct


def _search(volume):
    segmenter = ClassicalSegmenter()
    labels = segmenter.analysis(volume).full_labels(volume.data)
    return segmenter.nodule_search(volume, "nodule", (labels == LEFT) | (labels == RIGHT))


def test_pieces_of_thin_vessels_on_thick_slices_are_no_nodules():
    phantom = chest_ct(seed=4, spacing=(5.0, 2.0, 2.0))
    found = _search(phantom.volumes["ct"]).mask
    pieces, n = ndimage.label(found, structure=np.ones((3, 3, 3)))
    assert n == 1
    assert (pieces[phantom.labels["nodule_1"]] == 1).any()


def _lung_block(inside, spacing=(1.0, 0.8, 0.8), shape=(30, 60, 60), seed: int = 0):
    """(HU, lung mask) of a block of aerated lung holding soft tissue where ``inside(z, y, x)`` (mm;
    z from the block's first slice, y and x from its axis) holds; HU averaged over sub-slices."""
    sub = 4
    y, x = [(np.arange(n) + 0.5) * sp - n * sp / 2 for n, sp in zip(shape[1:], spacing[1:])]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    hu = np.zeros(shape, np.float32)
    for k in range(shape[0]):
        for s in range(sub):
            hu[k] += np.where(inside((k + (s + 0.5) / sub) * spacing[0], yy, xx), 40.0, -850.0)
    hu /= sub
    hu += np.random.default_rng(seed).normal(0, 15, shape).astype(np.float32)
    lungs = np.zeros(shape, bool)
    lungs[:, 3:-3, 3:-3] = True  # the lung goes on through the scan's first and last slice
    return hu, lungs


def _ellipsoid(semi_axes_mm: tuple[float, float, float], centre_z_mm: float):
    a, b, c = semi_axes_mm
    return lambda z, y, x: ((z - centre_z_mm) / a) ** 2 + (y / b) ** 2 + (x / c) ** 2 <= 1


def test_a_structure_the_range_cuts_reaching_beyond_its_widest_radius_is_no_nodule():
    """A blob 12 mm wide whose widest section lies inside the scan but which runs on 11 mm from it to
    the scan's edge is no ball the range grazes (a junction of vessels, an airway: 0.5 mm slices of
    stress tuning seeds 20 and 36 showed three as nodules); a ball the range grazes still counts."""
    from grounding.segmenters.lesions import lung_nodules

    spacing = (1.0, 0.8, 0.8)
    hu, lungs = _lung_block(_ellipsoid((11.0, 6.0, 6.0), 29.0))  # the last slice cuts it 1 mm above its widest
    found = lung_nodules(hu, lungs, spacing)
    assert not found.mask.any()
    assert any("first or last slice was not counted" in d for d in found.doubts)
    hu, lungs = _lung_block(_ellipsoid((6.5, 6.5, 6.5), 26.0))
    assert lung_nodules(hu, lungs, spacing).mask.any()


def test_a_short_airway_wall_is_no_nodule():
    """A bronchus' wall around its lumen, cut short (12 mm long, 12 mm wide), is as compact as a
    nodule: a ring on 1.5 mm slices of stress tuning seed 28 (and seed 36 at 0.5 mm) was one. A ball
    beside it is still found."""
    from grounding.segmenters.lesions import lung_nodules

    spacing = (1.0, 0.8, 0.8)

    def airway(z, y, x):
        r2 = y**2 + (x + 10.0) ** 2
        return (np.abs(z - 15.0) <= 6.0) & (r2 <= 6.0**2) & (r2 > 3.0**2)

    hu, lungs = _lung_block(airway)
    found = lung_nodules(hu, lungs, spacing)
    assert not found.mask.any()
    assert any("ring of dense tissue" in d for d in found.doubts)
    ball = _ellipsoid((5.0, 5.0, 5.0), 15.0)
    hu, lungs = _lung_block(lambda z, y, x: airway(z, y, x) | ball(z, y, x - 10.0))
    found = lung_nodules(hu, lungs, spacing).mask
    assert ndimage.label(found, structure=np.ones((3, 3, 3)))[1] == 1 and found[15, 30, 42]


def test_a_nodule_under_the_haze_of_the_lung_apex_on_thick_slices_is_found():
    """The streak test grows a candidate on one or two thick slices over its faint partial volume; an
    8 mm nodule on 5 mm slices with the partial-volume haze of the lung's apex on the slice beside
    it grew into that wide sheet and was dropped (stress tuning seed 62). A streak runs on through
    further slices; the haze does not."""
    from grounding.segmenters.lesions import lung_nodules

    spacing = (5.0, 0.8, 0.8)
    ball = _ellipsoid((4.0, 4.0, 4.0), 20.0)

    def nodule_and_haze(z, y, x):
        return ball(z, y, x) | ((z >= 25.0) & (z < 26.25) & (x > -15.0))

    hu, lungs = _lung_block(nodule_and_haze, spacing=spacing, shape=(8, 60, 60))
    found = lung_nodules(hu, lungs, spacing).mask
    assert ndimage.label(found, structure=np.ones((3, 3, 3)))[1] == 1 and found[3:5, 30, 30].all()
