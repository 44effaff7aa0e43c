"""``mmreason serve``'s app driven with the official ``openai`` client on 127.0.0.1: plain, streaming,
tools, images, errors, keep-alive; the tiny Qwen2.5-VL for real generation, a scripted backend
for tool calls."""

import base64
import http.client
import io
import json
import subprocess
import sys

import openai
import pytest
from tests.helpers.tiny_models import random_image

from mmreason.backends import get_backend
from mmreason.serving.openai_server import ServerThread, build_app

CROP = {"type": "function", "function": {"name": "crop", "description": "zoom into a box", "parameters": {
    "type": "object", "properties": {"view_id": {"type": "string"}, "bbox_2d": {"type": "array"}},
    "required": ["view_id", "bbox_2d"]}}}


class ToolCaller:
    """Writes one Hermes tool call (or a plain answer once a tool result came back); records what it saw."""

    name, model_id, native_tools = "scripted", "tool-caller", False

    def __init__(self) -> None:
        self.seen: list[list[dict]] = []

    def generate(self, conversations, **_):
        self.seen.extend(conversations)
        if conversations[0][-1]["role"] == "tool":
            return ["<answer>left</answer>"]
        return ['Let me zoom.\n<tool_call>\n{"name": "crop", "arguments": {"view_id": "V1", '
                '"bbox_2d": [1, 2, 30, 40]}}\n</tool_call>']

    def model_image_size(self, width, height):
        return width, height


def data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    """The tiny Qwen2.5-VL (as ``tiny``) and the tool caller, served together; yields (server, backends)."""
    hf = get_backend("hf", model=str(tiny_model_dir("qwen2_5_vl")))
    caller = ToolCaller()
    with ServerThread(build_app({"tiny": hf, "tool-caller": caller})) as running:
        yield running, {"tiny": hf, "tool-caller": caller}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0].base_url, api_key="unused", max_retries=0, timeout=60)


def image_message(seed: int = 0) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(random_image(64, 48, seed=seed))}},
        {"type": "text", "text": "Which side is the lesion on?"}]}]


def test_plain_completion_with_an_image_matches_the_model(client, server):
    reply = client.chat.completions.create(model="tiny", messages=image_message(), max_tokens=8, temperature=0)
    [choice] = reply.choices
    assert reply.object == "chat.completion" and reply.model == "tiny"
    assert choice.finish_reason in ("stop", "length") and isinstance(choice.message.content, str)
    assert reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens <= 8
    # the same text as the backend gives for the decoded conversation
    hf = server[1]["tiny"]
    image = random_image(64, 48, seed=0).convert("RGB")
    direct = hf.generate([[{"role": "user", "content": [{"type": "image", "image": image},
                                                        {"type": "text", "text": "Which side is the lesion on?"}]}]],
                         max_new_tokens=8, stop=())[0]
    assert direct.startswith(choice.message.content)


