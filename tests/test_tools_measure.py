"""The ``measure`` tool: segment masks and box regions, mm on any spacing, laterality, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from tests.helpers.tools import RecordingSegmenter, context_with, small_chest, small_xray, world_grid

import grounding.tools.segment as segment_module
from grounding.measurements import measure_region
from grounding.tool import ToolError
from grounding.tools import default_registry
from imaging.volume import Volume


@pytest.fixture()
def backend(monkeypatch):
    seg = RecordingSegmenter()
    monkeypatch.setattr(segment_module, "get_segmenter", lambda name="classical", **options: seg)
    return seg


def sphere_ct(spacing, radius_mm=15.0, center_mm=(0.0, 0.0, 0.0), fov_mm=(90.0, 100.0, 120.0)):
    shape = tuple(int(round(f / s)) | 1 for f, s in zip(fov_mm, spacing))
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(shape[::-1], spacing[::-1]))
    vol = Volume.from_array(np.full(shape, -1000.0, np.float32), spacing=spacing, origin=origin, modality="CT")
    world = world_grid(vol)
    body = (world[..., 0] / 55.0) ** 2 + (world[..., 1] / 45.0) ** 2 <= 1
    vol.data[body] = -100.0  # fat: below the recording backend's threshold, above the body threshold
    sphere = np.linalg.norm(world - np.asarray(center_mm), axis=-1) <= radius_mm
    vol.data[sphere] = 60.0
    return vol, sphere


def segment_and_measure(spacing, center_mm=(0.0, 0.0, 0.0)):
    vol, sphere = sphere_ct(spacing, center_mm=center_mm)
    reg, ctx = default_registry(), context_with(vol)
    seg = reg.run(ctx, "segment", {"target": "lesion"})
    assert np.array_equal(seg.mask, sphere)
    return reg.run(ctx, "measure", {"evidence_id": seg.id}), seg, vol


@pytest.mark.usefixtures("backend")
def test_measure_segment_evidence_sphere():
    ev, seg, vol = segment_and_measure((5.0, 0.7, 0.7))
    assert ev.id == "E2" and ev.tool == "measure" and ev.arguments == {"evidence_id": "E1"}
    m = ev.measurements
    true_v = 4 / 3 * math.pi * 15.0**3
    assert m["volume_mm3"].unit == "mm3" and abs(m["volume_mm3"].value - true_v) / true_v < 0.05
    assert m["volume_ml"].value == pytest.approx(m["volume_mm3"].value / 1000) and m["volume_ml"].unit == "mL"
    assert "area_mm2" not in m
    assert abs(m["longest_diameter_mm"].value - 30.0) <= 0.7 + 1e-6
    assert abs(m["perpendicular_diameter_mm"].value - 30.0) <= 0.7 + 1e-6
    assert m["mean_intensity"].value == pytest.approx(60.0) and m["mean_intensity"].unit == "HU"
    assert [m[f"centroid_{a}_mm"].value for a in "xyz"] == pytest.approx([0, 0, 0], abs=0.05)
    assert ev.data["spacing_mm"] == [5.0, 0.7, 0.7] and ev.data["laterality"] == "midline"
    assert ev.data["midline_source"] == "body" and ev.data["source"] == "E1"
    assert ev.text.startswith("Measured E1 (lesion): volume ")
    assert "spacing 5 x 0.7 x 0.7 mm (z, y, x)" in ev.text
    # the tool reports exactly what the shared measurement function computes
    direct = measure_region(vol, seg.mask)
    assert m["volume_mm3"].value == direct.volume_mm3
    assert m["longest_diameter_mm"].value == direct.longest_diameter_mm


@pytest.mark.usefixtures("backend")
def test_measure_and_segment_evidence_carry_a_summary_without_episode_ids():
    """Standalone callers (``mmreason segment``) print ``summary``; they used to cut the tool's
    text at its first ": " and strip the overlay's view id with a pattern."""
    from grounding.evidence import Evidence

    ev, seg, _ = segment_and_measure((5.0, 0.7, 0.7))
    assert ev.text == f"Measured E1 (lesion): {ev.summary}" and ev.summary.startswith("volume ")
    assert seg.summary.startswith("Segmented 'lesion' (3D,") and "connected component(s)" in seg.summary
    assert re.search(r"Overlay V\d+:", seg.text) and "Overlay" not in seg.summary
    for text in (ev.summary, seg.summary):
        assert not re.search(r"\b[EV]\d+\b", text), text
    assert Evidence.from_dict(ev.to_dict(False)).summary == ev.summary


