"""Shared backend helpers: stop-string cutting and tool-turn rewriting."""

from types import SimpleNamespace

from imaging.locate import ModelFrame
from mmreason.backends import Backend, cut_at_stop, get_backend
from mmreason.backends.base import conversation_images, template_ready, tool_messages_as_user
from mmreason.backends.hf import think_opening


def test_cut_keeps_the_earliest_stop_string():
    stop = ("</tool_call>", "</answer>")
    assert cut_at_stop("a</answer>b</tool_call>c", stop) == ("a</answer>", "</answer>")
    assert cut_at_stop("<tool_call>{}</tool_call> then </answer>", stop) == ("<tool_call>{}</tool_call>", "</tool_call>")
    assert cut_at_stop("no stop here", stop) == ("no stop here", None)
    assert cut_at_stop("x", ("", "y")) == ("x", None)  # an empty stop string never matches


def test_consecutive_tool_messages_share_one_user_turn_with_images_in_place():
    image_a, image_b = object(), object()
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<tool_call>..</tool_call><tool_call>..</tool_call>"},
        {"role": "tool", "content": [{"type": "text", "text": "E1"}, {"type": "image", "image": image_a}]},
        {"role": "tool", "content": [{"type": "image", "image": image_b}]},
        {"role": "assistant", "content": "done"},
    ]
    out = tool_messages_as_user(conv)
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant"]
    texts = "".join(p.get("text", "<IMG>") for p in out[2]["content"])
    assert texts == "<tool_response>\nE1<IMG>\n</tool_response>\n<tool_response>\n<IMG>\n</tool_response>"
    assert conversation_images(out) == conversation_images(conv) == [image_a, image_b]
    assert conv[2]["role"] == "tool" and len(conv[2]["content"]) == 2  # input left untouched


def test_openai_backend_satisfies_the_protocol():
    backend = get_backend("openai", model="served-model", base_url="http://127.0.0.1:9/v1")
    assert isinstance(backend, Backend)
    assert (backend.name, backend.model_id, backend.native_tools) == ("openai", "served-model", False)


def test_template_ready_merges_text_and_passes_text_only_turns_as_strings():
    image = {"type": "image", "image": object()}
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Study: 5.00 mm\n"},
                                     {"type": "text", "text": "Image 1 (896x896), view V1\n"}, image,
                                     {"type": "text", "text": "\n"}, {"type": "text", "text": "Question: q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>a</answer>"}]},
    ]
    system, user, assistant = template_ready(conversation)
    assert system["content"] == "Be brief." and assistant["content"] == "<answer>a</answer>"
    assert user["content"] == [{"type": "text", "text": "Study: 5.00 mm\nImage 1 (896x896), view V1\n"}, image,
                               {"type": "text", "text": "\nQuestion: q"}]
    assert conversation[1]["content"][0]["text"] == "Study: 5.00 mm\n"  # the input is left as it was


def test_processor_box_frame_reads_fixed_size_and_falls_back_to_identity():
    gemma = SimpleNamespace(image_processor=SimpleNamespace(do_resize=True, size={"height": 896, "width": 896}))
    assert ModelFrame.from_processor(gemma, relative=False)(636, 420) == (896, 896)
    assert ModelFrame.from_processor(gemma, relative=True)(636, 420) == (1000, 1000)
    unknown = SimpleNamespace(image_processor=SimpleNamespace(do_resize=False, size={"height": 896, "width": 896}))
    assert ModelFrame.from_processor(unknown, relative=False)(636, 420) == (636, 420)


def test_think_opening_is_only_the_end_of_the_prompt():
    assert think_opening("<|im_start|>assistant\n<think>\n") == "<think>\n"
    assert think_opening("<|im_start|>assistant\n<think>\n\n</think>\n\n") == ""
    # an unclosed block in an earlier turn is not the generation prompt's
    assert think_opening("<think>\ncut off<|im_end|>\n<|im_start|>assistant\n") == ""
