"""The reasoning loop with scripted model outputs: every tool, coordinates, errors, dedupe, bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grounding.tools import default_registry
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.volume import Volume
from mmreason.loop import EpisodeRequest, LoopConfig, LoopError, initial_views, run_episode, run_episodes
from mmreason.trace import Trace


class ScriptedBackend:
    """Returns predetermined turns; the script is chosen by the question, the turn by the history."""

    name = "scripted"
    model_id = "scripted-test"
    native_tools = False

    def __init__(self, scripts: dict[str, list[str]] | list[str], scale: float = 1.0) -> None:
        self.scripts = scripts if isinstance(scripts, dict) else {"*": scripts}
        self.scale = scale
        self.batches: list[int] = []
        self.seen: list[list[dict]] = []

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return round(width * self.scale), round(height * self.scale)

    def generate(self, conversations, *, tools=None, max_new_tokens=512, temperature=0.0, seed=None,
                 stop=("</tool_call>", "</answer>")):
        self.batches.append(len(conversations))
        self.seen = conversations
        out = []
        for conv in conversations:
            user = "".join(p.get("text", "") for p in conv[1]["content"])
            script = next((s for q, s in self.scripts.items() if q in user), self.scripts.get("*"))
            turn = sum(m["role"] == "assistant" for m in conv)
            out.append(script[min(turn, len(script) - 1)])
        return out


def call(name: str, **arguments) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


@pytest.fixture(scope="module")
def chest() -> Volume:
    return chest_ct(seed=1, spacing=(6.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=14.0, side="right")]).volume


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def tool_texts(conversation: list[dict]) -> list[str]:
    return ["".join(p.get("text", "") for p in m["content"]) for m in conversation if m["role"] == "tool"]


def test_every_tool_boxes_mapped_from_the_model_frame(chest, registry):
    script = [
        call("view", plane="coronal"),                                   # -> V3
        call("crop", view_id="V3", bbox_2d=[20, 20, 80, 80]),            # model frame (twice the size)
        call("segment", target="lungs"),
        call("measure", evidence_id="E3"),
        "Done. <answer>Both lungs measure about 4 L [E3, E4].</answer>",
    ]
    backend = ScriptedBackend(script, scale=2.0)
    trace = run_episode(chest, "How large are the lungs?", backend, registry=registry, seed=3)
    assert trace.status == "answered" and trace.cited_evidence == ["E3", "E4"]
    assert [e.tool for e in trace.evidence] == ["view", "crop", "segment", "measure"]
    crop = trace.evidence[1]
    assert crop.arguments["bbox_2d"] == [10, 10, 40, 40]  # scaled back to view pixels
    calls = trace.tool_calls()
    assert calls[1].arguments["bbox_2d"] == [20, 20, 80, 80]  # the trace keeps what the model wrote
    refs = [ref for t in trace.turns for ref in t.images]
    assert [r.index for r in refs] == list(range(1, len(refs) + 1))
    assert all(r.model_size == (r.size[0] * 2, r.size[1] * 2) for r in refs)
    # captions give the model frame, and initial views are kept in the trace with their geometry
    user = trace.turns[1].text
    w, h = refs[0].model_size
    assert f"Image 1 ({w}x{h}), view V1" in user and "Question: How large are the lungs?" in user
    assert [v["view_id"] for v in trace.meta["views"]] == ["V1", "V2"]
    assert "geometry" in trace.meta["views"][0]
    assert trace.evidence[3].measurements["volume_ml"].value > 1000
    assert set(trace.timings) == {"imaging", "tools", "model", "total"}
    assert trace.timings["total"] >= trace.timings["tools"]
    assert trace.backend == "scripted" and trace.seed == 3 and "transformers" in trace.versions
    # tool results carry the machine-readable line
    assert any('"measurements"' in t for t in tool_texts(backend.seen[0]))


class RelativeBackend(ScriptedBackend):
    """A model that writes boxes in relative 0..1000 coordinates (Qwen3-VL)."""

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return 1000, 1000


def test_relative_boxes_map_to_the_same_view_region(chest, registry):
    backend = RelativeBackend([call("crop", view_id="V2", bbox_2d=[250, 100, 750, 600]), "<answer>ok [E1]</answer>"])
    trace = run_episode(chest, "Zoom in", backend, registry=registry)
    crop = trace.evidence[0]
    w, h = next(r.size for t in trace.turns for r in t.images if r.view_id == "V2")
    assert crop.arguments["bbox_2d"] == pytest.approx([0.25 * w, 0.1 * h, 0.75 * w, 0.6 * h], abs=0.01)
    assert "Image 2 (1000x1000), view V2" in trace.turns[1].text


def test_errors_are_fed_back_and_the_model_recovers(chest, registry):
    script = [
        '<tool_call>{"name": "crop", "arguments": {"view_id": "V1", </tool_call>'   # unreadable JSON
        + call("zoom", level=2),                                                       # unknown tool
        call("crop", view_id="V9", bbox_2d=[0, 0, 50, 50]),                            # unknown view
        call("crop", view_id="V2", bbox_2d=[5000, 5000, 6000, 6000]),                  # outside the image
        call("view", plane="diagonal"),                                                # schema violation
        "<answer>cannot tell</answer>",
    ]
    backend = ScriptedBackend(script)
    trace = run_episode(chest, "q", backend, registry=registry)
    errors = [c.error for c in trace.tool_calls()]
    assert len(errors) == 5 and all(errors)
    texts = tool_texts(backend.seen[0])
    assert all(t.startswith("Error: ") for t in texts)
    assert "unknown tool 'zoom'" in texts[1] and "view, crop, segment, measure" in texts[1]
    assert "unknown view_id 'V9'" in texts[2]
    assert "lies outside view V2" in texts[3]
    assert "plane" in texts[4]
    assert trace.evidence == [] and trace.status == "abstained"


def test_json_line_survives_the_parser_for_xml_calls(chest, registry):
    script = ["<tool_call>\n<function=segment>\n<parameter=target>\nlungs\n</parameter>\n</function>\n</tool_call>",
              "<answer>ok [E1]</answer>"]
    trace = run_episode(chest, "q", ScriptedBackend(script), registry=registry)
    assert trace.evidence[0].tool == "segment" and trace.status == "answered"


def test_repeated_calls_are_answered_from_the_board(chest, registry):
    seg = call("segment", target="lungs")
    backend = ScriptedBackend([seg, seg, "<answer>ok [E1]</answer>"])
    trace = run_episode(chest, "q", backend, registry=registry)
    first, second = trace.tool_calls()
    assert not first.cached and second.cached and second.evidence_id == first.evidence_id == "E1"
    assert len(trace.evidence) == 1
    text = tool_texts(backend.seen[0])[1]
    assert text.startswith("Same call as E1") and "[E1]" in text
    assert not any(p.get("type") == "image" for p in backend.seen[0][-1]["content"])


def test_small_boxes_are_enlarged_to_a_patch_and_clamped(chest, registry):
    # V2 is the 85x60 coronal slice, seen by the model at 170x120
    backend = ScriptedBackend([call("crop", view_id="V2", bbox_2d=[-20, 30, 4, 34]), "<answer>x</answer>"], scale=2.0)
    trace = run_episode(chest, "q", backend, registry=registry, config=LoopConfig(min_box_px=28))
    # clamped to [0, 30, 4, 34], grown to 28 px about its centre ([0, 18, 28, 46]), halved to view pixels
    assert trace.evidence[0].arguments["bbox_2d"] == [0, 9, 14, 23]
    text = tool_texts(backend.seen[0])[0]
    assert "clamped" in text and "one vision patch" in text


def test_images_in_context_are_bounded_crops_first(chest, registry):
    crops = [call("crop", view_id="V2", bbox_2d=[10 * i, 10, 10 * i + 60, 70]) for i in range(5)]
    backend = ScriptedBackend(crops + ["<answer>done</answer>"])
    config = LoopConfig(max_images=4, max_initial_images=2)
    trace = run_episode(chest, "q", backend, registry=registry, config=config)
    conv = backend.seen[0]
    live = sum(p.get("type") == "image" for m in conv for p in m["content"])
    assert live == 4
    # the initial montage and coronal views survive; the oldest crops were replaced by notes
    assert sum(p.get("type") == "image" for p in conv[1]["content"]) == 2
    assert trace.meta["dropped_images"] == [3, 4, 5]
    notes = [p["text"] for m in conv for p in m["content"] if "was removed" in p.get("text", "")]
    assert len(notes) == 3 and "Image 3 (view V3)" in notes[0]


def test_max_turns_bounds_the_episode(chest, registry):
    views = [call("view", plane="axial", index=i) for i in range(20)]
    trace = run_episode(chest, "q", ScriptedBackend(views), registry=registry, max_turns=3)
    assert trace.status == "max_turns" and trace.answer is None
    assert sum(t.role == "assistant" for t in trace.turns) == 3
    assert len(trace.evidence) == 3


def test_format_reminder_then_untagged_answer(chest, registry):
    backend = ScriptedBackend(["I think it is fine.", "Yes, a nodule [E1]."])
    trace = run_episode(chest, "q", backend, registry=registry)
    assert [t.role for t in trace.turns][2:] == ["assistant", "user", "assistant"]
    assert "neither a tool call nor a final answer" in trace.turns[3].text
    assert trace.status == "answered" and trace.answer == "Yes, a nodule [E1]." and trace.meta["answer_untagged"]


def test_multiple_choice_letter(chest, registry):
    backend = ScriptedBackend(["<answer>(B) right [E1]</answer>"])
    trace = run_episode(chest, "Which lung?", backend, registry=registry, options=["left", "right"])
    assert trace.answer_option == "B"
    assert "A. left\nB. right" in trace.turns[1].text


def test_batched_episodes_advance_together(chest, registry):
    scripts = {"first question": [call("view", plane="sagittal"), "<answer>one [E1]</answer>"],
               "second question": ["<answer>two</answer>"]}
    backend = ScriptedBackend(scripts)
    reqs = [EpisodeRequest([chest], "first question"), EpisodeRequest([chest], "second question")]
    t1, t2 = run_episodes(reqs, backend, registry=registry)
    assert backend.batches == [2, 1]
    assert (t1.answer, t2.answer) == ("one [E1]", "two") and t1.evidence[0].tool == "view"
    assert t2.evidence == []


def test_initial_views_rule(chest):
    views = initial_views({"0": chest})
    assert [v.plane for v in views] == ["montage", "coronal"]
    assert "lung window" in views[0].description and len(views[0].geometry.tiles) == 9
    xray = Volume.from_array(np.random.default_rng(0).random((64, 48)).astype(np.float32), modality="XR")
    assert [v.plane for v in initial_views({"0": xray})] == ["axial"]
    three = initial_views({"0": chest, "1": chest, "2": chest}, max_images=4)
    assert [v.plane for v in three] == ["montage", "montage", "montage", "coronal"]
    abdomen = Volume.from_array(np.full((8, 32, 32), 40.0), modality="CT")
    assert "soft_tissue window" in initial_views({"0": abdomen})[0].description


def test_trace_round_trips_through_json(chest, registry, tmp_path):
    script = [call("segment", target="lungs"), call("measure", evidence_id="E1"), "<answer>ok [E2]</answer>"]
    trace = run_episode(chest, "q", ScriptedBackend(script), registry=registry)
    back = Trace.load(trace.save(tmp_path / "trace.json"))
    assert back.tool_calls()[1].evidence_id == "E2" and back.evidence[0].mask.sum() == trace.evidence[0].mask.sum()
    assert [r.model_size for t in back.turns for r in t.images] == [r.model_size for t in trace.turns for r in t.images]


def test_bad_configuration_and_inputs():
    with pytest.raises(LoopError):
        LoopConfig(max_turns=0)
    with pytest.raises(LoopError, match="no input image"):
        run_episode([], "q", ScriptedBackend(["<answer>x</answer>"]))
