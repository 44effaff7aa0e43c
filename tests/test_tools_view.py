"""The ``view`` tool through the registry: planes, modes, positions, windows, 2-D images, errors."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers.tools import context_with, small_chest, small_xray

from grounding.tool import ToolError
from grounding.tools import default_registry
from imaging.geometry import MontageGeometry


@pytest.fixture(scope="module")
def chest():
    return small_chest()[0]


def test_axial_slice_text_geometry_and_pixels(chest):
    reg, ctx = default_registry(), context_with(chest)
    ev = reg.run(ctx, "view", {"plane": "axial", "index": 10, "window": "lung"})
    assert ev.id == "E1" and ev.tool == "view" and ev.arguments == {"plane": "axial", "index": 10, "window": "lung"}
    view = ctx.views["V1"]
    assert ev.views == [view] and view.view_id == "V1"
    z_mm = chest.voxel_to_world([[10, 0, 0]])[0, 2]
    assert ev.text == f"V1: axial slice 10/40 at z={z_mm:+.1f} mm, lung window, 151x125 px, 0.80 mm/px"
    # the rendered pixels are exactly the slice through the window
    lung_lo, lung_hi = -600 - 750, -600 + 750
    expected = np.clip((chest.data[10] - lung_lo) * 255 / (lung_hi - lung_lo), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(view.image), expected)
    assert view.geometry.normal_axis() == 0 and round(view.geometry.origin[0]) == 10


def test_default_is_middle_axial_and_position_mm(chest):
    reg, ctx = default_registry(), context_with(chest)
    assert "axial slice 20/40 at z=+0.0 mm, auto window" in reg.run(ctx, "view", {}).text
    ev = reg.run(ctx, "view", {"plane": "coronal", "position_mm": 8.1})
    # y = +8.1 mm lies nearest row 62 + 10 = 72 (0.8 mm rows centred on 0)
    assert "coronal slice 72/124 at y=+8.0 mm" in ev.text
    assert ctx.views["V2"].geometry.normal_axis() == 1
    ev = reg.run(ctx, "view", {"plane": "sagittal", "index": 0, "window": "bone"})
    assert "sagittal slice 0/150 at x=-60.0 mm, bone window" in ev.text
    # coronal/sagittal views are resampled to square pixels: 41 slices x 2.5 mm -> 128 rows of 0.8 mm
    assert ctx.views["V3"].size == (125, 128)


def test_mip_and_montage(chest):
    reg, ctx = default_registry(), context_with(chest)
    ev = reg.run(ctx, "view", {"plane": "coronal", "mode": "mip"})
    assert ev.text.startswith("V1: coronal maximum-intensity projection through all 125 coronal slices")
    assert ctx.views["V1"].geometry.projection_axis == 1
    ev = reg.run(ctx, "view", {"mode": "montage", "count": 4, "window": "lung"})
    geom = ctx.views["V2"].geometry
    assert isinstance(geom, MontageGeometry) and len(geom.tiles) == 4
    assert ev.text.startswith("V2: montage of 4 axial slices")


def test_2d_image_has_one_view():
    xr, _ = small_xray()
    reg, ctx = default_registry(), context_with(xr)
    ev = reg.run(ctx, "view", {})
    assert ev.text == "V1: 2-D XR image, auto window, 300x240 px, 0.50 mm/px"
    assert reg.run(ctx, "view", {"index": 0}).text.startswith("V2: 2-D XR image")
    for args in ({"plane": "coronal"}, {"mode": "mip"}, {"index": 1}, {"position_mm": 0.0}):
        with pytest.raises(ToolError, match="2-D .*only plane 'axial', mode 'slice', index 0"):
            reg.run(ctx, "view", args)
    with pytest.raises(ToolError, match="CT preset .* use window 'auto'"):
        reg.run(ctx, "view", {"window": "lung"})
    assert len(ctx.evidence) == 2 and len(ctx.views) == 2  # failed calls add nothing


@pytest.mark.parametrize("args, message", [
    ({"index": 41}, r"axial index 41 is outside the volume: valid indices are 0\.\.40"),
    ({"plane": "coronal", "position_mm": 80.0}, r"positions \(y\) run from -49\.6 to \+49\.6 mm"),
    ({"index": 3, "position_mm": 1.0}, "either index or position_mm"),
    ({"mode": "mip", "index": 3}, "does not take index"),
    ({"volume": "prior"}, "unknown volume 'prior'; volumes available: 0"),
    ({"plane": "oblique"}, "bad arguments for 'view' at plane"),
    ({"index": "ten"}, "bad arguments for 'view' at index"),
    ({"index": -1}, "bad arguments for 'view' at index"),
    ({"zoom": 2}, "Additional properties"),
])
def test_view_errors(chest, args, message):
    reg, ctx = default_registry(), context_with(chest)
    with pytest.raises(ToolError, match=message):
        reg.run(ctx, "view", args)
    assert not ctx.views and not ctx.evidence
