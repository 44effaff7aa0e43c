"""Lung masses of the classes real tumours show and the first synthetic tests did not. On real held-out chest
CTs the mass search found 0 of 3 tumours right; on chests of `tests.helpers.mass_chests` (an independent
generator: body, ribs, lungs with a vessel tree, heart, aorta, spine, trachea, noise, 1 mm slices averaged into
thick ones) a cavitating mass (air in a thick wall) was "not found": its candidate, joined by a vessel to the
liver dome the lung encloses on the same slices, was completed as the dome, and its inner surface faced no lung;
a mass in the lung's front recess, against the chest wall and the mediastinum, was "not found" either.
"""

from __future__ import annotations

import functools

import numpy as np

from grounding.plausibility import GROUND_GLASS_MIN_HU, SOLID_MIN_HU, FieldCut, structure_quality
from grounding.segmenters.chest import LEFT, RIGHT
from grounding.segmenters.classical import ClassicalSegmenter
from grounding.segmenters.masses import lung_masses
from grounding.segmenters.morphology import CONN26, label_components
from tests.helpers.mass_chests import CLASSES, mass_chest


def _search(case):
    """`lung_masses` on a synthetic mass chest, with the classical lungs."""
    volume = case.volume
    labels = ClassicalSegmenter().analysis(volume).full_labels(volume.data)
    return lung_masses(volume.data, [labels == LEFT, labels == RIGHT], volume.spacing)


@functools.cache
def _found(kind: str, side: str):
    case = mass_chest(kind, side, slice_mm=2.5, seed=CLASSES.index(kind) * 2 + (side == "right"))
    return case, _search(case)


def _side(mask: np.ndarray) -> str:
    # x grows to the patient's left
    return "left" if np.flatnonzero(mask.any(axis=(0, 1))).mean() > mask.shape[2] / 2 else "right"


def test_a_cavitating_mass_is_found_with_its_cavity():
    case, found = _found("cavitating", "right")
    assert _side(found.mask) == "right"
    assert 0.85 <= np.count_nonzero(found.mask) / np.count_nonzero(case.truth) <= 1.15
    assert np.count_nonzero(found.mask & case.truth) >= 0.85 * np.count_nonzero(case.truth)
    cavity = case.truth & (case.volume.data < -600)
    assert np.count_nonzero(found.mask & cavity) >= 0.8 * np.count_nonzero(cavity)  # measured with its air


def test_a_mass_in_the_lungs_front_recess_is_found_and_its_extent_named_uncertain():
    """A 55 mm mass against the front chest wall and the mediastinum fills the lung's anterior recess, whose
    corners lie outside the lung's slice-wise hull (0.63 of it inside): it was "not found". Found, the part
    outside the hull is not completed, and the search says so."""
    case, found = _found("anterior", "right")
    assert _side(found.mask) == "right"
    assert np.count_nonzero(found.mask & case.truth) >= 0.7 * np.count_nonzero(case.truth)
    assert np.count_nonzero(found.mask & ~case.truth) <= 0.1 * np.count_nonzero(case.truth)
    assert any("right lung mass" in d and "outside its lung's outline" in d and "volume are uncertain" in d
               for d in found.doubts), found.doubts


def test_a_part_solid_mass_is_grown_into_its_ground_glass_and_answered_with_a_doubt():
    """A 54 mm ground-glass-dominant mass (-700..-450 HU, vessels through it) about an 18 mm solid core: the
    searches reading tissue at -400 HU or more found the core only (4-12 % of the mass, as a nodule). Found
    with its ground glass, it is named part-solid and uncertain in extent; its mean (about -480 HU, under solid
    tissue's band) no longer declines the answer as "not lesion tissue"."""
    case, found = _found("part_solid", "left")
    assert _side(found.mask) == "left"
    assert np.count_nonzero(found.mask & case.truth) >= 0.8 * np.count_nonzero(case.truth)
    assert np.count_nonzero(found.mask & ~case.truth) <= 0.15 * np.count_nonzero(case.truth)
    assert any("left lung mass" in d and "part-solid" in d and "extent and volume are uncertain" in d
               for d in found.doubts), found.doubts
    values = case.volume.data[found.mask]
    quality = structure_quality(case.volume, "lesion", volume_ml=80.0, side="left", mean_hu=float(values.mean()),
                                cut_at=FieldCut(), whole_target=True,
                                solid_share=float(np.mean(values >= SOLID_MIN_HU)),
                                opaque_share=float(np.mean(values >= GROUND_GLASS_MIN_HU)))
    assert quality.level == "doubtful" and "a part-solid mass" in quality.reasons[0], quality.reasons


def test_a_large_upper_lobe_mass_reaching_the_apex_is_found_and_its_extent_named_uncertain():
    """A 380 mL mass spanning the left upper lobe from the mediastinum to the lateral wall up to the apex: the
    apex narrows to nothing over it, so the lung lies under it only, and the search, which asked for lung over
    it as well, found nothing (real NSCLC tumours of this size were missed). Found from the lung under its
    footprint, where it ends towards the thoracic inlet is named uncertain."""
    case = mass_chest("wall_mediastinum", "left", slice_mm=2.5, seed=CLASSES.index("wall_mediastinum") * 2, size=1.3)
    found = _search(case)
    assert _side(found.mask) == "left"
    assert 0.8 <= np.count_nonzero(found.mask) / np.count_nonzero(case.truth) <= 1.2
    assert np.count_nonzero(found.mask & case.truth) >= 0.8 * np.count_nonzero(case.truth)
    assert any("left lung mass found at the lung's apex" in d and "volume are uncertain" in d
               for d in found.doubts), found.doubts


