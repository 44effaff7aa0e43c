"""The HTML report: content, overlays drawn from geometry, no identifiers, renders in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from grounding.tools import default_registry
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.views import montage_view, slice_view
from mmreason.backends.rules import RulesBackend
from mmreason.loop import run_episode
from mmreason.report import draw_overlay, mask_on_view, render_html, write_report

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
    rgb = np.asarray(draw_overlay(view, mask=mask, boxes=[[0, 0, 10, 10]]))
    assert tuple(rgb[ys[0], xs[0]]) != tuple(np.asarray(view.image.convert("RGB"))[ys[0], xs[0]])
    assert tuple(rgb[0, 0]) == (40, 200, 255)  # the box outline


def test_report_content(trace, tmp_path):
    html_text = render_html(trace)
    text_only = re.sub(r"data:image/png;base64,[^\"]+", "", html_text)
    assert "DOE" not in text_only and "12345" not in text_only and "JANE" not in trace.to_dict(False).__repr__()
    assert html_text.index(trace.question) < html_text.index("Reasoning, step by step")
    assert trace.answer.split(" [")[0][:40] in html_text
    for ev in trace.evidence:
        assert ev.id in html_text
    assert "longest_diameter_mm" in html_text and ">mm<" in html_text and "mm3" in html_text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html_text)
    # 2 initial views + segment overlay + mask on montage + measure (none) + crop + crop box on overlay
    assert len(images) >= 6
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
