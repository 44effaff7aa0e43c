"""Failure classes of the classical abdominal organs found on the stress benchmark's tuning seeds and
the real plain CT, each reproduced by a construction on the independent synthetic abdomen: a
patient lying at an angle to the scanner's axes (an oblique affine), an enhanced heart taken for
the spleen when no liver is in the field, a plain spleen darker than the phantom prior (taken for
the left kidney, or lost), a noisy plain CT whose spleen was stated without doubt, and a narrow
patient whose plain-CT spleen lies closer to the midline than a wide patient's (declined)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.tool import ToolContext
from grounding.tools import default_registry
from imaging.volume import Volume
from tests.helpers.abdomen import synthetic_abdomen
from tests.test_organ_priors_and_stripped_flair import _world


def _tilted(volume: Volume, degrees: float) -> Volume:
    """The same voxels with the affine rotated about the patient's left-right axis: in world
    coordinates the patient lies at ``degrees`` to the scanner's z axis."""
    t = np.radians(degrees)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return Volume(data=volume.data, spacing=volume.spacing, affine=rotation @ volume.affine,
                  modality=volume.modality)


def test_kidneys_of_a_patient_lying_at_an_angle():
    """20 degrees over 200 mm moves the spine's front by 70 mm between the first and the last slice:
    read as one y, the spine put the kidneys "in front of" it at one end and the back muscles
    beside it at the other (kidneys refused or wrong on oblique stress cases)."""
    case = synthetic_abdomen(3, "portal-venous", z_range_mm=(-190.0, 10.0))
    volume = _tilted(case.volume, 20.0)
    organs = ClassicalSegmenter().organs(volume)
    for side in ("kidney_left", "kidney_right"):
        assert dice(organs.mask(side), case.labels[side]) >= 0.8, side
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.8


def _chest_only(phase: str):
    """A scan of the chest above the liver's dome (heart, lungs, no abdominal organ)."""
    case = synthetic_abdomen(1, phase, z_range_mm=(15.0, 115.0))
    for name in ("liver", "spleen", "kidney_left", "kidney_right"):
        assert not case.labels[name].any(), name
    return case


def test_enhanced_heart_without_a_liver_is_not_the_spleen():
    """A portal-venous chest-only scan, the heart (120 HU, the spleen's) left and back with the left
    lung wrapped behind it: with no liver found there was no dome to keep the spleen below, and the
    heart was found as the spleen."""
    case = _chest_only("portal-venous")
    data = case.volume.data
    x, y, z = _world(case.volume)
    body = ndimage.binary_fill_holes(data > -500.0, structure=np.ones((1, 3, 3), bool))
    cavity = body & ((data > -95.0) | (data < -500.0))
    centre = (60.0, 5.0, 60.0)
    r = ((x - centre[0]) / 45.0) ** 2 + ((y - centre[1]) / 35.0) ** 2 + ((z - centre[2]) / 30.0) ** 2
    lung = (r <= 2.2) & cavity & (data < 150.0)
    data[lung] = -850.0
    data[(r <= 1.0) & lung] = 120.0
    organs = ClassicalSegmenter().organs(case.volume)
    assert "spleen" not in organs.masks


def test_plain_spleen_darker_than_the_prior_is_not_the_left_kidney():
    """The real plain CT: spleen 35 HU beside a liver of 47 HU and kidneys of 15-25 HU. The spleen's
    band was clipped at the prior's floor (34 HU) and the left kidney's search, done first with a
    prior reaching 130 mm from the spine, took the spleen as the left kidney (Dice 0 with the kidney,
    stated as a volume)."""
    case = synthetic_abdomen(2, "non-contrast", z_range_mm=(-150.0, 5.0))
    data = case.volume.data
    data[case.labels["spleen"]] = 35.0 + (data[case.labels["spleen"]] - np.median(data[case.labels["spleen"]]))
    data[case.labels["liver"]] -= np.median(data[case.labels["liver"]]) - 47.0
    for side in ("kidney_left", "kidney_right"):
        data[case.labels[side]] -= np.median(data[case.labels[side]]) - 20.0
    organs = ClassicalSegmenter().organs(case.volume)
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.8
    if "kidney_left" in organs.masks:
        kidney = organs.masks["kidney_left"]
        assert np.count_nonzero(kidney & case.labels["spleen"]) <= 0.2 * kidney.sum()


