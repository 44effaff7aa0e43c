"""The liver's dome at the caudal edge of a chest CT (`grounding.segmenters.organs._cut_dome`).

A chest range that ends just below the right hemidiaphragm shows only the top of the liver, too small
for the usual search (`MIN_CORE_ML`) and too thin for its cores: it was declined ("no liver found").
It is found now, under the right lung's aerated base, and always said to be doubtful (the scan range
cuts it: its size is that of the part shown). A range ending above the dome still finds no liver.
Built on the independent synthetic abdomen (`tests.helpers.abdomen`), 2.5 mm slices of 2 mm pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters.organs import MIN_CORE_ML
from grounding.tool import ToolContext, ToolError
from grounding.tools import default_registry
from tests.helpers.abdomen import synthetic_abdomen


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.mark.parametrize("phase", ["non-contrast", "arterial"])
def test_liver_dome_cut_by_a_chest_range_is_found_and_doubtful(phase):
    # 40 slices from 15 mm below the right dome's top: the lung bases and 35-40 mL of liver
    case = synthetic_abdomen(3, phase, spacing=(2.5, 2.0, 2.0), z_range_mm=(-15.0, 85.0), matrix=192)
    truth = case.labels["liver"]
    assert 5.0 < case.volume_ml("liver") < MIN_CORE_ML["liver"]  # too small for the usual search
    context = ToolContext(volumes={"0": case.volume})
    evidence = default_registry().run(context, "segment", {"target": "liver"})
    assert dice(evidence.mask, truth) >= 0.7
    assert evidence.quality.level == "doubtful"
    assert any("scan range cuts the liver below" in reason for reason in evidence.quality.reasons)


def test_chest_range_above_the_dome_finds_no_liver():
    # the range ends 5 mm above the right dome's top: diaphragm and lung, no liver
    case = synthetic_abdomen(3, "non-contrast", spacing=(2.5, 2.0, 2.0), z_range_mm=(5.0, 105.0), matrix=192)
    assert not case.labels["liver"].any()
    with pytest.raises(ToolError, match="no liver found"):
        default_registry().run(ToolContext(volumes={"0": case.volume}), "segment", {"target": "liver"})
