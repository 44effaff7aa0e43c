"""A block of chest wall holding an ellipsoid of aerated lung on 5 mm slices, with a ball of soft tissue on
or near the pleura: the set-up of the thick-slice juxtapleural nodule tests. Built here, independent of
`imaging.phantoms` and `benchmarks.stress`: HU averaged over sub-slices (partial volume), with noise."""

from __future__ import annotations

import numpy as np

SPACING = (5.0, 0.8, 0.8)
SHAPE = (14, 70, 120)
#: sub-slices averaged into one slice
SUB = 5
#: the lung: an ellipsoid (centre, semi-axes; z, y, x mm) in a block of chest wall
LUNG_CENTRE, LUNG_AXES = (32.0, 28.0, 60.0), (32.0, 25.0, 52.0)
LUNG_HU, WALL_HU = -850.0, 40.0


def in_lung(z, yy, xx):
    return sum(((v - c) / a) ** 2 for v, c, a in zip((z, yy, xx), LUNG_CENTRE, LUNG_AXES)) <= 1.0


def lateral_wall_x(z_mm: float, y_mm: float) -> float:
    """Where the lung's outline meets the lateral wall (x, mm) at height ``z_mm`` and row ``y_mm``."""
    across = np.sqrt(1.0 - sum(((v - c) / a) ** 2 for v, c, a in zip((z_mm, y_mm), LUNG_CENTRE, LUNG_AXES)))
    return float(LUNG_CENTRE[2] - LUNG_AXES[2] * across)


def chest_with_ball(centre: tuple[float, float, float], diameter_mm: float, tissue_hu: float, core_share: float,
                    core_hu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lungs, pockets, outline, ball): a ball of ``diameter_mm`` at ``centre`` (z, y, x mm) of
    ``tissue_hu``, its inner ``core_share`` of the diameter ``core_hu``. The lung mask is the aerated lung;
    its pockets hold the dense tissue inside the lung's ``outline``, as the chest analysis' pleural
    pockets do; ``ball`` is the ball on the voxel centres."""

    def ball(z, yy, xx, share=1.0):
        return (z - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= (share * diameter_mm / 2) ** 2

    y, x = [(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE[1:], SPACING[1:])]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    out = np.zeros(SHAPE, np.float32)
    for k in range(SHAPE[0]):
        for s in range(SUB):
            z = (k + (s + 0.5) / SUB) * SPACING[0]
            tissue = np.where(ball(z, yy, xx, core_share), core_hu, tissue_hu)
            out[k] += np.where(ball(z, yy, xx), tissue, np.where(in_lung(z, yy, xx), LUNG_HU, WALL_HU))
    out = out / SUB + np.random.default_rng(0).normal(0, 15, SHAPE).astype(np.float32)
    zz, yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) * sp for n, sp in zip(SHAPE, SPACING)], indexing="ij")
    outline = in_lung(zz, yy, xx)
    lungs = outline & (out < -400)
    return out, lungs, outline & ~lungs, outline, ball(zz, yy, xx)