def test_noisy_plain_spleen_and_kidneys_are_doubtful():
    """Plain CT with noise of 26 HU: spleen, kidney, muscle and bowel (5-15 HU apart) cannot be told
    apart by HU, and what was found there was stated as fact."""
    case = synthetic_abdomen(3, "non-contrast", noise_hu=26.0)
    context = ToolContext(volumes={"0": case.volume})
    found = [t for t in ("spleen", "kidney_left", "kidney_right")
             if t in ClassicalSegmenter().organs(case.volume).masks]
    assert found
    for target in found:
        ev = default_registry().run(context, "segment", {"target": target})
        assert ev.quality.level != "ok", target
        assert any("noisy plain CT" in r for r in ev.quality.reasons), target
    quiet = synthetic_abdomen(3, "non-contrast", noise_hu=8.0)
    organs = ClassicalSegmenter().organs(quiet.volume)
    assert not any("noisy" in r for reasons in organs.doubts.values() for r in reasons)


def test_enhanced_left_kidney_without_a_spleen_is_doubtful():
    """Arterial CT with the left kidney out of view (painted over as fat): the kidneys are searched
    first in a band holding the enhanced spleen's HU, and the spleen was stated as the left kidney
    (a stress case: 59 mL "kidney" where there is none)."""
    case = synthetic_abdomen(2, "arterial")
    case.volume.data[case.labels["kidney_left"]] = -90.0
    spleen = case.labels["spleen"]
    case.volume.data[spleen] = 150.0 + (case.volume.data[spleen] - np.median(case.volume.data[spleen]))
    context = ToolContext(volumes={"0": case.volume})
    organs = ClassicalSegmenter().organs(case.volume)
    assert "kidney_left" in organs.masks and "spleen" not in organs.masks  # the case reproduces the swap
    ev = default_registry().run(context, "segment", {"target": "kidney_left"})
    assert ev.quality.level != "ok"
    assert any("it may be the spleen" in r for r in ev.quality.reasons)


def _narrowed(volume: Volume, factor: float) -> Volume:
    """The same voxels with the patient's left-right axis scaled by ``factor``: a narrower patient
    (body, lungs and organs all closer to the midline)."""
    affine = volume.affine.copy()
    affine[0, :] *= factor  # world x of every voxel (LPS: x is the patient's left)
    spacing = (volume.spacing[0], volume.spacing[1], volume.spacing[2] * factor)
    return Volume(data=volume.data, spacing=spacing, affine=affine, modality=volume.modality)


def test_plain_spleen_of_a_narrow_patient():
    """Stress seed 0: a narrow patient (torso half-width 137 mm) whose plain-CT spleen lay 77 mm left
    of the midline, inside the fixed 80 mm that keeps the search lateral to the left kidney: the
    spleen was declined. Scaled to the patient's left lung, the spleen is found (with a doubt on its
    extent), and the left kidney (medial to it) stays the left kidney."""
    case = synthetic_abdomen(1, "non-contrast", z_range_mm=(-150.0, 5.0))
    organs = ClassicalSegmenter().organs(_narrowed(case.volume, 0.8))
    assert "spleen" in organs.masks, organs.errors.get("spleen")
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.8
    assert dice(organs.mask("kidney_left"), case.labels["kidney_left"]) >= 0.8
    # found by the relaxed search, its extent is doubtful (tuning seed 0 took 23 % of rim and kidney)
    assert any("closer to the midline" in reason for reason in organs.doubts.get("spleen", []))


def test_narrow_patient_without_a_spleen_gives_no_confident_spleen():
    """Closer to the midline the relaxed search reaches where the left kidney lies: with the spleen
    gone (splenectomy) what is found as the spleen must carry a doubt naming the kidney."""
    case = synthetic_abdomen(0, "non-contrast", z_range_mm=(-150.0, 5.0))
    case.volume.data[case.labels["spleen"]] = -100.0
    organs = ClassicalSegmenter().organs(_narrowed(case.volume, 0.8))
    if "spleen" in organs.masks:
        assert any("left kidney" in reason for reason in organs.doubts.get("spleen", []))
