"""A plain-CT spleen joined by bowel of its HU over a broad contact: the bowel, mottled with fat, is thinner
than the spleen, and the part of the chosen basins no ball of `SPLEEN_THICK_MM` reaches into is left out
when it comes in pieces of at least `OUTGROWTH_ML` (`_thick_part`); the spleen's own rounded edge stays."""

import numpy as np

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.segmenters.organs import OUTGROWTH_ML, SPLEEN_THICK_MM, _thick_part
from tests.helpers.abdomen import synthetic_abdomen

SPACING = (2.5, 2.5, 2.5)
VOXEL_ML = float(np.prod(SPACING)) / 1000.0


def _grid(shape=(40, 80, 80)):
    return np.indices(shape).astype(np.float32) * np.array(SPACING, dtype=np.float32)[:, None, None, None]


def _spleen(z, y, x):
    # 150 mL: semi-axes 45 (z), 25 (y) and 32 (x) mm, the generator's spleen's proportions
    return ((z - 50) / 45.0) ** 2 + ((y - 100) / 25.0) ** 2 + ((x - 130) / 32.0) ** 2 <= 1.0


def _depth(y):
    # the skin behind the spleen (y grows backwards): the bowel in front lies deeper
    return 140.0 - y


def test_bowel_loops_joined_broadly_are_left_out():
    z, y, x = _grid()
    spleen = _spleen(z, y, x)
    # five loops 16 mm thick running forwards 80 mm from inside the spleen's front, side by side (a sheet 16 mm
    # thick, 80 mm high): they meet the spleen over 80 x 16 mm, with no narrowing
    bowel = np.zeros_like(spleen)
    for dz in (-32.0, -16.0, 0.0, 16.0, 32.0):
        bowel |= (np.abs(z - 50.0 - dz) <= 8.0) & (np.abs(x - 120.0) <= 8.0) & (y >= 15.0) & (y <= 95.0)
    bowel &= ~spleen
    assert bowel.sum() * VOXEL_ML > 3 * OUTGROWTH_ML
    joined = spleen | bowel
    assert dice(joined, spleen) < 0.85
    kept, cut = _thick_part(joined, _depth(y), SPACING, VOXEL_ML)
    assert cut > 0 and not (kept & ~joined).any()
    assert dice(kept, spleen) >= 0.93
    assert np.count_nonzero(kept & spleen) >= 0.97 * spleen.sum()


def test_a_spleen_alone_is_unchanged():
    z, y, x = _grid()
    spleen = _spleen(z, y, x)
    kept, cut = _thick_part(spleen, _depth(y), SPACING, VOXEL_ML)
    assert cut == 0 and (kept == spleen).all()
    # too thin for the ball anywhere (a spleen's top the scan range cuts to a slab 2 `SPLEEN_THICK_MM` thin): kept
    slab = spleen & (np.abs(y - 100.0) < SPLEEN_THICK_MM)
    kept, cut = _thick_part(slab, _depth(y), SPACING, VOXEL_ML)
    assert cut == 0 and (kept == slab).all()


def test_a_thin_pole_joined_all_along_stays():
    """The synthetic abdomen's noisy plain spleen (tests/test_liver_noise_and_bowel.py): its thin part, medial to
    the body and deeper below the skin, came as a piece of 18-20 mL that the cut took (Dice 0.91 -> 0.72). A pole
    joined to the body along its whole length reaches little beyond it (`OUTGROWTH_REACH_MM`) and stays."""
    z, y, x = _grid()
    spleen = _spleen(z, y, x)
    # a flange 15 mm thick and 80 mm high along the body's medial side, 20 mm beyond it
    pole = (np.abs(y - 100.0) <= 7.5) & (np.abs(z - 50.0) <= 40.0) & (x >= 78.0) & (x < 110.0) & ~spleen
    joined = spleen | pole
    assert pole.sum() * VOXEL_ML >= OUTGROWTH_ML
    kept, cut = _thick_part(joined, 180.0 - x, SPACING, VOXEL_ML)  # the lateral skin at x = 180 mm
    assert cut == 0 and (kept == joined).all()


def test_the_synthetic_abdomens_plain_spleen_keeps_its_thin_part():
    """End to end on the noisy plain abdomen at 15 HU (the 28 HU case is tests/test_liver_noise_and_bowel.py):
    the cut without `OUTGROWTH_REACH_MM` took 20 mL of its 62 mL core (Dice 0.68)."""
    case = synthetic_abdomen(3, "non-contrast", spacing=(3.0, 1.0, 1.0), noise_hu=15.0)
    organs = ClassicalSegmenter().organs(case.volume)
    assert "spleen" in organs.masks, organs.errors.get("spleen")
    assert dice(organs.masks["spleen"], case.labels["spleen"]) >= 0.85
    assert not any("reaching over" in r for r in organs.doubts.get("spleen", []))
