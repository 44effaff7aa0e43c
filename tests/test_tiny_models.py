"""The tiny Qwen-VL builder: real architectures, real tokenizer, real processor geometry."""

import hashlib

import pytest
from tests.helpers.tiny_models import random_image

from mmreason import tiny_models
from mmreason.backends import get_backend

EXPECTED = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", 14),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", 16),
}


@pytest.mark.parametrize("arch", tiny_models.ARCHS)
def test_tiny_model_loads_through_from_pretrained_like_a_checkpoint(tiny_model_dir, arch):
    path = tiny_model_dir(arch)
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
            "chat_template.jinja", "generation_config.json"} <= {p.name for p in path.iterdir()}
    backend = get_backend("hf", model=str(path))
    model_class, processor_class, patch = EXPECTED[arch]
    assert type(backend.model).__name__ == model_class
    assert type(backend.processor).__name__ == processor_class
    assert type(backend.tokenizer).__name__ == "Qwen2Tokenizer"
    n_params = sum(p.numel() for p in backend.model.parameters())
    assert 100_000 < n_params < 1_000_000, n_params

    vision = backend.model.config.vision_config
    assert (vision.patch_size, vision.spatial_merge_size) == (patch, 2)
    assert vision.out_hidden_size == backend.model.config.text_config.hidden_size
    assert backend.processor.image_processor.patch_size == patch

    tok = backend.tokenizer
    config = backend.model.config
    assert config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert config.text_config.vocab_size == len(tok)
    # Markup tokens are single added tokens, and byte-level BPE round-trips arbitrary text.
    for markup in ("<tool_call>", "</tool_call>", "<think>", "</answer>", "<|im_end|>"):
        assert len(tok(markup, add_special_tokens=False)["input_ids"]) == 1, markup
    text = 'Nodule 12 mm, -35 HU; ünïcode ✓ {"name": "crop"}'
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert backend.native_tools and backend.tool_messages == "tool"  # template renders tool images


def test_chat_template_renders_tools_images_and_tool_responses(tiny_model_dir):
    backend = get_backend("hf", model=str(tiny_model_dir("qwen3_vl")))
    tools = [{"type": "function", "function": {"name": "crop", "description": "zoom into a box",
                                               "parameters": {"type": "object", "properties": {}}}}]
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "You read CT."}]},
        {"role": "user", "content": [{"type": "image", "image": random_image(64, 64)},
                                     {"type": "text", "text": "Where is it?"}]},
        {"role": "assistant", "content": '<tool_call>\n{"name": "crop", "arguments": {}}\n</tool_call>'},
        {"role": "tool", "content": [{"type": "text", "text": "E1"}, {"type": "image", "image": random_image(32, 32)}]},
        {"role": "tool", "content": "E2: 12 mm"},
    ]
    text = backend.render(conversation, tools)
    assert text.startswith("<|im_start|>system\nYou read CT.\n\n# Tools")
    assert '<tools>\n{"type": "function", "function": {"name": "crop"' in text
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    # Both tool results share one user turn, each in its own <tool_response> block.
    assert ("<|im_start|>user\n<tool_response>\nE1<|vision_start|><|image_pad|><|vision_end|>\n"
            "</tool_response>\n<tool_response>\nE2: 12 mm\n</tool_response><|im_end|>\n") in text
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>tool" not in text


def test_cli_writes_the_same_checkpoint_for_the_same_seed(tiny_model_dir, tmp_path):
    reference = tiny_model_dir("qwen2_5_vl") / "model.safetensors"
    assert tiny_models.main([str(tmp_path / "m"), "--arch", "qwen2_5_vl", "--seed", "0"]) == 0
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "m" / "model.safetensors") == digest(reference)
    other = tiny_models.build_tiny_qwen_vl(tmp_path / "s1", arch="qwen2_5_vl", seed=1)
    assert digest(other / "model.safetensors") != digest(reference)


def test_unknown_arch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="qwen2_5_vl, qwen3_vl"):
        tiny_models.build_tiny_qwen_vl(tmp_path, arch="llava")

