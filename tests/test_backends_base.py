"""Shared backend helpers: stop-string cutting and tool-turn rewriting."""

from mmreason.backends import Backend, cut_at_stop, get_backend
from mmreason.backends.base import conversation_images, tool_messages_as_user


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
