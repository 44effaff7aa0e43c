"""``mmreason mcp`` driven by the official ``mcp`` client: over stdio (``python -m mmreason mcp`` spawned)
and over streamable HTTP on 127.0.0.1. A small chest CT phantom is opened, the tools listed and
called; images come back as MCP image content with their geometry, evidence ids stay stable."""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from PIL import Image

import mcp
from imaging.phantoms import NoduleSpec, chest_ct

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    chest_ct(seed=1, nodules=[NoduleSpec(diameter_mm=12.0, side="right")]).save(folder)
    return folder / "ct.nii.gz"


def _texts(result) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def _images(result) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(c.data))) for c in result.content if c.type == "image"]


async def _session(client, chest: Path) -> dict:
    """What the tests check, gathered over one client session."""
    tools = await client.list_tools()
    opened = await client.call_tool("open_study", {"path": str(chest)})
    view = await client.call_tool("view", {"plane": "axial", "window": "lung"})
    seg = await client.call_tool("segment", {"target": "lung_right"})
    measure = await client.call_tool("measure", {"evidence_id": "E2"})
    bad = await client.call_tool("crop", {"view_id": "V99", "bbox_2d": [0, 0, 10, 10]})
    no_study = await client.call_tool("view", {"study_id": "S9"})
    return {"tools": tools, "opened": opened, "view": view, "seg": seg, "measure": measure, "bad": bad,
            "no_study": no_study}


def _check(got: dict) -> None:
    names = [t.name for t in got["tools"].tools]
    assert names == ["open_study", "view", "crop", "segment", "measure"]
    crop = next(t for t in got["tools"].tools if t.name == "crop")
    assert "bbox_2d" in crop.input_schema["properties"] and "study_id" in crop.input_schema["properties"]

    opened = got["opened"]
    assert not opened.is_error
    head = _texts(opened)[0]
    assert head.startswith("Opened study S1.") and "CT, 3-D 80x170x170 voxels (z, y, x)" in head and "ct.nii" not in head
    images = _images(opened)
    assert len(images) == 2 and all(i.size[0] > 50 for i in images)  # axial montage and coronal slice
    captions = [t for t in _texts(opened) if t.startswith("View ")]
    assert [c.split()[1] for c in captions] == ["V1", "V2"]
    geometry = json.loads(captions[0].split("Geometry: ", 1)[1])
    assert geometry  # the pixel -> voxel map a client needs to read boxes

    view = got["view"]
    assert not view.is_error and _texts(view)[0].startswith("study S1\n[E1]") and len(_images(view)) == 1
    assert _texts(view)[1].startswith("View V3 ")
    seg = got["seg"]
    assert not seg.is_error and "[E2] Segmented 'lung_right'" in _texts(seg)[0] and "V4" in _texts(seg)[1]
    measure = got["measure"]
    assert not measure.is_error and "[E3]" in _texts(measure)[0]
    result = json.loads(_texts(measure)[0].split("Result: ", 1)[1])
    assert result["evidence_id"] == "E3" and result["measurements"]["volume_ml"][1] == "mL"
    assert "Measured E2 (lung_right)" in _texts(measure)[0]  # the evidence id of an earlier call still resolves
    assert got["bad"].is_error and "unknown view_id 'V99'" in _texts(got["bad"])[0]
    assert got["no_study"].is_error and "unknown study_id 'S9'" in _texts(got["no_study"])[0]


def test_stdio_server_spawned_with_python_m_mmreason_mcp(chest):
    params = mcp.StdioServerParameters(command=sys.executable, args=["-m", "mmreason", "mcp"], cwd=str(REPO),
                                       env={**os.environ, "PYTHONPATH": str(REPO)})

    async def main() -> dict:
        async with mcp.Client(params, read_timeout_seconds=60) as client:
            return await _session(client, chest)

    _check(anyio.run(main))


def test_streamable_http_server(chest):
    process = subprocess.Popen([sys.executable, "-m", "mmreason", "mcp", "--transport", "http", "--port", "0"],
                               cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("MCP (streamable HTTP) at http://127.0.0.1:"), process.stderr.read()
        url = line.split(" at ")[1].strip()

        async def main() -> dict:
            async with mcp.Client(url, read_timeout_seconds=60) as client:
                return await _session(client, chest)

        _check(anyio.run(main))
    finally:
        process.terminate()
        process.wait(timeout=10)