@pytest.mark.usefixtures("backend")
def test_same_mm_on_isotropic_and_anisotropic_grids():
    center = (-12.4, 6.1, 0.0)
    iso, *_ = segment_and_measure((1.0, 1.0, 1.0), center)
    aniso, *_ = segment_and_measure((5.0, 0.7, 0.7), center)
    for name in ("longest_diameter_mm", "perpendicular_diameter_mm"):
        assert aniso.measurements[name].value == pytest.approx(iso.measurements[name].value, abs=1.0)
    assert aniso.measurements["volume_mm3"].value == pytest.approx(iso.measurements["volume_mm3"].value, rel=0.04)
    for a in "xyz":
        key = f"centroid_{a}_mm"
        assert aniso.measurements[key].value == pytest.approx(iso.measurements[key].value, abs=0.5)
    assert iso.data["laterality"] == aniso.data["laterality"] == "right"


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("x_mm, side", [(-30.0, "right"), (30.0, "left")])
def test_laterality_both_sides(x_mm, side):
    ev, *_ = segment_and_measure((2.0, 1.0, 1.0), (x_mm, 0.0, 0.0))
    assert ev.data["laterality"] == side and f"on the patient's {side}" in ev.text
    assert ev.data["fraction_left"] == (1.0 if side == "left" else 0.0)


def test_measure_box_on_axial_view():
    vol, _, _ = small_chest()
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"index": 20})
    ev = reg.run(ctx, "measure", {"view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    region = vol.data[20, 50:75, 25:51]
    assert ev.box["voxels"] == [[20, 21], [50, 75], [25, 51]] and ev.box["view_id"] == "V1"
    assert ev.measurements["area_mm2"].value == pytest.approx(26 * 25 * 0.64)
    assert "volume_mm3" not in ev.measurements
    assert ev.measurements["mean_intensity"].value == pytest.approx(float(region.mean()), rel=1e-5)
    assert ev.measurements["min_intensity"].value == -850.0 and ev.measurements["max_intensity"].value == 40.0
    assert ev.measurements["std_intensity"].value == pytest.approx(float(region.std()), rel=1e-4)
    assert ev.data["laterality"] == "right" and ev.data["diameter_plane"] == "axial"
    assert ev.text.startswith("Measured box [25.0, 50.0, 51.0, 75.0] on V1: area 416.0 mm2")


def test_measure_box_on_coronal_crop_and_2d_image():
    vol, _, _ = small_chest()
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"plane": "coronal", "index": 62})
    reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [20, 30, 60, 90], "margin": 0})
    w, h = ctx.views["V2"].size
    ev = reg.run(ctx, "measure", {"view_id": "V2", "bbox_2d": [0, 0, w, h]})
    assert ev.box["voxels"][1] == [62, 63] and ev.data["diameter_plane"] == "coronal"
    assert ev.data["dims"] == 2 and ev.measurements["area_mm2"].unit == "mm2"
    xr, disc = small_xray()
    reg, ctx = default_registry(), context_with(xr)
    reg.run(ctx, "view", {})
    ev = reg.run(ctx, "measure", {"view_id": "V1", "bbox_2d": [160, 80, 240, 160]})
    assert ev.measurements["area_mm2"].value == pytest.approx(80 * 80 * 0.25)
    assert ev.measurements["mean_intensity"].unit == "a.u."
    assert ev.data["midline_source"] == "volume_center" and ev.data["laterality"] == "left"