def test_streaming_yields_chunks_that_add_up_to_the_reply_then_done(client, server):
    plain = client.chat.completions.create(model="tiny", messages=image_message(1), max_tokens=12)
    stream = client.chat.completions.create(model="tiny", messages=image_message(1), max_tokens=12, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert len(chunks) >= 3 and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason and all(f is None for f in finishes[:-1])
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    # the wire format: server-sent events ending in [DONE]
    connection = http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=60)
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                       "stream": True})
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    events = response.read().decode().strip().split("\n\n")
    assert response.getheader("content-type").startswith("text/event-stream")
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_tool_calls_come_back_structured_and_a_tool_loop_completes(client, server):
    messages = [{"role": "user", "content": "Zoom on the lesion."}]
    reply = client.chat.completions.create(model="tool-caller", messages=messages, tools=[CROP])
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me zoom."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "crop" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"view_id": "V1", "bbox_2d": [1, 2, 30, 40]}
    # the SDK's tool loop: the assistant turn with tool_calls and the tool result go back
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "[E1] crop of V1"}]
    final = client.chat.completions.create(model="tool-caller", messages=messages, tools=[CROP])
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.tool_calls is None
    assert final.choices[0].message.content == "<answer>left</answer>"
    seen = server[1]["tool-caller"].seen[-1]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool"]
    assert '"name": "crop"' in seen[1]["content"][-1]["text"] and seen[2]["content"][0]["text"] == "[E1] crop of V1"
    # streamed, the SDK accumulates the same call
    chunks = list(client.chat.completions.create(model="tool-caller", messages=messages[:1], tools=[CROP],
                                                 stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["crop"] and chunks[-1].choices[0].finish_reason == "tool_calls"
    # without tools= (or tool_choice none) the text comes back as it was written
    raw = client.chat.completions.create(model="tool-caller", messages=messages[:1], tools=[CROP], tool_choice="none")
    assert raw.choices[0].message.tool_calls is None and "<tool_call>" in raw.choices[0].message.content


def test_tool_response_user_turns_of_the_openai_backend_become_tool_messages(server):
    client = get_backend("openai", base_url=server[0].base_url, model="tool-caller")
    conversation = [{"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "text", "text": "<tool_call>{}</tool_call>"}]},
                    {"role": "tool", "content": [{"type": "text", "text": "E1"}]},
                    {"role": "tool", "content": [{"type": "text", "text": "E2"}]}]
    assert client.generate([conversation]) == ["<answer>left</answer>"]
    seen = server[1]["tool-caller"].seen[-1]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool", "tool"]
    assert [m["content"] for m in seen[2:]] == [[{"type": "text", "text": "E1"}], [{"type": "text", "text": "E2"}]]


@pytest.mark.parametrize("kwargs, status, needle", [
    ({"model": "gpt-4o"}, 404, "does not exist"),
    ({"tool_choice": "required", "tools": [CROP]}, 400, "tool_choice='required' is not supported"),
    ({"tool_choice": {"type": "function", "function": {"name": "crop"}}, "tools": [CROP]}, 400, "tool_choice="),
    ({"response_format": {"type": "json_object"}}, 400, "response_format"),
    ({"logprobs": True}, 400, "logprobs=True is not supported"),
    ({"n": 2}, 400, "n > 1"),
    ({"extra_body": {"guided_json": {}}}, 400, "unsupported parameter 'guided_json'"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!notbase64!!"}}]}]}, 400,
     "not a readable base64 image"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"abc").decode()}}]}]},
     400, "not a readable base64 image"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}]}]}, 400, "data URL"),
])
def test_bad_requests_get_4xx_with_a_clear_message(client, kwargs, status, needle):
    request = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2} | kwargs
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**request)
    assert info.value.status_code == status and needle in info.value.message
    if status == 404:
        assert info.value.code == "model_not_found"


def test_ignored_metadata_parameters_are_accepted(client):
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                           user="u1", parallel_tool_calls=False, top_p=1, presence_penalty=0)
    assert reply.choices[0].message.role == "assistant"


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list()] == ["tiny", "tool-caller"]
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.code == "model_not_found"


def test_unknown_routes_are_404_and_keep_the_connection_alive(server):
    connection = http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=30)
    connection.request("POST", "/v1/completions", json.dumps({"prompt": "x" * 5000}),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 404 and "no route POST /v1/completions" in json.loads(response.read())["error"]["message"]
    sock = connection.sock
    connection.request("GET", "/v1/models")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["data"][0]["id"] == "tiny"
    assert connection.sock is sock  # the same TCP connection answered both


def test_cli_serves_the_rules_backend_on_a_free_port():
    process = subprocess.Popen([sys.executable, "-m", "mmreason", "serve", "--backend", "rules", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving mmreason-rules") and "http://127.0.0.1:" in line
        client = openai.OpenAI(base_url=line.split(" at ")[1].strip(), api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["mmreason-rules-v1"]
        messages = [{"role": "system", "content": "Answer with the tools."},
                    {"role": "user", "content": "Question: What is 2 + 2?"}]
        reply = client.chat.completions.create(model="mmreason-rules-v1", messages=messages)
        assert "outside what the rules backend can check" in reply.choices[0].message.content
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_options_the_backend_would_ignore(capsys):
    from mmreason.cli import main

    assert main(["serve", "--backend", "rules", "--max-pixels", "1000"]) == 2
    assert "--max-pixels would do nothing with the rules backend" in capsys.readouterr().err