def test_a_mass_grown_into_the_collapsed_lung_beside_it_is_named_uncertain_in_extent():
    """A 54 mL hilar mass with the upper lobe beyond it collapsed (soft tissue of the tumour's HU, without contrast):
    the part the lung encloses (5 mL) was completed 32-fold with the collapsed lung to a 155 mL "mass" stated as
    fact. The collapsed lung cannot be told from the tumour there, so the search says the mass may include it."""
    case, found = _found("atelectasis", "right")
    assert np.count_nonzero(found.mask & case.truth) >= 0.8 * np.count_nonzero(case.truth)
    assert np.count_nonzero(found.mask) > 2 * np.count_nonzero(case.truth)  # still over-grown: the doubt is the fix
    assert any("right lung mass" in d and "collapsed lung" in d and "volume are uncertain" in d
               for d in found.doubts), found.doubts


def test_a_hilar_mass_completed_as_much_but_bordered_by_lung_is_not_named_as_holding_collapsed_lung():
    """A contrast-enhanced hilar mass is completed 8.5-fold from the part the lung encloses too, but the lung borders
    0.82 of its outline (the collapsed lung's completions 0.60-0.62): its extent is seen."""
    case = mass_chest("hilar", "right", slice_mm=2.5, seed=CLASSES.index("hilar") * 2 + 1, contrast=True)
    found = _search(case)
    assert np.count_nonzero(found.mask & case.truth) >= 0.85 * np.count_nonzero(case.truth)
    assert not any("collapsed lung" in d for d in found.doubts), found.doubts


def test_a_large_mass_that_pushed_the_lung_back_against_the_heart_is_found_and_named_uncertain():
    """A 180 mL mass in the right lung's front recess, against the heart, the mediastinum and the front chest wall,
    pushes the lung back so far that the lung's slice-wise hull holds 0.3 of it: it was "not found" (a real 360 mL
    NSCLC tumour against the mediastinum was found at 1 mL). Found from its core outside the hull, with lung over and
    under it and on a third of its surface, it is measured within 10 % and named uncertain in extent (joined to the
    mediastinum with no boundary in between)."""
    case = mass_chest("anterior", "right", slice_mm=5.0, seed=CLASSES.index("anterior") * 2 + 1, size=1.3)
    found = _search(case)
    assert _side(found.mask) == "right"
    assert 0.85 <= np.count_nonzero(found.mask) / np.count_nonzero(case.truth) <= 1.15
    assert np.count_nonzero(found.mask & case.truth) >= 0.85 * np.count_nonzero(case.truth)
    assert any("right lung mass" in d and "pushed the lung back" in d and "volume are uncertain" in d
               for d in found.doubts), found.doubts


def test_a_hilar_mass_against_enhanced_blood_is_found_apart_from_the_heart():
    """A 51 mL hilar mass with the upper lobe beyond it collapsed, on a contrast-enhanced chest of 5 mm slices: the
    soft tissue (under bone's 250 HU) took in the enhanced blood (200 HU) and the enhancing collapsed lung, and the
    mass's core was a corner of one 889 mL core of the mediastinum, which no lung wraps: "not found". Enhanced blood
    is not tumour: without it the mass holds a core of its own, and is found on its side within 15 %."""
    case = mass_chest("atelectasis", "left", slice_mm=5.0, seed=CLASSES.index("atelectasis") * 2, contrast=True)
    found = _search(case)
    assert _side(found.mask) == "left"
    assert np.count_nonzero(found.mask & case.truth) >= 0.85 * np.count_nonzero(case.truth)
    assert np.count_nonzero(found.mask & ~case.truth) <= 0.15 * np.count_nonzero(case.truth)


def test_a_large_irregular_mass_against_the_wall_and_the_mediastinum_is_found_and_named_uncertain():
    """A 373 mL right mass spanning the lung from the chest wall to the mediastinum on 5 mm slices follows the
    lung's curve and fills 0.23 of its bounding box, under the 0.25 a ball-like mass fills: it was found at 16 mL
    (a real 360 mL NSCLC tumour was found at 1 mL). A mass that large passes at a lower fill, named irregular."""
    case = mass_chest("wall_mediastinum", "right", slice_mm=5.0, seed=CLASSES.index("wall_mediastinum") * 2 + 1,
                      size=1.3)
    found = _search(case)
    assert _side(found.mask) == "right"
    assert np.count_nonzero(found.mask & case.truth) >= 0.8 * np.count_nonzero(case.truth)
    assert np.count_nonzero(found.mask) <= 1.2 * np.count_nonzero(case.truth)
    assert any("right lung mass" in d and "irregular" in d and "volume are uncertain" in d
               for d in found.doubts), found.doubts


def test_enhanced_vessels_at_the_other_hilum_are_no_mass_beside_a_true_one():
    """On a contrast-enhanced chest of 5 mm slices with a 96 mL left hilar mass, the right lung's hilar branches, a
    hole the lung encloses within a slice, were a 16 mL right "mass" (median about 160 HU) stated as fact: contrast
    lifts the vessels' partial-volume rim out of fat's band, so the knot read as solid tissue. Most of it reads as
    enhanced blood, which no tumour is: the mass is found on its side only."""
    case = mass_chest("hilar", "left", slice_mm=5.0, seed=CLASSES.index("hilar") * 2, contrast=True)
    found = _search(case)
    pieces, n = label_components(found.mask, CONN26)
    assert n >= 1 and all(_side(pieces == k) == "left" for k in range(1, n + 1))
    assert np.count_nonzero(found.mask & case.truth) >= 0.9 * np.count_nonzero(case.truth)
