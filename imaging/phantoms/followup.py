"""Follow-up pair: the same patient scanned twice while a lung nodule grows."""

from __future__ import annotations

import math

from imaging.phantoms.chest import NoduleSpec, chest_ct, resolve_nodules, seeded_heart_scale, vessel_tree
from imaging.phantoms.phantom import Phantom
from imaging.phantoms.shapes import XYZ, PhantomError

#: seed offset of the current scan's noise, so the two scans share anatomy but not noise
CURRENT_NOISE_OFFSET = 1000


def followup_pair(
    seed: int = 0,
    diameter_mm: tuple[float, float] = (8.0, 12.0),
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    side: str = "right",
    shift_mm: XYZ = (1.5, 0.0, -2.0),
    interval_days: float = 90.0,
    noise_hu: float = 15.0,
) -> tuple[Phantom, Phantom]:
    """A prior and a current chest CT of one patient with one nodule that changes size.

    The anatomy (vessels, nodule site) comes from ``seed``; the noise differs between the scans.
    The nodule site is chosen so that the larger of the two nodules fits. In the current scan the
    whole patient (nodule included, table excluded) is moved by ``shift_mm`` (x, y, z) mm, as a
    patient repositioned on the table would be, so nodule positions in world mm differ by exactly
    ``shift_mm``.

    Args:
        seed: the patient.
        diameter_mm: nodule diameter (prior, current) in mm.
        spacing: voxel size (z, y, x) mm of both scans.
        side: lung holding the nodule, ``right`` or ``left``.
        shift_mm: patient displacement of the current scan; y at most 3 mm (the table).
        interval_days: time between the scans, for the doubling time.
        noise_hu: noise standard deviation in HU of both scans.

    Returns:
        ``(prior, current)``. Both have ``truth["nodules"]``; ``current.truth`` also has
        ``growth_mm`` (diameter change), ``growth_pct`` (diameter change in % of the prior),
        ``volume_growth_pct``, ``interval_days``, ``volume_doubling_time_days`` (``None``
        without growth), ``patient_shift_mm`` and ``prior_center_mm``.
    """
    d0, d1 = (float(d) for d in diameter_mm)
    if d0 <= 0 or d1 <= 0:
        raise PhantomError(f"diameter_mm must be two positive diameters (prior, current), got {diameter_mm}")
    heart = seeded_heart_scale(seed)  # the patient's heart, as chest_ct draws it
    site = resolve_nodules(seed, [NoduleSpec(diameter_mm=max(d0, d1), side=side)], vessel_tree(seed, heart),
                           heart)[0][0]
    prior = chest_ct(seed, spacing, [NoduleSpec(site.center, d0, side)], noise_hu)
    current = chest_ct(
        seed, spacing, [NoduleSpec(site.center, d1, side)], noise_hu, patient_shift_mm=shift_mm,
        noise_seed=seed + CURRENT_NOISE_OFFSET,
    )
    volume_ratio = (d1 / d0) ** 3
    current.truth.update({
        "growth_mm": round(d1 - d0, 3),
        "growth_pct": round(100.0 * (d1 - d0) / d0, 2),
        "volume_growth_pct": round(100.0 * (volume_ratio - 1.0), 2),
        "interval_days": float(interval_days),
        "volume_doubling_time_days": (
            round(interval_days * math.log(2.0) / math.log(volume_ratio), 1) if volume_ratio > 1.0 else None
        ),
        "prior_center_mm": prior.truth["nodules"][0]["center_mm"],
    })
    return prior, current
