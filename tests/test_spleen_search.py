"""Spleens the classical organ segmenter declined on the stress benchmark's tuning seeds, each
reproduced on the independent synthetic abdomen: on plain CT an arm down beside the chest whose
muscle (of the spleen's HU there) centred the spleen's band (seed 93) and a narrow patient's spleen
whose core lay just medial to the relaxed search's bound (seeds 19, 72, 98); on portal-venous CT a
large spleen hanging lower than 20 mm below the liver's centre (fresh tuning seeds 116, 172)."""

from __future__ import annotations

import numpy as np

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from tests.helpers.abdomen import synthetic_abdomen
from tests.test_organ_priors_and_stripped_flair import _world


def test_plain_spleen_band_is_not_centred_on_an_arm_beside_the_chest():
    """An arm down beside the lower chest, touching it, its muscle 12 HU brighter than the spleen and
    within the liver's HU: the body widens below the lungs' lowest lateral reach, the rib cage read
    from the lungs widens with it and took the arm in; the spleen's mode, read there, was the arm's,
    and the spleen (outside that band) was declined."""
    case = synthetic_abdomen(1, "non-contrast", z_range_mm=(-150.0, 5.0), matrix=320)
    data = case.volume.data
    spleen = case.labels["spleen"]
    x, y, z = (np.broadcast_to(a, data.shape) for a in _world(case.volume))
    body = data > -500.0
    arm_y = float(np.median(y[spleen])) - 20.0
    arm_x = float(x[body & (np.abs(y - arm_y) < 3.0)].max()) + 32.0  # a 35 mm arm touching the skin
    r2 = (x - arm_x) ** 2 + (y - arm_y) ** 2
    below_the_lungs_reach = z < -10.0
    data[(r2 <= 41.0**2) & below_the_lungs_reach & ~body] = -100.0
    muscle = (r2 <= 35.0**2) & below_the_lungs_reach & ~body
    liver_hu, spleen_hu = np.median(data[case.labels["liver"]]), np.median(data[spleen])
    data[muscle] = min(liver_hu + 3.0, spleen_hu + 12.0) + np.random.default_rng(0).normal(0.0, 8.0, muscle.sum())
    organs = ClassicalSegmenter().organs(case.volume)
    assert "spleen" in organs.masks, organs.errors.get("spleen")
    assert organs.bands["spleen"][0] <= spleen_hu <= organs.bands["spleen"][1]
    assert dice(organs.mask("spleen"), spleen) >= 0.85


def test_plain_spleen_just_medial_to_the_narrow_bound_is_found_with_a_doubt():
    """The spleen moved 19.5 mm towards the midline (its centre 63 mm from it, its cores just inside
    0.55 of the left lung's reach): on plain CT, where HU does not part it from the left kidney, its
    core was taken no closer than that and it was declined. Found now, doubtful (it lies where a
    kidney may), and the left kidney medial to it stays the left kidney."""
    case = synthetic_abdomen(2, "non-contrast", z_range_mm=(-150.0, 5.0))
    data = case.volume.data
    spleen, kidney = case.labels["spleen"], case.labels["kidney_left"]
    moved = np.roll(spleen, -13, axis=2) & ~kidney
    values = np.roll(data, -13, axis=2)
    data[spleen & ~moved] = -90.0
    data[moved] = values[moved]
    organs = ClassicalSegmenter().organs(case.volume)
    assert "spleen" in organs.masks, organs.errors.get("spleen")
    assert dice(organs.mask("spleen"), moved) >= 0.75
    assert organs.doubts.get("spleen")
    assert dice(organs.mask("kidney_left"), kidney) >= 0.8


def test_large_enhanced_spleen_hanging_below_the_livers_centre_is_found():
    """Portal-venous CT, the spleen and the left kidney 35-50 mm lower than the phantom draws them:
    the spleen's centre 23 mm below the liver's, 15 mm above the left kidney's (tuning seeds 116 and
    172: 250-300 mL spleens 40 mm below the liver's centre). Its core was held to no lower than
    20 mm below the liver's centre, meant to keep the left kidney out, and it was declined; on
    enhanced CT the left kidney is found and taken first, and the spleen lies above its centre."""
    case = synthetic_abdomen(2, "portal-venous", z_range_mm=(-200.0, 5.0))
    data = case.volume.data
    moves = {"kidney_left": 10, "spleen": 7}  # slices of 5 mm
    moved = {name: np.roll(case.labels[name], -k, axis=0) for name, k in moves.items()}
    values = {name: np.roll(data, -k, axis=0) for name, k in moves.items()}
    for name in moves:
        data[case.labels[name]] = -90.0
    for name in moves:
        data[moved[name]] = values[name][moved[name]]
    organs = ClassicalSegmenter().organs(case.volume)
    assert "spleen" in organs.masks, organs.errors.get("spleen")
    assert dice(organs.mask("spleen"), moved["spleen"]) >= 0.9
    assert dice(organs.mask("kidney_left"), moved["kidney_left"]) >= 0.9
