"""The spleen's top at the caudal edge of a chest CT (`grounding.segmenters.organs._cut_dome`).

A chest range that ends a few slices below the left hemidiaphragm shows only the top of the spleen:
too thin for the spleen's cores (`CORE_MM`), it was declined ("no spleen found"; held-out stress
seeds: four such pieces of 4-12 mL, each scored Dice 0). It is found now under the left lung's aerated
base, as the liver's dome is under the right, and always said to be doubtful (the scan range cuts it:
its size is that of the part shown). A range ending above the spleen still finds none. A plain-CT
spleen with much of itself near the skin is said to be doubtful (it may hold the body wall's muscle).
Built on the independent synthetic abdomen (`tests.helpers.abdomen`), 2.5 mm slices of 2 mm pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.tool import ToolContext, ToolError
from grounding.tools import default_registry
from tests.helpers.abdomen import synthetic_abdomen


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.mark.parametrize("phase", ["non-contrast", "arterial"])
def test_spleen_top_cut_by_a_chest_range_is_found_and_doubtful(phase):
    # 40 slices from 33 mm below the right dome's top: the spleen's top 5 slices, 10 mL
    case = synthetic_abdomen(3, phase, spacing=(2.5, 2.0, 2.0), z_range_mm=(-33.0, 67.0), matrix=192)
    truth = case.labels["spleen"]
    assert 5.0 < case.volume_ml("spleen") < 15.0
    assert truth[0].any() and not truth[6:].any()  # the range's lowest slice cuts it
    evidence = default_registry().run(ToolContext(volumes={"0": case.volume}), "segment", {"target": "spleen"})
    assert dice(evidence.mask, truth) >= 0.75
    assert evidence.quality.level == "doubtful"
    assert any("scan range cuts the spleen below" in reason for reason in evidence.quality.reasons)


def test_chest_range_above_the_spleen_finds_none():
    # the range ends 20 mm below the right dome's top: the liver's dome, no spleen yet under the left lung
    case = synthetic_abdomen(3, "non-contrast", spacing=(2.5, 2.0, 2.0), z_range_mm=(-20.0, 80.0), matrix=192)
    assert not case.labels["spleen"].any() and case.labels["liver"].any()
    with pytest.raises(ToolError, match="no spleen found"):
        default_registry().run(ToolContext(volumes={"0": case.volume}), "segment", {"target": "spleen"})


def test_plain_spleen_reaching_the_body_wall_is_doubtful():
    # tuning seed 377 (plain CT, quiet): the spleen grew into the posterior wall's muscle (+44 %), 12 % of its
    # coarse mask within 20 mm of the skin, and no doubt fired; right plain spleens have 2-3.5 % there
    from types import SimpleNamespace

    from grounding.segmenters.organs import SPLEEN_WALL_DEPTH_MM, _wall_doubt

    depth = np.broadcast_to(np.arange(100, dtype=np.float32)[None, None, :], (4, 4, 100))  # mm below the skin
    frame = SimpleNamespace(depth=depth)
    grown = np.zeros(depth.shape, dtype=bool)
    grown[..., 8:58] = True  # 50 mm deep from 8 mm below the skin: 24 % within 20 mm
    right = np.zeros(depth.shape, dtype=bool)
    right[..., 19:69] = True  # from 19 mm: 2 %
    reason = _wall_doubt(grown, frame, "spleen", SPLEEN_WALL_DEPTH_MM)
    assert reason is not None and "of the spleen lies within 20 mm of the skin" in reason
    assert _wall_doubt(right, frame, "spleen", SPLEEN_WALL_DEPTH_MM) is None
    assert _wall_doubt(grown, frame) is not None and "of the liver" in _wall_doubt(grown, frame)
