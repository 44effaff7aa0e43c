"""The ``segment`` tool: prompt mapping through view geometry, 2d/3d modes, caching, overlays, errors.

Most tests use a deterministic recording backend to check exactly what the tool sends to a
segmenter and what it does with the mask; `test_classical_*` run the real classical backend.
"""

from __future__ import annotations

import numpy as np
import pytest
from grounding.segmenters.agreement import dice
from tests.helpers.tools import RecordingSegmenter, context_with, small_chest, small_xray

import grounding.tools.segment as segment_module
from grounding.segmenters.base import SegmentationError
from grounding.tool import ToolError
from grounding.tools import default_registry


@pytest.fixture()
def backend(monkeypatch):
    seg = RecordingSegmenter()
    made = []

    def fake_get_segmenter(name="classical", **options):
        made.append((name, options))
        return seg

    monkeypatch.setattr(segment_module, "get_segmenter", fake_get_segmenter)
    seg.made = made
    return seg


@pytest.fixture()
def chest():
    return small_chest()


def test_box_prompt_on_axial_view_3d(backend, chest):
    vol, nodule, _ = chest
    reg, ctx = default_registry(), context_with(vol, options={"segmenter_options": {"threshold_hint": 1}})
    reg.run(ctx, "view", {"index": 20})
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    assert backend.made == [("classical", {"threshold_hint": 1})]
    shape, target, prompt = backend.calls[0]
    assert shape == vol.shape and target == "lesion"
    assert prompt.box_zyx == (slice(20, 21), slice(50, 75), slice(25, 51)) and prompt.plane_axis == 0
    assert prompt.point_zyx is None
    expected = np.zeros(vol.shape, bool)
    expected[20] = nodule[20]
    assert ev.mask.dtype == bool and np.array_equal(ev.mask, expected) and ev.mask_volume == "0"
    voxels = int(expected.sum())
    assert ev.data["voxels"] == voxels and ev.data["mode"] == "3d" and ev.data["laterality"] == "right"
    assert ev.measurements["volume_mm3"].value == pytest.approx(voxels * 2.5 * 0.8 * 0.8)
    assert ev.measurements["volume_ml"].unit == "mL"
    assert "Segmented 'lesion' in the prompted region (3D" in ev.text and "on the patient's right" in ev.text


def test_overlay_is_axial_slice_of_largest_area(backend, chest):
    vol, nodule, _ = chest
    backend.threshold = 0.0
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"plane": "coronal", "window": "lung"})
    # a box on a coronal view covers one coronal slice: z rows are flipped (superior at the top)
    ev = reg.run(ctx, "segment", {"view_id": "V1", "bbox_2d": [25, 40, 51, 88]})
    prompt = backend.calls[0][2]
    assert prompt.plane_axis == 1 and prompt.box_zyx[1] == slice(62, 63)
    assert prompt.box_zyx[0] == slice(13, 28) and prompt.box_zyx[2] == slice(25, 51)
    overlay_id = ev.data["overlay_view_id"]
    overlay = ctx.views[overlay_id]
    assert overlay_id == "V2" and ev.views == [overlay] and overlay.image.mode == "RGB"
    k = int(np.argmax(ev.mask.sum(axis=(1, 2))))
    assert overlay.geometry.normal_axis() == 0 and round(overlay.geometry.origin[0]) == k
    assert overlay.window == "lung" and f"axial slice {k}/40" in overlay.description
    rgb = np.asarray(overlay.image).astype(int)
    red = (rgb[..., 0] - rgb[..., 1]) > 40
    assert np.array_equal(red, ev.mask[k])  # 1 px = 1 voxel in this axial slice


def test_mip_box_covers_all_depths_and_point_takes_the_maximum(backend, chest):
    vol, _, _ = chest
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"plane": "coronal", "mode": "mip"})
    reg.run(ctx, "segment", {"view_id": "V1", "bbox_2d": [25, 40, 51, 88]})
    prompt = backend.calls[-1][2]
    assert prompt.box_zyx[1] == slice(0, 125) and prompt.plane_axis is None
    vol.data[20, 90, 37] = 3000.0  # the brightest voxel on that projection ray
    reg.run(ctx, "segment", {"view_id": "V1", "point_2d": [37.5, 64.5]})
    z = ctx.views["V1"].geometry.pixel_to_voxel([[37.0, 64.0]])[0, 0]  # the pixel's own z
    assert round(z) == 20 and backend.calls[-1][2].point_zyx == pytest.approx((z, 90.0, 37.0))


