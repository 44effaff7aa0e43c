"""The ``hf`` backend on the tiny Qwen-VL checkpoints: batching, determinism, geometry, stops."""

import shutil

import pytest
import torch
from tests.helpers.tiny_models import random_image
from qwen_vl_utils import smart_resize

from imaging.locate import ModelFrame
from mmreason.backends import BackendError, get_backend
from mmreason.tiny_models import ARCHS

_BACKENDS: dict[str, object] = {}


@pytest.fixture(params=ARCHS)
def backend(request, tiny_model_dir):
    arch = request.param
    if arch not in _BACKENDS:
        _BACKENDS[arch] = get_backend("hf", model=str(tiny_model_dir(arch)), batch_size=4)
    return _BACKENDS[arch]


def conversations(n: int = 3) -> list[list[dict]]:
    """n single-image questions with different image sizes and prompt lengths."""
    return [
        [
            {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]},
            {"role": "user", "content": [
                {"type": "image", "image": random_image(96 + 40 * i, 80 + 24 * i, seed=i)},
                {"type": "text", "text": "Which side is the nodule on? " * (i + 1)},
            ]},
        ]
        for i in range(n)
    ]


def test_cpu_float32_and_left_padding(backend):
    assert backend.device == "cpu" and backend.model.dtype == torch.float32
    inputs = backend.prepare_inputs(conversations(3))
    mask = inputs["attention_mask"]
    assert backend.tokenizer.padding_side == "left"
    assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).any()  # padding on the left only


def test_batch_of_three_is_deterministic_and_equals_unbatched(backend):
    convs = conversations(3)
    first = backend.generate(convs, max_new_tokens=12, stop=())
    assert len(first) == 3 and all(isinstance(t, str) and t for t in first)
    assert backend.generate(convs, max_new_tokens=12, stop=()) == first
    # Left padding done right: a padded batch decodes exactly as each conversation alone.
    assert [backend.generate([c], max_new_tokens=12, stop=())[0] for c in convs] == first
    # Images matter: the same question with another image gives another answer.
    swapped = [[convs[0][0], {"role": "user", "content": [
        {"type": "image", "image": random_image(96, 80, seed=99)}, convs[0][1]["content"][1]]}]]
    assert backend.generate(swapped, max_new_tokens=12, stop=())[0] != first[0]


def test_sampling_is_seeded(backend):
    convs = conversations(3)
    a = backend.generate(convs, max_new_tokens=16, temperature=3.0, seed=5, stop=())
    b = backend.generate(convs, max_new_tokens=16, temperature=3.0, seed=5, stop=())
    c = backend.generate(convs, max_new_tokens=16, temperature=3.0, seed=6, stop=())
    assert a == b
    assert a != c


@pytest.mark.parametrize("size", [(300, 200), (64, 64), (1000, 700), (37, 513), (20, 1200)])
def test_model_image_size_is_the_frame_the_processor_produces(backend, size):
    width, height = size
    conv = [{"role": "user", "content": [{"type": "image", "image": random_image(width, height)},
                                         {"type": "text", "text": "?"}]}]
    patch = backend.processor.image_processor.patch_size
    _, grid_h, grid_w = backend.prepare_inputs([conv])["image_grid_thw"][0].tolist()
    # Qwen3-VL writes boxes in relative 0..1000 coordinates, Qwen2.5-VL in pixels of the resized image
    relative = backend.model.config.model_type == "qwen3_vl"
    assert backend.relative_boxes == relative
    assert backend.model_image_size(width, height) == ((1000, 1000) if relative else (grid_w * patch, grid_h * patch))
    # the resized pixel frame, as box_format="absolute" gives it
    frame = ModelFrame.from_processor(backend.processor, relative=False)
    assert frame(width, height) == (grid_w * patch, grid_h * patch)
    # The processor's own resize of the raw image agrees (no double resize in our path).
    raw = backend.processor(text=["<|vision_start|><|image_pad|><|vision_end|>"],
                            images=[random_image(width, height)], return_tensors="pt")
    assert raw["image_grid_thw"][0].tolist() == [1, grid_h, grid_w]


def test_pixel_budget_options_reach_the_processor(tiny_model_dir):
    small = get_backend("hf", model=str(tiny_model_dir("qwen2_5_vl")), max_pixels=16 * 28 * 28)
    width, height = small.model_image_size(1000, 700)
    assert (width, height) == tuple(reversed(smart_resize(700, 1000, 28, 4 * 28 * 28, 16 * 28 * 28)))
    assert width * height <= 16 * 28 * 28
    conv = [{"role": "user", "content": [{"type": "image", "image": random_image(1000, 700)}]}]
    _, gh, gw = small.prepare_inputs([conv])["image_grid_thw"][0].tolist()
    assert (gw * 14, gh * 14) == (width, height)


def test_tool_messages_with_images_reach_the_model(backend):
    conv = conversations(1)[0] + [
        {"role": "assistant", "content": '<tool_call>\n{"name": "crop", "arguments": {"box": [1, 2, 30, 40]}}\n</tool_call>'},
        {"role": "tool", "content": [{"type": "text", "text": "E1: crop"}, {"type": "image", "image": random_image(50, 70, 3)}]},
    ]
    inputs = backend.prepare_inputs([conv])
    grid = inputs["image_grid_thw"]
    assert grid.shape[0] == 2
    image_id = backend.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == int(grid.prod(dim=1).sum()) // 4
    [text] = backend.generate([conv], max_new_tokens=6, stop=())
    assert isinstance(text, str)


