"""Branches of a nodule detached from a vessel (`grounding.segmenters.lesions._detached_verdict`).

A nodule on a vessel is cut from it by an opening; what the opening removed around it must fall into at
most two branches (the vessel, perhaps cut in two), else the ball is taken for a junction of vessels.
On 3 mm slices the partial-volume halo of a 13-14 mm nodule, on the slice above or below its core,
crossed the branches' shell as faint slivers (-260 and -340 HU) and counted as a third branch (stress
tuning seed 117: a 13.6 mm nodule on a 7 mm vessel, missed). A branch is a vessel, soft tissue at its
median; the halo, faint and on one slice, is not counted now. Three vessels meeting at a ball not twice as
wide as they are stay a junction.
"""

from __future__ import annotations

import numpy as np

from grounding.segmenters.lesions import _depth_in_box, _detached_verdict

SPACING = (3.0, 0.7, 0.7)
SHAPE = (13, 64, 64)
CENTRE = (18.0, 22.4, 22.4)  # mm, z y x
LUNG_HU, SOFT_HU, HALO_HU = -850.0, 40.0, -260.0


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.meshgrid(*[np.arange(n) * sp - c for n, sp, c in zip(SHAPE, SPACING, CENTRE)], indexing="ij")


def _vessel(direction: tuple[float, float, float], radius: float) -> np.ndarray:
    """A vessel from the centre outward along ``direction`` (z, y, x)."""
    z, y, x = _grid()
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    along = z * d[0] + y * d[1] + x * d[2]
    off = np.sqrt(np.maximum(z**2 + y**2 + x**2 - along**2, 0.0))
    return (along >= 0) & (off <= radius)


def _verdict(ball_radius: float, vessels: list[np.ndarray], halos: list[np.ndarray]) -> str | None:
    z, y, x = _grid()
    ball = z**2 + y**2 + x**2 <= ball_radius**2
    residue = np.zeros(SHAPE, dtype=bool)
    values = np.full(SHAPE, LUNG_HU, dtype=np.float32)
    for vessel in vessels:
        residue |= vessel & ~ball
        values[vessel] = SOFT_HU
    for halo in halos:
        residue |= halo & ~ball
        values[halo & ~ball] = HALO_HU
    values[ball] = SOFT_HU
    depth = _depth_in_box(ball | residue, SPACING)
    none = np.zeros(SHAPE, dtype=bool)
    return _detached_verdict(ball, residue, values, depth, SPACING, none, none, 33.0)


def _halo(dz_slices: int, direction_yx: tuple[float, float]) -> np.ndarray:
    """A faint sliver on one slice beside the ball's end, reaching out in-plane past the branches' shell."""
    z, y, x = _grid()
    k = int(round(CENTRE[0] / SPACING[0])) + dz_slices
    out = np.zeros(SHAPE, dtype=bool)
    dy, dx = direction_yx
    r = np.sqrt(y[k] ** 2 + x[k] ** 2)
    out[k] = (r <= 13.0) & (y[k] * dy + x[k] * dx >= 0.7 * r) & (r >= 2.0)
    return out


def test_the_partial_volume_halo_of_a_nodule_on_a_vessel_is_no_branch():
    """A 13 mm nodule on a 7 mm vessel on 3 mm slices, with two faint slivers of its halo above and below."""
    vessel = _vessel((0.0, 1.0, 0.2), 3.5)
    halos = [_halo(-3, (-1.0, 0.0)), _halo(3, (0.0, -1.0))]
    assert _verdict(6.5, [vessel], []) == "nodule"
    assert _verdict(6.5, [vessel], halos) == "nodule"


def test_vessels_meeting_at_a_ball_no_wider_than_they_are_stay_a_junction():
    vessels = [_vessel(d, 3.5) for d in ((0.0, 1.0, 0.2), (0.0, -0.5, 1.0), (0.2, -0.5, -1.0))]
    assert _verdict(5.5, vessels, []) is None  # wider than them by more than the widening test asks
