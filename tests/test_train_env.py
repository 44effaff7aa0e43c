"""The GRPO environment: tools generated from the registry, run through the loop's episode."""

from __future__ import annotations

import inspect
import json

import pytest
from PIL import Image

from tests.helpers.training import make_env, rollout
from grounding.tools import default_registry
from train.config import ConfigError, EnvConfig
from train.env import build_registry, tool_schemas


def test_tool_methods_are_the_registry_tools(cases):
    env = make_env(cases["syn-0000"])
    registry = default_registry()
    # TRL lists the class's public functions (except reset) as tools
    public = [n for n, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
              if not n.startswith("_") and n != "reset"]
    assert sorted(public) == sorted(registry.names())
    schemas = {s["function"]["name"]: s["function"] for s in tool_schemas(registry)}
    for tool in registry:
        assert schemas[tool.name]["description"] == tool.description
        assert set(schemas[tool.name]["parameters"]["properties"]) == set(tool.parameters["properties"])
        assert schemas[tool.name]["parameters"].get("required", []) == tool.parameters.get("required", [])


def test_segment_returns_text_and_overlay_image_and_keeps_the_board(cases):
    env = make_env(cases["syn-0020"])
    parts = env.segment(target="nodule")
    assert parts[0]["type"] == "text" and parts[0]["text"].startswith("[E1] ")
    images = [p["image"] for p in parts if p["type"] == "image"]
    assert len(images) == 1 and isinstance(images[0], Image.Image)
    assert [e.id for e in env.episode.context.evidence] == ["E1"]
    assert env.episode.context.evidence[0].mask.any()


def test_boxes_are_mapped_from_the_model_frame_to_view_pixels(cases):
    # the model sees every image at half size: a box it draws maps to twice the view pixels
    env = make_env(cases["syn-0020"], frame=lambda w, h: (w // 2, h // 2))
    vw, vh = env.episode.context.views["V1"].size
    mw, mh = vw // 2, vh // 2
    assert env.episode.ledger.model_sizes["V1"] == (mw, mh)
    caption = "".join(p.get("text", "") for p in env.episode.conversation[1]["content"])
    assert f"Image 1 ({mw}x{mh}), view V1" in caption
    env.crop(view_id="V1", bbox_2d=[10, 20, 60, 70])  # inside the first montage panel
    ev = env.episode.context.evidence[-1]
    expected = [10 * vw / mw, 20 * vh / mh, 60 * vw / mw, 70 * vh / mh]
    assert ev.tool == "crop" and ev.arguments["bbox_2d"] == pytest.approx(expected, abs=0.01)


def test_failing_tool_comes_back_as_error_text(cases):
    env = make_env(cases["syn-0000"])
    parts = env.view(index=999)
    assert parts == [{"type": "text", "text": parts[0]["text"]}] and parts[0]["text"].startswith("Error: ")
    parts = env.measure(evidence_id="E7")
    assert "unknown evidence_id 'E7'" in parts[0]["text"]


def test_trace_of_a_rollout_and_reset_starts_fresh(cases):
    env = make_env(cases["syn-0020"])
    completion = rollout(env, [("segment", {"target": "nodule"})], "<answer>yes [E1]</answer>")
    trace = env._trace(completion)
    assert trace.status == "answered" and trace.answer == "yes [E1]" and trace.cited_evidence == ["E1"]
    assert [c.name for c in trace.tool_calls()] == ["segment"]
    env.reset(case=json.dumps(env.case.to_dict()))
    assert env.episode.context.evidence == [] and env._outcome is None


def test_the_models_prose_with_its_calls_reaches_the_verifiers(cases):
    from mmreason.verifiers import split_steps, verify

    env = make_env(cases["syn-0020"])
    completion = rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                         "<answer>yes [E1]</answer>",
                         prose=["I will look for a nodule.", "There is a nodule in the left lung [E1]."])
    trace = env._trace(completion)
    texts = [s.text for s in split_steps(trace) if s.kind == "text"]
    assert texts == ["I will look for a nodule.", "There is a nodule in the left lung [E1]."]
    assert [s.kind for s in split_steps(trace)] == ["text", "tool_call", "text", "tool_call", "answer"]
    measured = trace.evidence_by_id()["E1"].data["laterality"]
    side = [v for v in verify(env.case, trace) if v.step == 2]  # the prose claim is checked against E1
    assert side and side[0].label == ("correct" if measured == "left" else "incorrect"), side[0].reason
    assert env._trace(completion).turns == trace.turns  # merged once


def test_untagged_final_turn_and_tool_budget_spent(cases):
    from train.rewards import outcome_of

    env = make_env(cases["syn-0000"])
    completion = rollout(env, [("segment", {"target": "nodule"})], "thinking about it")
    trace = env._trace(completion)  # the loop takes untagged text as the answer, and flags it
    assert trace.status == "answered" and trace.meta["answer_untagged"] is True
    assert outcome_of(env, completion).answered is False
    env = make_env(cases["syn-0000"])
    completion = rollout(env, [("segment", {"target": "nodule"})], "")[:-1]
    completion.append({"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "segment", "arguments": {"target": "lungs"}}}]})
    assert env._trace(completion).status == "max_turns"  # TRL's iteration bound ended the rollout


def test_registry_subset_and_errors():
    reg = build_registry(EnvConfig(tools=["segment", "measure"], segment_targets=["nodule", "lungs"]))
    assert reg.names() == ["segment", "measure"]
    assert reg.get("segment").parameters["properties"]["target"]["enum"] == ["nodule", "lungs"]
    with pytest.raises(ConfigError, match="unknown tool"):
        build_registry(EnvConfig(tools=["zoom"]))
    with pytest.raises(ConfigError, match="unknown target"):
        build_registry(EnvConfig(segment_targets=["spleenish"]))