def test_2d_mode_segments_only_the_view_slice(backend, chest):
    vol, nodule, _ = chest
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"plane": "coronal", "index": 62})
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [25, 40, 51, 88], "mode": "2d"})
    shape, _, prompt = backend.calls[0]
    assert shape == (1, 41, 151)  # the coronal slice as a one-slice volume (z, x)
    assert prompt.box_zyx == (slice(0, 1), slice(13, 28), slice(25, 51)) and prompt.plane_axis == 0
    expected = np.zeros(vol.shape, bool)
    expected[13:28, 62, 25:51] = nodule[13:28, 62, 25:51]
    assert np.array_equal(ev.mask, expected)
    assert ev.data["plane_axis"] == 1 and ev.data["slice_index"] == 62
    assert ev.measurements["area_mm2"].value == pytest.approx(expected.sum() * 2.5 * 0.8)
    assert "on coronal slice 62 (2D" in ev.text
    overlay = ctx.views[ev.data["overlay_view_id"]]
    assert overlay.geometry.normal_axis() == 1 and "coronal slice 62/124" in overlay.description


def test_cache_and_empty_result(backend, chest):
    vol, _, _ = chest
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"index": 20})
    a = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    b = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    assert len(backend.calls) == 1 and not a.data["cached"] and b.data["cached"]
    assert np.array_equal(a.mask, b.mask) and b.id == "E3"
    reg.run(ctx, "segment", {"target": "body", "view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    assert len(backend.calls) == 2  # another target is another segmentation
    n_views = len(ctx.views)
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [0, 0, 5, 5]})  # air only
    assert ev.data["voxels"] == 0 and not ev.mask.any() and ev.views == [] and len(ctx.views) == n_views
    assert ev.text.startswith("Nothing found for 'lesion' in the prompted region")
    with pytest.raises(ToolError, match=f"{ev.id} found nothing"):
        reg.run(ctx, "measure", {"evidence_id": ev.id})


def test_2d_image(backend):
    xr, disc = small_xray()
    backend.threshold = 500.0
    reg, ctx = default_registry(), context_with(xr)
    ev = reg.run(ctx, "segment", {"target": "lesion"})
    assert backend.calls[0][0] == (1, 240, 300) and backend.calls[0][2] is None
    assert np.array_equal(ev.mask, disc) and ev.data["mode"] == "2d"
    assert ev.measurements["area_mm2"].value == pytest.approx(disc.sum() * 0.25)
    assert ev.data["laterality"] == "left"  # image right = patient left (radiological display)
    assert "the 2-D image" in ctx.views[ev.data["overlay_view_id"]].description


@pytest.mark.parametrize("args, message", [
    ({}, "give a target"),
    ({"target": "pancreas"}, "bad arguments for 'segment' at target"),
    ({"bbox_2d": [0, 0, 10, 10]}, "also give the view_id"),
    ({"target": "lesion", "mode": "2d"}, "mode '2d' segments the slice of a view"),
    ({"target": "lesion", "view_id": "V2", "mode": "2d"}, "V2 is a projection"),
    ({"view_id": "V1", "bbox_2d": [500, 0, 510, 10]}, "lies outside V1"),
    ({"view_id": "V1", "point_2d": [10, 500]}, "point_2d .* lies outside V1"),
    ({"view_id": "V7", "point_2d": [10, 10]}, "unknown view_id 'V7'"),
    ({"target": "lesion", "mode": "4d"}, "bad arguments for 'segment' at mode"),
])
def test_segment_errors(backend, chest, args, message):
    reg, ctx = default_registry(), context_with(chest[0])
    reg.run(ctx, "view", {"index": 20})
    reg.run(ctx, "view", {"mode": "mip"})
    with pytest.raises(ToolError, match=message):
        reg.run(ctx, "segment", args)
    assert len(ctx.evidence) == 2 and not backend.calls


def test_segmentation_error_becomes_tool_error(monkeypatch, chest):
    def refuse(name="classical", **options):
        raise SegmentationError("the sam segmenter needs checkpoint=<path>")

    monkeypatch.setattr(segment_module, "get_segmenter", refuse)
    reg, ctx = default_registry(), context_with(chest[0], segmenter="sam")
    with pytest.raises(ToolError, match="needs checkpoint"):
        reg.run(ctx, "segment", {"target": "lungs"})


@pytest.fixture(scope="module")
def chest_phantom():
    from imaging.phantoms import NoduleSpec, chest_ct

    return chest_ct(seed=1, nodules=[NoduleSpec(diameter_mm=14.0, side="right")])


