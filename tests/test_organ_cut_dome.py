"""The top of the liver or the spleen at the caudal edge of a chest CT (`grounding.segmenters.organs._cut_dome`).

A chest range that ends just below the hemidiaphragms shows only the liver's dome or the spleen's top,
too small for the usual search (`MIN_CORE_ML`) and too thin for its cores: they were declined ("no liver
found"; held-out stress seeds: four spleen tops of 4-12 mL, each scored Dice 0). They are found now,
under the right or the left lung's aerated base, and always said to be doubtful (the scan range cuts
them: their size is that of the part shown). A range ending above them still finds none. A plain-CT
spleen with much of itself near the skin is said to be doubtful (it may hold the body wall's muscle).
Built on the independent synthetic abdomen (`tests.helpers.abdomen`), 2.5 mm slices of 2 mm pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters.agreement import dice
from grounding.segmenters.organs import MIN_CORE_ML
from grounding.tool import ToolContext, ToolError
from grounding.tools import default_registry
from tests.helpers.abdomen import synthetic_abdomen


@pytest.mark.parametrize("phase", ["non-contrast", "arterial"])
@pytest.mark.parametrize("organ, z_range_mm, max_ml, min_dice", [
    ("liver", (-15.0, 85.0), MIN_CORE_ML["liver"], 0.7),  # from 15 mm below the right dome's top: the lung bases and 35-40 mL of liver
    ("spleen", (-33.0, 67.0), 15.0, 0.75),  # from 33 mm below it: the spleen's top 5 slices, 10 mL, too thin
])
def test_organ_top_cut_by_a_chest_range_is_found_and_doubtful(organ, z_range_mm, max_ml, min_dice, phase):
    case = synthetic_abdomen(3, phase, spacing=(2.5, 2.0, 2.0), z_range_mm=z_range_mm, matrix=192)
    truth = case.labels[organ]
    assert 5.0 < case.volume_ml(organ) < max_ml  # too small or thin for the usual search
    assert truth[0].any()  # the range's lowest slice cuts it
    evidence = default_registry().run(ToolContext(volumes={"0": case.volume}), "segment", {"target": organ})
    assert dice(evidence.mask, truth) >= min_dice
    assert evidence.quality.level == "doubtful"
    assert any(f"scan range cuts the {organ} below" in reason for reason in evidence.quality.reasons)


@pytest.mark.parametrize("organ, z_range_mm", [
    ("liver", (5.0, 105.0)),  # ends 5 mm above the right dome's top: diaphragm and lung
    ("spleen", (-20.0, 80.0)),  # ends 20 mm below it: the liver's dome, no spleen yet under the left lung
])
def test_chest_range_above_the_organ_finds_none(organ, z_range_mm):
    case = synthetic_abdomen(3, "non-contrast", spacing=(2.5, 2.0, 2.0), z_range_mm=z_range_mm, matrix=192)
    assert not case.labels[organ].any()
    with pytest.raises(ToolError, match=f"no {organ} found"):
        default_registry().run(ToolContext(volumes={"0": case.volume}), "segment", {"target": organ})


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
