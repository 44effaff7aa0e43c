"""A plain-CT spleen joined by a bowel loop of its HU lying along its front over a contact about as long as the
loop, thinner than the ball of `SPLEEN_THICK_MM` and deeper below the skin than the spleen's body: the loop reaches
about 15 mm beyond the contact (its volume over the contact's area), short of the former 20 mm bound, so
`_thick_part` kept it (the stress generator's tuning seed 18: 38 mL of bowel reaching 12 mm, 6 mm deeper, Dice
0.57). It is left out at `OUTGROWTH_REACH_MM` (12 mm, above the spleen's own pieces' 5-10 mm); the spleen's own
thin pole joined all along (tests/test_spleen_thin_outgrowth.py) still stays."""

import numpy as np

from grounding.segmenters.agreement import dice
from grounding.segmenters.organs import OUTGROWTH_ML, SPLEEN_THICK_MM, _thick_part

SPACING = (2.5, 2.5, 2.5)
VOXEL_ML = float(np.prod(SPACING)) / 1000.0


def test_a_bowel_loop_along_the_spleens_front_is_left_out():
    z, y, x = np.indices((72, 80, 80)).astype(np.float32) * np.array(SPACING, dtype=np.float32)[:, None, None, None]
    # 150 mL: semi-axes 45 (z), 25 (y) and 32 (x) mm, the generator's spleen's proportions; the skin behind it at
    # y = 140 mm (y grows backwards)
    spleen = ((z - 90.0) / 45.0) ** 2 + ((y - 100.0) / 25.0) ** 2 + ((x - 100.0) / 32.0) ** 2 <= 1.0
    # a loop 22 mm across and 100 mm long running down the spleen's front, its axis 9.5 mm in front of the
    # spleen's front surface (y = 75 mm): it meets the spleen along a strip of its length
    loop = (np.hypot(x - 100.0, y - 65.5) <= 11.0) & (np.abs(z - 90.0) <= 50.0) & ~spleen
    assert 22.0 < 2 * SPLEEN_THICK_MM and loop.sum() * VOXEL_ML > 2 * OUTGROWTH_ML
    joined = spleen | loop
    assert dice(joined, spleen) < 0.89
    kept, cut = _thick_part(joined, 140.0 - y, SPACING, VOXEL_ML)
    assert cut * VOXEL_ML >= OUTGROWTH_ML and not (kept & ~joined).any()
    assert dice(kept, spleen) >= 0.95
    assert np.count_nonzero(kept & spleen) >= 0.99 * spleen.sum()
