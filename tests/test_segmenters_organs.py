"""Classical abdominal organs on CT (a heuristic checked on phantoms) and a lesion within an organ."""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters import ClassicalSegmenter, Prompt, SegmentationError
from grounding.segmenters.agreement import dice
from imaging.phantoms import abdomen_ct, chest_ct

ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")


@pytest.mark.parametrize("seed, spacing", [(0, (3.0, 2.0, 2.0)), (2, (2.0, 1.5, 1.5))])
def test_organs_match_the_phantom(seed, spacing):
    phantom = abdomen_ct(seed=seed, spacing=spacing)
    seg = ClassicalSegmenter()
    masks = {organ: seg.segment(phantom.volume, organ) for organ in ORGANS}
    for organ, mask in masks.items():
        assert mask.shape == phantom.volume.shape and mask.dtype == bool
        assert dice(mask, phantom.labels[organ]) >= 0.9, organ
        assert mask.sum() == pytest.approx(phantom.labels[organ].sum(), rel=0.1), organ
    total = sum(m.astype(np.uint8) for m in masks.values())
    assert total.max() == 1  # no voxel belongs to two organs
    assert masks["liver"][phantom.labels["liver_lesion"]].mean() > 0.99  # the lesion is inside the liver
    assert seg.segment(phantom.volume, "left kidney").sum() == masks["kidney_left"].sum()  # alias


def test_lesion_within_the_liver():
    phantom = abdomen_ct(seed=1)
    seg = ClassicalSegmenter()
    liver = seg.segment(phantom.volume, "liver")
    lesion = seg.segment(phantom.volume, "lesion", Prompt(within=liver))
    assert dice(lesion, phantom.labels["liver_lesion"]) >= 0.8 and not (lesion & ~liver).any()
    plain = abdomen_ct(seed=1, lesion_diameter_mm=0.0)
    assert not seg.segment(plain.volume, "lesion", Prompt(within=seg.segment(plain.volume, "liver"))).any()
    with pytest.raises(SegmentationError, match="'within' mask has shape"):
        seg.segment(phantom.volume, "lesion", Prompt(within=liver[:-1]))


def test_organs_missing_from_the_field_of_view():
    """A chest CT holds the liver dome but no spleen or kidneys: a clear error, not a fragment."""
    phantom = chest_ct(seed=2, spacing=(3.0, 2.0, 2.0), nodules=[])
    with pytest.raises(SegmentationError, match="no spleen found.*--segmenter totalseg "):
        ClassicalSegmenter().segment(phantom.volume, "spleen")
    with pytest.raises(SegmentationError, match="no left kidney found"):
        ClassicalSegmenter().segment(phantom.volume, "kidney_left")


def test_segment_tool_within_argument():
    """``within`` names an earlier segment result; the search (and the mask) stay inside it."""
    from grounding.tool import ToolContext, ToolError
    from grounding.tools import default_registry

    phantom = abdomen_ct(seed=0)
    registry, context = default_registry(), ToolContext(volumes={"0": phantom.volume})
    with pytest.raises(ToolError, match="'within' must be the id of a segment result"):
        registry.run(context, "segment", {"target": "lesion", "within": "E9"})
    liver = registry.run(context, "segment", {"target": "liver"})
    lesion = registry.run(context, "segment", {"target": "lesion", "within": liver.id})
    assert lesion.mask.any() and not (lesion.mask & ~liver.mask).any()
    assert dice(lesion.mask, phantom.labels["liver_lesion"]) >= 0.7 and "Searched within E1" in lesion.text
