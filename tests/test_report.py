"""The HTML report and its renderer (`mmreason.render`, shared with the web app): content,
overlays and calipers drawn from geometry, orientation markers, scale bar, human units, status,
quality and assumed-fact warnings, no identifiers; renders in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grounding.tools import default_registry
from imaging.locate import mask_footprint as mask_on_view
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.views import montage_view, slice_view
from mmreason.backends.rules import RulesBackend
from mmreason.loop import run_episode
from mmreason import render
from mmreason.render import annotate, orientation_markers, scale_bar_mm
from mmreason.report import render_html, write_report
from mmreason.trace import Trace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(seed=1, spacing=(3.0, 2.0, 2.0), nodules=[NoduleSpec(diameter_mm=14.0, side="right")])


@pytest.fixture(scope="module")
def trace(phantom):
    vol = phantom.volume
    vol.name = "DOE^JANE_12345"  # a name that must never reach the report
    return run_episode(vol, "Is there a lung nodule? Where is it and how large?", RulesBackend(),
                       registry=default_registry())


def test_mask_maps_to_view_pixels_through_geometry(phantom):
    vol = phantom.volume
    truth = phantom.truth["nodules"][0]
    mask = phantom.labels["nodule_1"]
    z, y, x = truth["center_voxel"]
    view = slice_view(vol, "axial", z)
    footprint = mask_on_view(mask, view.geometry)
    assert footprint.shape == (view.size[1], view.size[0])
    ys, xs = np.nonzero(footprint)
    cx, cy = view.geometry.voxel_to_pixel([[z, y, x]])[0]
    assert abs(xs.mean() - cx) < 1.5 and abs(ys.mean() - cy) < 1.5
    # on a montage every panel maps through its own geometry: only panels near z see the nodule
    montage = montage_view(vol, "axial", indices=[z - 20, z, z + 20])
    per_tile = [mask_on_view(mask, t.geometry).sum() for t in montage.geometry.tiles]
    assert per_tile[0] == 0 and per_tile[1] > 0 and per_tile[2] == 0
    assert mask_on_view(mask, montage.geometry).sum() == per_tile[1]
    big = annotate(view, is_2d=False, mask=mask, boxes=[[0, 0, 10, 10]])
    scale = big.width / view.size[0]
    assert max(big.size) == render.DISPLAY_SIDE  # enlarged to be read, geometry kept
    rgb = np.asarray(big).astype(int)
    redness = rgb[..., 0] - rgb[..., 1]
    # the contour and fill sit on the nodule's pixels, scaled
    near = redness[round((ys.mean() + 0.5) * scale) - 3:round((ys.mean() + 0.5) * scale) + 4,
                   round((xs.mean() + 0.5) * scale) - 3:round((xs.mean() + 0.5) * scale) + 4]
    assert near.mean() > 40 and redness[:, big.width // 2 + 40:].max() < 40
    assert tuple(rgb[0, 5]) == render.BOX_RGB  # the box outline, along its top edge


def test_orientation_markers_and_scale_bar_follow_the_geometry(phantom):
    vol = phantom.volume
    # canonical LPS grid shown radiologically: patient right on the image left, anterior on top
    assert orientation_markers(slice_view(vol, "axial").geometry, False) == {
        "left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert orientation_markers(slice_view(vol, "coronal").geometry, False) == {
        "left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert orientation_markers(slice_view(vol, "sagittal").geometry, False) == {
        "left": "A", "right": "P", "top": "S", "bottom": "I"}
    # a 2-D image: its display layout, left/right only (no axial A/P words for a radiograph)
    flat = slice_view(vol, "axial").geometry
    assert orientation_markers(flat, True) == {"left": "R", "right": "L"}
    assert scale_bar_mm(0.8, 512) == 50 and scale_bar_mm(0.1, 512) == 10 and scale_bar_mm(2.0, 300) == 100


def test_human_units_and_status(trace):
    assert render.human_value(25627.0, "mm2") == "256.3 cm2" and render.human_value(42.0, "mm2") == "42.0 mm2"
    assert render.human_value(870.4, "mm3") == "870 mm3" and render.human_value(870400.0, "mm3") == "870 mL"
    assert render.human_value(11.200000166893005, "mm") == "11.2 mm" and render.human_value(-84.6, "HU") == "-85 HU"
    t = Trace.from_dict(trace.to_dict())
    assert render.trace_status(t) == "answered"
    t.meta["answer_untagged"] = True
    assert render.trace_status(t) == "untagged" and "badge untagged" in render_html(t)
    t.status = "abstained"
    assert render.trace_status(t) == "declined" and "badge declined" in render_html(t)
    t.status, t.meta["error"] = "error", "Traceback\nValueError: boom"
    html_text = render_html(t)
    assert render.trace_status(t) == "failed" and "badge failed" in html_text and "a tool failed: ValueError: boom" in html_text


def test_report_content(trace, tmp_path):
    html_text = render_html(trace)
    text_only = re.sub(r"data:image/png;base64,[^\"]+", "", html_text)
    assert "DOE" not in text_only and "12345" not in text_only and "JANE" not in trace.to_dict(False).__repr__()
    assert html_text.index(trace.question) < html_text.index("Reasoning, step by step")
    assert trace.answer.split(" [")[0][:40] in html_text
    for ev in trace.evidence:
        assert ev.id in html_text
    # numbers once each, in human units, with quality; no JSON dumps, float noise or "seed None"
    assert "Result: {" not in text_only and "seed None" not in text_only and not re.search(r"\d\.\d+e[+-]\d", text_only)
    measurements = text_only[text_only.index("<h2>Measurements"):text_only.index("<h2>Reasoning")]
    assert measurements.count(">volume<") == 1 and " mL<" in measurements and "mm3" not in measurements
    assert "longest diameter" in measurements and "badge ok" in measurements
    assert re.search(r"<td class='num'>\d+\.\d mm x \d+\.\d mm perpendicular", measurements)
    assert not re.search(r"\d\.\d{5,}", " ".join(t.text for t in trace.turns))  # what the model read, too
    assert "E1 quality" in text_only  # each evidence's quality level beside it
    assert "calipers on V3" in text_only  # the measured diameters drawn on the overlay they measure
    assert "Assumed, not read from the file" not in text_only  # a phantom's geometry is given
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html_text)
    # 2 initial views + segment overlay + mask on montage + measure calipers + crop + crop box on overlay
    assert len(images) >= 7
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    path = write_report(trace, tmp_path / "sub" / "report.html")
    assert path.read_text(encoding="utf-8") == html_text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(trace, tmp_path):
    path = write_report(trace, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           f"file://{path}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (2000, 1200)
    # not blank: text and images were painted (many distinct colours, the red mask overlay among them)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    red = (image[..., 0] > 200) & (image[..., 1] < 90) & (image[..., 2] < 90)
    assert red.sum() > 20


@pytest.mark.skipif(not (EXAMPLES / "chest_xray.png").exists(), reason="bundled example not present")
def test_radiograph_report_warns_draws_ctr_and_speaks_2d():
    trace = run_episode(EXAMPLES / "chest_xray.png", "What is the cardiothoracic ratio?", RulesBackend(),
                        registry=default_registry())
    text_only = re.sub(r"data:image/png;base64,[^\"]+", "", render_html(trace))
    # a PNG has no spacing nor patient axes: said once at the top, and on every image's scale bar
    warn = text_only[text_only.index("class='warn'"):text_only.index("</div>", text_only.index("class='warn'"))]
    assert "spacing 1 x 1 x 1 mm was assumed" in warn and "orientation LPS was assumed" in warn
    # the ratio is a measurement with its calipers, not only prose
    ctr = render.cardiothoracic(trace)
    assert ctr is not None and "cardiothoracic ratio" in text_only and f"{ctr.ratio:.2f} (" in text_only
    # the widths rest on the assumed spacing; their ratio does not (both scale with it)
    assert any("spacing" in r for r in ctr.heart.quality.reasons) and ctr.heart.quality.level != "ok"
    assert not any("spacing" in r for r in ctr.reasons)
    figure = render.ctr_figure(trace, render.views_by_id(trace))
    rgb = np.asarray(figure.image).astype(int)
    yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 180) & (rgb[..., 2] < 120)
    green = (rgb[..., 1] > 180) & (rgb[..., 0] < 140) & (rgb[..., 2] < 160)
    assert yellow.sum() > 100 and green.sum() > 100
    # the thoracic caliper spans the measured width: 240 mm at 1 mm/px, enlarged
    cols = np.flatnonzero(green.sum(axis=0) >= 1)
    scale = figure.image.width / 340
    assert (cols.max() - cols.min()) / scale == pytest.approx(ctr.thorax_mm, abs=8)
    # words fit a 2-D input: no axial plane, slice or LPS axes in what the tools said
    measure_text = " ".join(e.text for e in trace.evidence if e.tool == "measure")
    assert "axial" not in measure_text and "slice" not in measure_text and "LPS" not in measure_text
    # a PNG's orientation is assumed: its side is withheld, never "at the midline"
    text = trace.evidence[0].text
    assert "at the midline" not in text and ("both sides" in text or "left/right not stated" in text)


def test_overlay_window_and_prompt_grid_match_the_rest(trace):
    overlay = trace.evidence[0].views[0]
    shown = {d["window"] for d in trace.meta["views"]}
    assert shown == {"lung"} and overlay.window == "lung"
    assert re.search(r"3-D \d+x\d+x\d+ voxels \(z, y, x\)", trace.turns[1].text)


def test_calipers_land_on_the_plane_of_the_measurement(phantom):
    from grounding.evidence import Evidence
    from grounding.tools.measure import measurements_of
    from grounding.measurements import measure_region

    vol = phantom.volume
    result = measure_region(vol, phantom.labels["nodule_1"])
    ev = Evidence("E2", "measure", {}, "", measurements=measurements_of(result), data=result.as_dict())
    k = result.diameter_slice
    single = render.calipers_of(ev, slice_view(vol, "axial", k))
    assert [c.label for c in single] == [f"{result.longest_diameter_mm:.1f} mm", f"{result.width_mm:.1f} mm"]
    (x1, y1), (x2, y2) = single[0].p1, single[0].p2
    assert np.hypot(x2 - x1, y2 - y1) * vol.spacing[2] == pytest.approx(result.longest_diameter_mm, rel=0.02)
    assert render.calipers_of(ev, slice_view(vol, "axial", k + 5)) == []  # another plane: nothing to draw
    montage = montage_view(vol, "axial", indices=[k - 6, k, k + 6])
    on_montage = render.calipers_of(ev, montage)
    tile = montage.geometry.tiles[1]  # the panel of slice k, offset in the montage
    assert len(on_montage) == 2 and tile.x0 <= on_montage[0].p1[0] < tile.x0 + tile.geometry.width