def test_template_without_tools_gets_tool_turns_as_user_turns(tiny_model_dir, tmp_path):
    # A Qwen2.5-VL-like template: no `tools`, every role printed as-is.
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model_dir("qwen2_5_vl"), plain)
    (plain / "chat_template.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}"
        "{% else %}{% for p in m.content %}{% if p.type == 'image' %}<|vision_start|><|image_pad|>"
        "<|vision_end|>{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    backend = get_backend("hf", model=str(plain))
    assert not backend.native_tools and backend.tool_messages == "user"
    conv = [
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "<tool_call>{}</tool_call>"},
        {"role": "tool", "content": [{"type": "text", "text": "E1"}, {"type": "image", "image": random_image(40, 40)}]},
    ]
    text = backend.render(conv)
    assert "<|im_start|>tool" not in text
    assert "<|im_start|>user\n<tool_response>\nE1<|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>" in text
    assert backend.prepare_inputs([conv])["image_grid_thw"].shape[0] == 1
    forced = get_backend("hf", model=str(plain), tool_messages="tool")
    assert "<|im_start|>tool\nE1" in forced.render(conv)


def test_stop_string_cuts_right_after_its_first_occurrence(backend):
    conv = conversations(1)
    full = backend.generate(conv, max_new_tokens=24, stop=())[0]
    ids = backend.tokenizer(full, add_special_tokens=False)["input_ids"]
    # A stop string taken from the middle of the unconstrained output.
    stop = backend.tokenizer.decode(ids[len(ids) // 2 : len(ids) // 2 + 1]).strip() or full[-3:]
    cut = full[: full.index(stop) + len(stop)]
    [generation] = backend.generate_detailed(conv, max_new_tokens=24, stop=("never-seen", stop))
    assert generation.text == cut
    assert (generation.stop_string, generation.finish_reason) == (stop, "stop")
    [length] = backend.generate_detailed(conv, max_new_tokens=5, stop=())
    assert length.finish_reason == "length" and length.completion_tokens == 5


def test_tool_call_markup_survives_decoding(backend):
    tok = backend.tokenizer
    reply = '<think>left</think><tool_call>\n{"name": "crop", "arguments": {"box": [1, 2]}}\n</tool_call> trailing'
    ids = tok(reply, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id]
    generation = backend.decode(ids, stop=("</tool_call>",))
    assert generation.text == reply[: reply.index("</tool_call>") + len("</tool_call>")]
    assert backend.decode(ids, stop=()).text == reply  # end-of-turn and padding dropped


def test_missing_model_dir_says_how_to_fix(tmp_path):
    with pytest.raises(BackendError, match="does not exist.*python -m mmreason.tiny_models"):
        get_backend("hf", model=str(tmp_path / "no-such-model"))
    with pytest.raises(BackendError, match="no config.json"):
        get_backend("hf", model=str(tmp_path))
    with pytest.raises(BackendError, match=r"could not load the processor of 'mmreason-test/absent'.*hf download"):
        get_backend("hf", model="mmreason-test/absent")  # offline in tests: not in the cache
    with pytest.raises(BackendError, match="bad options for the hf backend"):
        get_backend("hf", model=str(tmp_path), temperature=0.3)
    with pytest.raises(BackendError, match="unknown backend 'vllm'"):
        get_backend("vllm")


def test_prefix_cache_gives_the_tokens_of_a_full_prefill(tiny_model_dir):
    """The shared system prompt is prefilled once and reused across batches and turns; the
    greedy tokens are exactly those of prefilling every row in full."""
    system = {"role": "system", "content": [{"type": "text", "text": "You are a radiologist. " * 20}]}
    convs = [[system, *c[1:]] for c in conversations(3)]
    follow_up = convs[1] + [{"role": "assistant", "content": [{"type": "text", "text": "left"}]},
                            {"role": "user", "content": [{"type": "text", "text": "Sure?"}]}]
    calls = [convs, convs[:1], [follow_up, convs[2]]]
    for arch in ARCHS:
        cached = get_backend("hf", model=str(tiny_model_dir(arch)), batch_size=4)
        full = get_backend("hf", model=str(tiny_model_dir(arch)), batch_size=4, prefix_cache=False)
        assert cached.prefix_cache and not full.prefix_cache
        for batch in calls:
            got = cached.generate_detailed(batch, max_new_tokens=10, stop=())
            want = full.generate_detailed(batch, max_new_tokens=10, stop=())
            assert [g.text for g in got] == [g.text for g in want]
            # the prompt counts are the full prompts, cached part included
            assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in want]
        # what is kept is the system turn and the start of the user turn, nothing of an image
        kept = cached.tokenizer.decode(cached._prefix.ids)
        assert kept.count("You are a radiologist.") == 20 and "<|image_pad|>" not in kept


def test_image_tokens_written_by_the_model_do_not_break_the_next_turn(backend):
    # a sampling model can emit <|image_pad|>; fed back, the processor would count an extra image
    conv = conversations(1)[0] + [
        {"role": "assistant", "content": [{"type": "text", "text": "look <|image_pad|><|vision_start|> here"}]},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]
    assert "<|image_pad|><|vision_start|> here" not in backend.render(conv)
    inputs = backend.prepare_inputs([conv])
    assert inputs["image_grid_thw"].shape[0] == 1
    assert len(backend.generate([conv], max_new_tokens=4, stop=())) == 1
