"""A plain-CT spleen joined by a bowel loop of its HU hanging below its lower pole along the wall it rests on:
the loop lies no deeper below the skin than the spleen's body, so the depth test of `_thick_part` kept it (the
stress generator's tuning seed 965: 123 mL of bowel, Dice 0.57). It reaches far beyond the narrow contact where
it meets the body (`OUTGROWTH_FAR_REACH_MM`, three times the spleen's own thin pieces' reach) and is left out;
the spleen's own thin pole joined all along (tests/test_spleen_thin_outgrowth.py) still stays."""

import numpy as np

from grounding.segmenters.agreement import dice
from grounding.segmenters.organs import OUTGROWTH_ML, SPLEEN_THICK_MM, _thick_part

SPACING = (2.5, 2.5, 2.5)
VOXEL_ML = float(np.prod(SPACING)) / 1000.0


def test_a_bowel_loop_hanging_below_the_spleen_at_its_depth_is_left_out():
    z, y, x = np.indices((72, 80, 80)).astype(np.float32) * np.array(SPACING, dtype=np.float32)[:, None, None, None]
    # 150 mL: semi-axes 45 (z), 25 (y) and 32 (x) mm, the generator's spleen's proportions
    spleen = ((z - 125.0) / 45.0) ** 2 + ((y - 100.0) / 25.0) ** 2 + ((x - 130.0) / 32.0) ** 2 <= 1.0
    # a loop 20 x 30 mm across, thinner than the ball of `SPLEEN_THICK_MM`, running 90 mm down from the lower pole
    # at the spleen's own depth below the skin behind it (y grows backwards)
    loop = (np.abs(x - 130.0) <= 10.0) & (np.abs(y - 100.0) <= 15.0) & (z <= 90.0) & ~spleen
    assert 20.0 < 2 * SPLEEN_THICK_MM and loop.sum() * VOXEL_ML > 3 * OUTGROWTH_ML
    joined = spleen | loop
    assert dice(joined, spleen) < 0.85
    kept, cut = _thick_part(joined, 140.0 - y, SPACING, VOXEL_ML)
    assert cut * VOXEL_ML >= 2 * OUTGROWTH_ML and not (kept & ~joined).any()
    assert dice(kept, spleen) >= 0.95
    assert np.count_nonzero(kept & spleen) >= 0.99 * spleen.sum()
