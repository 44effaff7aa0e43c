"""The ``crop`` tool: exact geometry (crops of crops), clamping at borders, montages, MIPs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers.tools import context_with, small_chest, small_xray

from grounding.tool import ToolError
from grounding.tools import default_registry


@pytest.fixture()
def chest_ctx():
    vol, nodule, _ = small_chest()
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"index": 20, "window": "lung"})  # V1: 151x125 px, 1 px = 1 voxel
    return reg, ctx, nodule


def test_crop_box_record_and_view(chest_ctx):
    reg, ctx, _ = chest_ctx
    ev = reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [40, 30, 80, 70], "margin": 0})
    assert ev.id == "E2" and ev.data["view_id"] == "V2" and ev.views == [ctx.views["V2"]]
    assert ev.box["view_id"] == "V1" and ev.box["pixels"] == [40, 30, 80, 70]
    assert ev.box["voxels"] == [[20, 21], [30, 70], [40, 80]]
    mm = ev.box["mm"]
    assert mm["size_mm"] == [32.0, 32.0]
    vol = ctx.volumes["0"]
    assert np.allclose(mm["min_mm"], vol.voxel_to_world([[20, 29.5, 39.5]])[0], atol=1e-3)
    assert np.allclose(mm["max_mm"], vol.voxel_to_world([[20, 69.5, 79.5]])[0], atol=1e-3)
    assert ev.data["shown_pixels"] == pytest.approx([40, 30, 80, 70], abs=1e-6)
    assert "V2: zoomed crop of V1 box [40.0, 30.0, 80.0, 70.0]" in ev.text
    assert "voxels z 20, y 30-69, x 40-79" in ev.text
    crop = ctx.views["V2"]
    assert ev.data["zoom"] == pytest.approx(crop.size[0] / 40)
    # the crop's corner pixels sit exactly on the box corners of the parent
    corners = crop.geometry.pixel_to_voxel([[-0.5, -0.5], [crop.size[0] - 0.5, crop.size[1] - 0.5]])
    assert np.allclose(corners, [[20, 29.5, 39.5], [20, 69.5, 79.5]])


def test_crop_of_crop_is_exact(chest_ctx):
    reg, ctx, _ = chest_ctx
    reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [40, 30, 80, 70], "margin": 0})
    w, h = ctx.views["V2"].size
    ev = reg.run(ctx, "crop", {"view_id": "V2", "bbox_2d": [0, 0, w / 2, h / 2], "margin": 0})
    assert ev.box["voxels"] == [[20, 21], [30, 50], [40, 60]]
    v3 = ctx.views["V3"]
    # every pixel of the crop of a crop maps where the first view says it should
    xy = np.array([[0, 0], [v3.size[0] - 1, v3.size[1] - 1], [3, 7]], float)
    via_v3 = v3.geometry.pixel_to_voxel(xy)
    scale = 20 / v3.size[0]
    via_v1 = ctx.views["V1"].geometry.pixel_to_voxel(np.array([40, 30]) - 0.5 + (xy + 0.5) * scale)
    assert np.allclose(via_v3, via_v1)
    # and the pixels are resampled from the volume, not up-scaled from the parent image
    ev2 = reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [40, 30, 60, 50], "margin": 0})
    v4 = ctx.views[ev2.data["view_id"]]
    assert v4.size == v3.size
    assert np.allclose(v4.geometry.matrix, v3.geometry.matrix)
    assert np.array_equal(np.asarray(v4.image), np.asarray(v3.image))


def test_box_near_border_is_clamped(chest_ctx):
    reg, ctx, _ = chest_ctx
    ev = reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [-20, -10, 30, 40]})
    assert ev.box["pixels"] == [0, 0, 30, 40] and ev.data["clamped"] is True
    assert ev.box["voxels"] == [[20, 21], [0, 40], [0, 30]]
    assert "extended past the 151x125 image and was clamped to [0.0, 0.0, 30.0, 40.0]" in ev.text
    ev = reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [140, 120, 151, 125], "margin": 0.5})
    assert ev.data["clamped"] is False and ev.box["voxels"] == [[20, 21], [120, 125], [140, 151]]
    assert ev.data["shown_pixels"][2:] == pytest.approx([151, 125])  # margin stops at the border


@pytest.mark.parametrize("args, message", [
    ({"view_id": "V1", "bbox_2d": [200, 10, 220, 30]},
     r"lies outside V1, which is 151x125 px: x must be within 0\.\.151 and y within 0\.\.125"),
    ({"view_id": "V1", "bbox_2d": [10, -30, 20, -5]}, "lies outside V1"),
    ({"view_id": "V1", "bbox_2d": [10, 10, 10, 20]}, "zero or negative area"),
    ({"view_id": "V1", "bbox_2d": [30, 10, 20, 20]}, "zero or negative area"),
    ({"view_id": "V9", "bbox_2d": [0, 0, 10, 10]}, "unknown view_id 'V9'; views available: V1"),
    ({"view_id": "V1", "bbox_2d": [0, 0, 10]}, "bad arguments for 'crop' at bbox_2d"),
    ({"view_id": "V1", "bbox_2d": "0,0,10,10"}, "bad arguments for 'crop' at bbox_2d"),
    ({"view_id": "V1", "bbox_2d": [0, 0, "a", 10]}, "bad arguments for 'crop' at bbox_2d/2"),
    ({"view_id": 1, "bbox_2d": [0, 0, 10, 10]}, "bad arguments for 'crop' at view_id"),
    ({"view_id": "V1", "bbox_2d": [0, 0, 10, 10], "margin": 2}, "bad arguments for 'crop' at margin"),
    ({"bbox_2d": [0, 0, 10, 10]}, "'view_id' is a required property"),
])
def test_crop_errors(chest_ctx, args, message):
    reg, ctx, _ = chest_ctx
    with pytest.raises(ToolError, match=message):
        reg.run(ctx, "crop", args)
    assert list(ctx.views) == ["V1"] and len(ctx.evidence) == 1


def test_crop_on_montage_panel_and_on_mip(chest_ctx):
    reg, ctx, _ = chest_ctx
    reg.run(ctx, "view", {"mode": "montage", "count": 4})  # V2: 2x2 panels of 151x125
    geom = ctx.views["V2"].geometry
    tile = geom.tiles[3]
    k = round(tile.geometry.origin[0])
    ev = reg.run(ctx, "crop", {"view_id": "V2", "bbox_2d": [tile.x0 + 10, tile.y0 + 20, tile.x0 + 50, tile.y0 + 60],
                               "margin": 0})
    assert ev.box["voxels"] == [[k, k + 1], [20, 60], [10, 50]]
    assert ev.data["shown_pixels"] == pytest.approx([tile.x0 + 10, tile.y0 + 20, tile.x0 + 50, tile.y0 + 60])
    with pytest.raises(ToolError, match="single montage panel"):
        reg.run(ctx, "crop", {"view_id": "V2", "bbox_2d": [100, 100, 200, 150]})
    reg.run(ctx, "view", {"plane": "coronal", "mode": "mip"})
    mip_id = list(ctx.views)[-1]
    ev = reg.run(ctx, "crop", {"view_id": mip_id, "bbox_2d": [10, 10, 40, 40], "margin": 0})
    assert ev.box["voxels"][1] == [0, 125]  # the projected axis: every depth


def test_crop_2d_image():
    xr, disc = small_xray()
    reg, ctx = default_registry(), context_with(xr)
    reg.run(ctx, "view", {})
    ev = reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [160, 80, 240, 160], "margin": 0})
    assert ev.box["voxels"] == [[0, 1], [80, 160], [160, 240]]
    crop = np.asarray(ctx.views["V2"].image)
    h, w = crop.shape
    assert crop[h // 2, w // 2] > 200 and crop[2, 2] < 60  # the disc in the middle, background at the corner
