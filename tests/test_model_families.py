"""Coordinator families beyond Qwen2.5-VL, on tiny checkpoints whose templates, tokenizers and
processors behave like the real ones (`mmreason.tiny_families`): box frames, BOS handling,
captions, tool-call syntax, thinking and text-only template entries."""

from __future__ import annotations

import functools
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from qwen_vl_utils import smart_resize
from transformers import AutoProcessor

from grounding.tools import default_registry
from imaging.locate import ModelFrame
from imaging.phantoms.xray import chest_xray
from mmreason import prompts
from mmreason.backends import BackendError
from mmreason.backends.hf import HFBackend
from mmreason.loop import Episode, EpisodeRequest, LoopConfig
from mmreason.tiny_families import GEMMA_IMAGE_SIZE

_BACKENDS: dict[str, HFBackend] = {}


@pytest.fixture
def backend_of(tiny_model_dir):  # noqa: F811
    def get(family: str) -> HFBackend:
        if family not in _BACKENDS:
            _BACKENDS[family] = HFBackend(str(tiny_model_dir(family)), device="cpu", thinking_tokens=4)
        return _BACKENDS[family]

    return get


@functools.cache
def _xray():
    return chest_xray(seed=0)


def _episode(backend: HFBackend) -> Episode:
    request = EpisodeRequest(inputs=[_xray().volume], question="Where is the heart?")
    return Episode(request, backend, default_registry(), LoopConfig(max_turns=3), seed=0)


def _expected_frame(family: str, backend: HFBackend, width: int, height: int) -> tuple[int, int]:
    """The frame each family's model writes boxes in, from what is published about it."""
    if family in ("qwen3_vl", "qwen3_5", "internvl"):
        return 1000, 1000  # relative 0..1000 (InternVL: <box>[[x1, y1, x2, y2]]</box>)
    if family == "gemma3":
        return GEMMA_IMAGE_SIZE, GEMMA_IMAGE_SIZE  # SigLIP resizes every image to this square
    image_processor = backend.processor.image_processor  # Qwen2.5-VL and Lingshu: smart resize
    size = image_processor.size
    h, w = smart_resize(height, width, factor=image_processor.patch_size * image_processor.merge_size,
                        min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
    return w, h


def _call(backend: HFBackend, view_id: str, box: list[int]) -> str:
    if backend.tool_call_format == "xml":
        return (f"<tool_call>\n<function=crop>\n<parameter=view_id>\n{view_id}\n</parameter>\n"
                f"<parameter=bbox_2d>\n{box}\n</parameter>\n</function>\n</tool_call>")
    return f'<tool_call>\n{{"name": "crop", "arguments": {{"view_id": "{view_id}", "bbox_2d": {box}}}}}\n</tool_call>'


FAMILIES = ("qwen2_5_vl", "qwen3_vl", "qwen3_5", "gemma3", "lingshu", "internvl")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_box_in_the_models_frame_lands_on_the_target_voxels(backend_of, family):
    backend = backend_of(family)
    episode = _episode(backend)
    view = episode.context.views["V1"]  # the whole radiograph, one view pixel per voxel
    width, height = view.size
    frame = _expected_frame(family, backend, width, height)
    assert backend.model_image_size(width, height) == frame
    # the caption states that frame, and the prompt the model gets carries it
    rendered = backend.render(episode.conversation, default_registry().specs() if backend.native_tools else None)
    assert f"Image 1 ({frame[0]}x{frame[1]}), view V1" in rendered
    assert f"({width}x{height})" not in rendered or frame == (width, height)
    backend.prepare_inputs([episode.conversation])  # the processor takes the prompt and its images

    heart = _xray().labels["heart"][0]
    rows, cols = np.nonzero(heart)
    target = [[0, 1], [int(rows.min()), int(rows.max()) + 1], [int(cols.min()), int(cols.max()) + 1]]
    sx, sy = frame[0] / width, frame[1] / height
    box = [round(target[2][0] * sx), round(target[1][0] * sy), round(target[2][1] * sx), round(target[1][1] * sy)]
    episode.step(_call(backend, "V1", box), 0.0)

    call = episode.trace.turns[-2].tool_calls[0]
    assert call.error is None and call.arguments["bbox_2d"] == box
    voxels = episode.context.evidence[-1].box["voxels"]
    assert voxels[0] == target[0]
    # a model writes whole numbers: one voxel of rounding at most (a wrong frame is off by tens)
    assert np.abs(np.array(voxels[1:]) - np.array(target[1:])).max() <= 1


def test_gemma_prompt_starts_with_one_bos(backend_of):
    backend = backend_of("gemma3")
    episode = _episode(backend)
    text = backend.render(episode.conversation)
    bos = backend.tokenizer.bos_token_id
    assert text.startswith("<bos>")  # the template writes it ...
    assert backend.tokenizer(text)["input_ids"][:2] == [bos, bos]  # ... and the tokenizer would again
    ids = backend.prepare_inputs([episode.conversation])["input_ids"][0].tolist()
    assert ids[0] == bos and ids.count(bos) == 1


def test_gemma_captions_are_not_glued_to_text_or_images(backend_of):
    backend = backend_of("gemma3")
    volume = chest_xray(seed=1).volume
    request = EpisodeRequest(inputs=[_xray().volume, volume], question="Compare the two radiographs.")
    episode = Episode(request, backend, default_registry(), LoopConfig(), seed=0)
    text = backend.render(episode.conversation)
    # every text part is trimmed by the template: the study lines and captions keep their newlines
    assert re.search(r"mm/px\nImage 1 \(896x896\)", text)
    assert re.search(r"[^\n>]Image \d", text) is None  # (an image marker is expanded below)
    ids = backend.prepare_inputs([episode.conversation])["input_ids"][0].tolist()
    decoded = backend.tokenizer.decode(ids)
    # the processor sets every image off with blank lines, so no caption touches an image marker
    assert len(re.findall(r"auto window\n\n<start_of_image>", decoded)) == 2
    assert re.search(r"<end_of_image>\n\nImage 2 \(896x896\)", decoded)
    assert re.search(r"\S<start_of_image>|<end_of_image>\S", decoded) is None


def test_gemma_tool_results_are_alternating_user_turns(backend_of):
    backend = backend_of("gemma3")
    assert not backend.native_tools and backend.tool_messages == "user" and backend.tool_call_format == "json"
    episode = _episode(backend)
    episode.step(_call(backend, "V1", [100, 100, 300, 300]), 0.0)
    episode.step(_call(backend, "V2", [10, 10, 500, 500]), 0.0)
    text = backend.render(episode.conversation)  # the template raises unless roles alternate
    assert text.count("<start_of_turn>user") == 3 and "<tool_response>" in text


def test_internvl_text_only_turns_render_as_strings(backend_of):
    backend = backend_of("internvl")
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>hi</answer>"}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    with pytest.raises(TypeError, match="can only concatenate str"):  # the template as published
        backend.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    text = backend.render(conversation)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in text
    assert "<|im_start|>assistant\n<answer>hi</answer><|im_end|>" in text
    assert not backend.native_tools and backend.tool_messages == "user"


def test_internvl_tiles_each_image(backend_of):
    backend = backend_of("internvl")
    width, height = 1000, 450
    image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
    conversation = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "?"}]}]
    pixels = backend.prepare_inputs([conversation])["pixel_values"]
    # with absolute boxes forced, the frame is the canvas of whole 448 px tiles the image is cut from
    canvas = ModelFrame.from_processor(backend.processor, relative=False)(width, height)
    assert canvas == (896, 448)
    assert pixels.shape[0] == 2 + 1 and pixels.shape[-2:] == (448, 448)  # two tiles and the thumbnail
    assert backend.model_image_size(width, height) == (1000, 1000)  # InternVL's own convention


