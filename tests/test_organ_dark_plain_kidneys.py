"""Plain-CT kidneys darker than the classical organ search's prior, as on the real tuning abdominal CT
(TotalSegmentator's example: liver 47, spleen 35, back muscles 25, kidneys 14-20 HU, blood and muscle
about 20 HU below textbook values). Both kidneys were declined ("no left kidney found ... 15 to 25 HU"):
the prior's floor (15 HU) cut the band in half. They are now searched again in a band read from the
scan below the liver's HU, and what that finds is said to be doubtful."""

from __future__ import annotations

import numpy as np

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from tests.helpers.abdomen import synthetic_abdomen

ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")


def test_plain_kidneys_below_the_prior_are_found_and_doubtful():
    case = synthetic_abdomen(0, "non-contrast", z_range_mm=(-150.0, 5.0))
    data = case.volume.data
    organs = np.zeros(data.shape, dtype=bool)
    for name in ORGANS:
        organs |= case.labels[name]
    # the real scan's soft tissue reads about 22 HU darker than textbook values (muscle, blood, bowel) ...
    data[~organs & (data > -50.0) & (data < 150.0)] -= 22.0
    # ... and its organs' medians
    for name, hu in (("liver", 47.0), ("spleen", 35.0), ("kidney_left", 15.0), ("kidney_right", 15.0)):
        data[case.labels[name]] -= np.median(data[case.labels[name]]) - hu
    found = ClassicalSegmenter().organs(case.volume)
    assert found.statistics.phase == "non-contrast"
    for side in ("kidney_left", "kidney_right"):
        assert side in found.masks, found.errors.get(side)
        kidney, truth = found.masks[side], case.labels[side]
        assert dice(kidney, truth) >= 0.85
        assert 0.8 <= kidney.sum() / truth.sum() <= 1.2
        assert any("band read from this scan" in reason for reason in found.doubts.get(side, []))
    assert dice(found.mask("spleen"), case.labels["spleen"]) >= 0.85