@pytest.mark.parametrize("args, message", [
    ({"evidence_id": "E9"}, "unknown evidence_id 'E9'; evidence with a mask: none yet"),
    ({"evidence_id": "E1"}, r"E1 \(view\) has no mask to measure"),
    ({"evidence_id": "E1", "view_id": "V1"}, "either evidence_id, or view_id with bbox_2d, not both"),
    ({}, "give evidence_id"),
    ({"view_id": "V1"}, "give evidence_id"),
    ({"view_id": "V2", "bbox_2d": [0, 0, 10, 10]}, "V2 is a projection"),
    ({"view_id": "V1", "bbox_2d": [0, 0, 0, 10]}, "zero or negative area"),
    ({"view_id": "V1", "bbox_2d": [300, 300, 310, 310]}, "lies outside V1"),
    ({"evidence_id": 1}, "bad arguments for 'measure' at evidence_id"),
])
def test_measure_errors(args, message):
    reg, ctx = default_registry(), context_with(small_chest()[0])
    reg.run(ctx, "view", {"index": 20})
    reg.run(ctx, "view", {"mode": "mip"})
    with pytest.raises(ToolError, match=message):
        reg.run(ctx, "measure", args)
    assert len(ctx.evidence) == 2


def test_interior_intensity_leaves_out_the_edge_layer():
    """A 5-voxel cube whose outer layer averages 60 HU tissue with -1000 HU air (partial volume):
    the interior (3 x 3 x 3) is the tissue alone; a region one voxel thick has no interior."""
    from grounding.measurements import interior_intensity

    vol = Volume.from_array(np.full((9, 9, 9), -1000.0, np.float32), spacing=(5.0, 1.0, 1.0), modality="CT")
    mask = np.zeros(vol.shape, bool)
    mask[2:7, 2:7, 2:7] = True
    vol.data[mask] = -470.0
    vol.data[3:6, 3:6, 3:6] = 60.0
    stats, n = interior_intensity(vol, mask)
    assert n == 27 and stats["mean"] == pytest.approx(60.0) and stats["std"] == pytest.approx(0.0)
    sheet = np.zeros(vol.shape, bool)
    sheet[4, 2:7, 2:7] = True
    assert interior_intensity(vol, sheet)[1] == 0
    # in the plane of a 2-D region only: the same sheet measured as an axial region has a 3 x 3 interior
    assert interior_intensity(vol, sheet, plane_axis=0)[1] == 9


def test_measure_reports_the_interior_when_asked():
    vol = Volume.from_array(np.full((9, 9, 9), -1000.0, np.float32), spacing=(5.0, 1.0, 1.0), modality="CT")
    mask = np.zeros(vol.shape, bool)
    mask[2:7, 2:7, 2:7] = True
    vol.data[mask] = -470.0
    vol.data[3:6, 3:6, 3:6] = 60.0
    reg, ctx = default_registry(), context_with(vol)
    from grounding.evidence import Evidence

    ctx.add_evidence(Evidence(id="", tool="segment", arguments={}, text="", mask=mask, mask_volume="0",
                              data={"target": "lesion", "mode": "3d"}))
    plain = reg.run(ctx, "measure", {"evidence_id": "E1"})
    assert "interior_mean_intensity" not in plain.measurements and "interior_voxels" not in plain.data
    ev = reg.run(ctx, "measure", {"evidence_id": "E1", "interior": True})
    assert ev.measurements["interior_mean_intensity"].value == pytest.approx(60.0)
    assert ev.measurements["interior_mean_intensity"].unit == "HU" and ev.data["interior_voxels"] == 27
    assert ev.measurements["mean_intensity"].value < -200  # the whole mask, edge layer included
    assert "Interior (27 voxels clear of the edge): intensity mean 60.0 +/- 0.0 HU." in ev.text