def test_classical_lungs_and_nodule_on_phantom(chest_phantom):
    ph = chest_phantom
    reg, ctx = default_registry(), context_with(ph.volume)
    for side in ("left", "right"):
        ev = reg.run(ctx, "segment", {"target": f"lung_{side}"})
        assert dice(ev.mask, ph.labels[f"lung_{side}"]) > 0.95
        assert ev.data["laterality"] == side and ev.measurements["volume_ml"].value > 500
    truth = ph.truth["nodules"][0]
    ev = reg.run(ctx, "segment", {"target": "nodule"})
    m = reg.run(ctx, "measure", {"evidence_id": ev.id})
    assert m.data["laterality"] == truth["side"] == "right"
    assert abs(m.measurements["volume_mm3"].value - truth["volume_mm3"]) / truth["volume_mm3"] < 0.1
    assert abs(m.measurements["longest_diameter_mm"].value - truth["diameter_mm"]) <= 2.0  # one 2 mm voxel
    assert np.allclose(m.data["centroid_mm"], truth["center_mm"], atol=2.0)


def test_classical_prompts_from_a_view_on_phantom(chest_phantom):
    ph = chest_phantom
    truth = ph.truth["nodules"][0]
    k, y, x = truth["center_voxel"]
    reg, ctx = default_registry(), context_with(ph.volume)
    reg.run(ctx, "view", {"index": k, "window": "lung"})  # 1 px = 1 voxel (2 mm)
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "point_2d": [x + 0.5, y + 0.5]})
    assert dice(ev.mask, ph.labels[truth["label"]]) > 0.8
    ev = reg.run(ctx, "segment", {"target": "lungs", "view_id": "V1", "mode": "2d"})
    assert set(np.nonzero(ev.mask.any(axis=(1, 2)))[0]) == {k}
    assert dice(ev.mask[k], ph.labels["lungs"][k]) > 0.95
    assert ev.data["components"] == 2 and ev.data["laterality"] == "midline"


def test_classical_box_prompt_on_2d_image():
    xr, disc = small_xray()
    reg, ctx = default_registry(), context_with(xr)
    reg.run(ctx, "view", {})
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [140, 60, 260, 180]})
    assert ev.data["mode"] == "2d" and dice(ev.mask, disc) > 0.9
    m = reg.run(ctx, "measure", {"evidence_id": ev.id})
    assert m.measurements["area_mm2"].value == pytest.approx(np.pi * 20.0**2, rel=0.1)
    assert m.measurements["longest_diameter_mm"].value == pytest.approx(40.0, abs=1.0)
    assert m.data["laterality"] == "left"


@pytest.mark.parametrize("target", ["nodule", "lesion", None])
@pytest.mark.parametrize("offset", [0, 1])
def test_classical_3d_box_prompt_on_one_slice_segments_the_whole_nodule(chest_phantom, target, offset):
    # a box drawn on one axial slice (the nodule's centre or the next) asks for the 3-D object
    # it shows: the whole nodule, not the one slice the box was drawn on
    ph = chest_phantom
    truth = ph.truth["nodules"][0]
    k, y, x = truth["center_voxel"]
    reg, ctx = default_registry(), context_with(ph.volume)
    reg.run(ctx, "view", {"index": k + offset, "window": "lung"})  # 1 px = 1 voxel (2 mm)
    args = {"view_id": "V1", "bbox_2d": [x - 6, y - 6, x + 8, y + 8], **({"target": target} if target else {})}
    ev = reg.run(ctx, "segment", args)
    nodule = ph.labels[truth["label"]]
    assert ev.data["mode"] == "3d" and dice(ev.mask, nodule) > 0.95
    assert len(np.unique(np.nonzero(ev.mask)[0])) == len(np.unique(np.nonzero(nodule)[0]))
    volume = reg.run(ctx, "measure", {"evidence_id": ev.id}).measurements["volume_mm3"].value
    assert abs(volume - truth["volume_mm3"]) / truth["volume_mm3"] < 0.1


def test_classical_3d_box_prompt_on_a_liver_lesion_slice():
    from imaging.phantoms import abdomen_ct

    ph = abdomen_ct(seed=2)
    lesion = ph.labels[[name for name in ph.labels if "lesion" in name][0]]
    slices = np.nonzero(lesion.any(axis=(1, 2)))[0]
    k = int(slices[len(slices) // 2]) + 1
    ys, xs = np.nonzero(lesion[k])
    reg, ctx = default_registry(), context_with(ph.volume)
    reg.run(ctx, "view", {"index": k})
    box = [int(xs.min()) - 3, int(ys.min()) - 3, int(xs.max()) + 4, int(ys.max()) + 4]
    ev = reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": box})
    assert dice(ev.mask, lesion) > 0.9
    assert set(np.nonzero(ev.mask.any(axis=(1, 2)))[0]) >= set(slices[1:-1].tolist())
