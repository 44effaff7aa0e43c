"""Agreement between two segmenters on the same target, as an evidence quality check.

`segmenter_agreement` gives the Dice overlap and the volume ratio of two masks on one grid;
`assess_agreement` records them in ``evidence.data["agreement"]`` and flags the evidence
``doubtful`` when the two disagree (Dice below `MIN_DICE`, or volumes differing by more than
`MAX_VOLUME_DIFFERENCE`). The ``segment`` tool calls it whenever a second segmenter's mask of the
same target is at hand (``--segmenter auto`` cross-checks a model against the classical
segmenter); anything else holding two masks can call it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: below this Dice two segmentations of one structure are not the same structure
MIN_DICE = 0.7
#: volumes differing by more than this fraction of the larger one are flagged
MAX_VOLUME_DIFFERENCE = 0.25


def dice(mask: np.ndarray, other: np.ndarray) -> float:
    """Dice overlap of two boolean masks on one grid; two empty masks agree (1.0)."""
    total = int(np.count_nonzero(mask)) + int(np.count_nonzero(other))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(mask & other)) / total


def segmenter_agreement(mask: np.ndarray, other: np.ndarray, voxel_volume_mm3: float = 1.0) -> dict[str, Any]:
    """Dice, volume ratio (``mask`` / ``other``) and both volumes in mL of two masks on one grid.

    Two empty masks agree (Dice 1, ratio 1); only ``other`` empty: Dice 0 and no ratio (``None``).

    Raises:
        ValueError: the masks have different shapes.
    """
    a, b = np.asarray(mask, dtype=bool), np.asarray(other, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks on different grids: {a.shape} and {b.shape}")
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    return {"dice": round(dice(a, b), 4), "volume_ratio": round(na / nb, 4) if nb else (1.0 if na == 0 else None),
            "volume_ml": round(na * voxel_volume_mm3 / 1000, 3), "other_volume_ml": round(nb * voxel_volume_mm3 / 1000, 3)}


def assess_agreement(evidence: Any, other_mask: np.ndarray, other_name: str, voxel_volume_mm3: float = 1.0
                     ) -> dict[str, Any]:
    """Compare ``evidence.mask`` with ``other_mask`` (from segmenter ``other_name``) and record it.

    The numbers go to ``evidence.data["agreement"]`` (with ``other``: the second segmenter); the
    evidence is flagged ``doubtful`` with a reason when Dice < `MIN_DICE` or the volume ratio is
    off by more than `MAX_VOLUME_DIFFERENCE`. Returns the agreement record.
    """
    record = {"other": other_name, **segmenter_agreement(evidence.mask, other_mask, voxel_volume_mm3)}
    evidence.data["agreement"] = record
    evidence.quality.checks.append(f"agreement with the {other_name} segmenter")
    ratio = record["volume_ratio"]
    if record["dice"] < MIN_DICE:
        evidence.quality.flag("doubtful", f"the {other_name} segmenter disagrees (Dice {record['dice']:.2f} "
                                          f"< {MIN_DICE})")
    if ratio is None or abs(ratio - 1.0) > MAX_VOLUME_DIFFERENCE:
        shown = "an empty mask" if ratio is None else f"{ratio:.2f} times its volume"
        evidence.quality.flag("doubtful", f"the {other_name} segmenter finds {shown} "
                                          f"(more than {MAX_VOLUME_DIFFERENCE:.0%} apart)")
    return record