def test_qwen3_5_xml_calls_are_taught_reminded_and_parsed(backend_of):
    backend = backend_of("qwen3_5")
    assert backend.native_tools and backend.tool_call_format == "xml"
    episode = _episode(backend)
    episode.step("<think>\nI should look closer.\n</think>\nThe heart is central.", 0.0)
    reminder = episode.conversation[-1]["content"][0]["text"]
    assert reminder == prompts.XML_FORMAT_REMINDER and "<function=" in reminder and '{"name"' not in reminder
    episode.step(_call(backend, "V1", [300, 300, 700, 700]), 0.0)
    call = episode.trace.turns[-2].tool_calls[0]
    assert call.name == "crop" and call.arguments == {"view_id": "V1", "bbox_2d": [300, 300, 700, 700]}
    assert call.error is None and call.evidence_id == "E1"


def test_qwen3_5_thinking_gets_its_own_budget(backend_of, tiny_model_dir):  # noqa: F811
    backend = backend_of("qwen3_5")
    conversation = [{"role": "user", "content": [{"type": "text", "text": "Is there a fracture?"}]}]
    assert backend.opens_thinking and backend.render(conversation).endswith("<|im_start|>assistant\n<think>\n")
    out = backend.generate_detailed([conversation], max_new_tokens=3, stop=())[0]
    # reasoning ran out of its 4 tokens: the block is closed and the reply gets its own 3
    reasoning, reply = out.text.split("\n</think>\n\n")
    assert reasoning.startswith("<think>\n") and "</think>" not in reasoning
    # decoded byte-level tokens can re-tokenise into a few more pieces; the exact budget is the
    # completion count below
    assert len(backend.tokenizer(reasoning[len("<think>\n"):], add_special_tokens=False)["input_ids"]) <= 8
    assert out.finish_reason == "length" and out.completion_tokens == backend.thinking_tokens + 3
    # the reply is what the model writes after the closed block
    closed = backend.render(conversation) + reasoning[len("<think>\n"):] + "\n</think>\n\n"
    inputs = backend._encode([closed], [conversation])
    again = backend.model.generate(**inputs, max_new_tokens=3, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert reply == backend.tokenizer.decode(again.tolist(), skip_special_tokens=False)

    off = HFBackend(str(tiny_model_dir("qwen3_5")), device="cpu", thinking="off")
    assert not off.opens_thinking
    assert off.render(conversation).endswith("<think>\n\n</think>\n\n")
    short = off.generate_detailed([conversation], max_new_tokens=3, stop=())[0]
    assert short.completion_tokens == 3 and not short.text.startswith("<think>")


def test_thinking_off_is_refused_where_the_template_cannot_turn_it_off(tiny_model_dir, tmp_path):  # noqa: F811
    path = tmp_path / "always-thinks"
    shutil.copytree(tiny_model_dir("qwen3_vl"), path)
    processor = AutoProcessor.from_pretrained(path)
    prompt = "{%- if add_generation_prompt -%}<|im_start|>assistant\n"
    processor.chat_template = processor.chat_template.replace(prompt, prompt + "<think>\n")
    processor.save_pretrained(path)
    assert HFBackend(str(path), device="cpu").opens_thinking
    with pytest.raises(BackendError, match="enable_thinking=False"):
        HFBackend(str(path), device="cpu", thinking="off")
