"""The default registry: specs, TRL-style callables (checked with transformers' own schema reader),
and Evidence JSON round trips including masks and views."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.helpers.tools import RecordingSegmenter, context_with, small_chest
from transformers.utils import get_json_schema

import grounding.tools.segment as segment_module
from grounding.evidence import Evidence
from grounding.segmenters.base import TARGETS
from grounding.tools import default_registry


def test_names_and_specs():
    reg = default_registry()
    assert reg.names() == ["view", "crop", "segment", "measure"]
    for spec in reg.specs():
        fn = spec["function"]
        assert spec["type"] == "function" and len(fn["description"]) > 80
        params = fn["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        for name, prop in params["properties"].items():
            assert prop.get("description"), f"{fn['name']}.{name} has no description"
    seg = reg.get("segment").parameters["properties"]
    assert seg["target"]["enum"] == list(TARGETS)
    assert all(f"{k}: {v}" in reg.get("segment").description for k, v in TARGETS.items())
    assert reg.get("crop").parameters["required"] == ["view_id", "bbox_2d"]
    assert reg.get("crop").parameters["properties"]["bbox_2d"]["minItems"] == 4
    restricted = default_registry({"lungs": "both lungs"})
    assert restricted.get("segment").parameters["properties"]["target"]["enum"] == ["lungs"]


@pytest.mark.parametrize("name", ["view", "crop", "segment", "measure"])
def test_callable_schema_matches_tool_schema(name):
    tool = default_registry().get(name)
    got = get_json_schema(tool.as_callable(lambda: None))["function"]
    assert got["name"] == name and got["description"] == tool.description
    want = tool.parameters
    assert sorted(got["parameters"].get("required", [])) == sorted(want["required"])
    assert list(got["parameters"]["properties"]) == list(want["properties"])
    for pname, p in want["properties"].items():
        g = got["parameters"]["properties"][pname]
        assert g["type"] == p["type"], pname
        assert g["description"] == p["description"], pname
        assert g.get("enum") == p.get("enum"), pname
        if p["type"] == "array":
            assert g["items"] == p["items"], pname
        assert g.get("nullable", False) == (pname not in want["required"]), pname


def test_callables_run_tools_and_return_errors_as_text(monkeypatch):
    monkeypatch.setattr(segment_module, "get_segmenter", lambda name="classical", **o: RecordingSegmenter())
    vol, _, _ = small_chest()
    ctx = context_with(vol)
    fns = {f.__name__: f for f in default_registry().callables(lambda: ctx)}
    assert list(fns) == ["view", "crop", "segment", "measure"]
    assert fns["view"](plane="axial", index=20).startswith("[E1] V1: axial slice 20/40")
    assert fns["crop"](view_id="V1", bbox_2d=[25, 50, 51, 75]).startswith("[E2] V2: zoomed crop of V1")
    out = fns["crop"](view_id="V1", bbox_2d=[500, 0, 510, 10])
    assert out.startswith("Error: bbox_2d [500, 0, 510, 10] lies outside V1") and len(ctx.evidence) == 2
    assert fns["segment"](target="lesion", view_id="V1", bbox_2d=[25, 50, 51, 75]).startswith("[E3] Segmented")
    assert fns["measure"](evidence_id="E3").startswith("[E4] Measured E3 (lesion)")
    assert fns["measure"](evidence_id="E1").startswith("Error: E1 (view) has no mask")


def test_evidence_json_round_trip_with_mask_and_views(monkeypatch):
    monkeypatch.setattr(segment_module, "get_segmenter", lambda name="classical", **o: RecordingSegmenter())
    vol, _, _ = small_chest()
    reg, ctx = default_registry(), context_with(vol)
    reg.run(ctx, "view", {"index": 20, "window": "lung"})
    reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    reg.run(ctx, "segment", {"target": "lesion", "view_id": "V1", "bbox_2d": [25, 50, 51, 75]})
    reg.run(ctx, "measure", {"evidence_id": "E3"})
    for ev in ctx.evidence:
        back = Evidence.from_dict(json.loads(json.dumps(ev.to_dict())))
        assert back.to_dict() == ev.to_dict()
        fields = ("id", "tool", "arguments", "text", "box")
        assert [getattr(back, f) for f in fields] == [getattr(ev, f) for f in fields]
        for a, b in zip(ev.views, back.views):
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.geometry == b.geometry
    seg = Evidence.from_dict(json.loads(json.dumps(ctx.evidence[2].to_dict())))
    assert seg.mask.dtype == bool and np.array_equal(seg.mask, ctx.evidence[2].mask) and seg.mask_volume == "0"
    meas = Evidence.from_dict(json.loads(json.dumps(ctx.evidence[3].to_dict())))
    assert meas.measurements == ctx.evidence[3].measurements
    assert meas.data["spacing_mm"] == [2.5, 0.8, 0.8]  # JSON keeps the spacing used
