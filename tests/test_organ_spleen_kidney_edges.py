"""Spleen and kidney edges on the project's synthetic abdomen (`tests.helpers.abdomen`), each a
reproduction of a stress failure class: an enhanced spleen's partial-volume rim taken back into the
muscle beside it (+21 % at quality ok on 5 mm slices), a plain-CT spleen cut out of bowel of its own
HU by shape alone, stated without doubt, and the arterial aorta filled into the left kidney."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.tool import ToolContext
from grounding.tools import default_registry
from tests.helpers.abdomen import _tube, synthetic_abdomen
from tests.test_organ_priors_and_stripped_flair import _world


def test_enhanced_spleen_rim_stops_at_the_muscle_beside_it():
    """Arterial CT with an 8 mm layer of muscle (50 HU) wrapped around the spleen (120-ish HU): the
    rim taken back below the spleen's band reached into the muscle (+30 %, Dice 0.87, no doubt)."""
    case = synthetic_abdomen(1, "arterial")
    data, spleen = case.volume.data, case.labels["spleen"]
    _, sy, sx = case.volume.spacing
    shell = ndimage.binary_dilation(spleen, np.ones((1, 2 * int(8 / sy) + 1, 2 * int(8 / sx) + 1), bool)) & ~spleen
    for other in ("liver", "kidney_left", "kidney_right"):
        shell &= ~case.labels[other]
    data[shell & (data < 0)] = 50.0
    found = ClassicalSegmenter().organs(case.volume).mask("spleen")
    assert abs(found.sum() / spleen.sum() - 1.0) <= 0.12
    assert dice(found, spleen) >= 0.9


def test_plain_spleen_cut_from_bowel_of_its_hu_is_doubtful():
    """Plain CT with a bowel loop of the spleen's own HU running from the spleen towards the front and
    the midline: the spleen took part of it (+30 %), its edge there placed by the opening and the
    basin's reach, not by a change of HU, and nothing said so. A spleen bordered by fat and organs of
    other HU carries no such doubt."""
    quiet = synthetic_abdomen(0, "non-contrast")
    organs = ClassicalSegmenter().organs(quiet.volume)
    assert dice(organs.mask("spleen"), quiet.labels["spleen"]) >= 0.9
    assert not any("own HU band" in reason for reason in organs.doubts.get("spleen", []))
    case = synthetic_abdomen(4, "non-contrast")
    data, spleen = case.volume.data, case.labels["spleen"]
    x, y, z = _world(case.volume)
    start = np.array([np.broadcast_to(a, data.shape)[spleen].mean() for a in (x, y, z)])
    loop = _tube(x, y, z, start, start + np.array([-90.0, -70.0, -10.0]), 11.0) & ~spleen
    for other in ("liver", "kidney_left", "kidney_right"):
        loop &= ~case.labels[other]
    data[loop & (data > -200) & (data < 150)] = float(np.median(data[spleen]))
    context = ToolContext(volumes={"0": case.volume})
    ev = default_registry().run(context, "segment", {"target": "spleen"})
    assert ev.quality.level != "ok"
    assert any("own HU band" in reason for reason in ev.quality.reasons)


def test_arterial_aorta_touching_the_left_kidney_is_not_taken_into_it():
    """Arterial CT with a 320 HU vessel of 11 mm radius against the left kidney's medial side: ringed
    by its partial volume inside the kidney's band (which reached up to 600 HU), it was filled in as a
    hole of the kidney and taken with it (+24 %, Dice 0.80; tuning seed 45: the aorta, +97 % at quality
    ok). The band stops below the aorta's HU, and only holes darker than its top are filled."""
    case = synthetic_abdomen(0, "arterial")
    data, kidney = case.volume.data, case.labels["kidney_left"]
    x, y, _ = _world(case.volume)
    centre_x = float(np.broadcast_to(x, data.shape)[kidney].min()) - 8.0
    centre_y = float(np.median(np.broadcast_to(y, data.shape)[kidney]))
    data[np.broadcast_to((x - centre_x) ** 2 + (y - centre_y) ** 2 <= 11.0**2, data.shape) & ~kidney] = 320.0
    found = ClassicalSegmenter().organs(case.volume).mask("kidney_left")
    assert dice(found, kidney) >= 0.88
    assert abs(found.sum() / kidney.sum() - 1.0) <= 0.15


def test_portal_venous_spleen_beside_the_left_kidney_is_grown_whole():
    """Portal-venous CT: the spleen's lower part, beside the left kidney taken before it, fell into
    watershed basins of its own and was lost beyond the opening's reach (synthetic seed 2: -8 %, Dice
    0.957; stress tuning seeds' portal-venous spleens -5 % median, 25 of 26 small). It grows back
    through its band up to `REACH_MM` beyond its basins, not only the opening's 3.5 mm."""
    venous = synthetic_abdomen(2, "portal-venous")
    found = ClassicalSegmenter().organs(venous.volume).mask("spleen")
    spleen = venous.labels["spleen"]
    assert abs(found.sum() / spleen.sum() - 1.0) <= 0.05
    assert dice(found, spleen) >= 0.975


def test_arterial_spleen_keeps_the_short_reach():
    """An arterial spleen's wide band (a mottled spleen, mode +- 45 HU) holds darker neighbours: grown
    through all of its band it came out 8-15 % too large (synthetic seeds 0-3), so it keeps the
    opening's reach (a guard: passes before and after the portal-venous change)."""
    arterial = synthetic_abdomen(1, "arterial")
    found = ClassicalSegmenter().organs(arterial.volume).mask("spleen")
    assert abs(found.sum() / arterial.labels["spleen"].sum() - 1.0) <= 0.06
