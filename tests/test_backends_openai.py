"""The ``openai`` backend against real local HTTP servers: the tiny model behind ``mmreason serve``'s
app, and small test-only servers for retries, timeouts, failover and structured tool calls."""

import base64
import io
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from tests.helpers.tiny_models import random_image
from PIL import Image
from qwen_vl_utils import smart_resize

from mmreason.backends import BackendError, Generation, get_backend
from mmreason.backends.openai_compat import restore_stop, to_openai_messages
from mmreason.serving.openai_server import ServerThread, build_app, completion_response


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """The tiny Qwen2.5-VL behind the serve app on a free port; yields (hf backend, base_url)."""
    hf = get_backend("hf", model=str(tiny_model_dir("qwen2_5_vl")))
    with ServerThread(build_app(hf)) as server:
        yield hf, server.base_url


@pytest.fixture
def http_server():
    """Start a test-only handler class on a free port; returns its base URL."""
    started = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def image_question(i: int) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": random_image(90 + 30 * i, 70, seed=i)},
                                         {"type": "text", "text": f"Question {i}: which side?"}]}]


def test_server_answers_like_the_model_itself_with_images_as_base64(served):
    hf, base_url = served
    client = get_backend("openai", base_url=base_url, concurrency=3)
    assert client.model_id == hf.model_id  # discovered through GET /v1/models
    convs = [image_question(i) for i in range(3)]
    direct = hf.generate(convs, max_new_tokens=10, stop=())
    assert client.generate(convs, max_new_tokens=10, stop=()) == direct
    generations = client.generate_detailed(convs, max_new_tokens=10, stop=())
    assert all(g.prompt_tokens > 20 and g.completion_tokens == 10 and g.finish_reason == "length" for g in generations)


def test_stop_string_stripped_by_server_is_restored(served):
    hf, base_url = served
    conv = [image_question(0)]
    full = hf.generate(conv, max_new_tokens=20, stop=())[0]
    stop = full[8:10]
    expected = full[: full.index(stop) + len(stop)]
    client = get_backend("openai", base_url=base_url, model=hf.model_id)
    assert client.generate(conv, max_new_tokens=20, stop=(stop,)) == [expected]

    payload = {"model": hf.model_id, "messages": to_openai_messages(conv[0]), "max_tokens": 20, "stop": [stop]}
    request = urllib.request.Request(base_url + "/chat/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert body["object"] == "chat.completion" and body["model"] == hf.model_id
    [choice] = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": expected[: -len(stop)]}
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", stop)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_server_rejects_remote_image_urls_with_400(served):
    _, base_url = served
    payload = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}]}]}
    request = urllib.request.Request(base_url + "/chat/completions", data=json.dumps(payload).encode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert "data URL" in json.loads(info.value.read())["error"]["message"]


def test_messages_carry_lossless_png_data_urls_and_tool_turns_become_user_turns():
    image = random_image(33, 17, seed=4)
    conv = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<tool_call>{}</tool_call>"}]},
        {"role": "tool", "content": [{"type": "text", "text": "E1"}, {"type": "image", "image": image}]},
    ]
    messages = to_openai_messages(conv)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "sys" and messages[2]["content"] == "<tool_call>{}</tool_call>"
    url = messages[1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
    tool_turn = messages[3]["content"]
    assert tool_turn[0] == {"type": "text", "text": "<tool_response>\n"}
    assert tool_turn[2]["type"] == "image_url" and tool_turn[-1]["text"] == "\n</tool_response>"


class _Slow:
    """A test-only backend: echoes the question after a delay, counting requests in flight."""

    name, model_id, native_tools = "slow", "slow-echo", False

    def __init__(self, delay: float) -> None:
        self.delay, self.in_flight, self.peak = delay, 0, 0
        self.lock = threading.Lock()

    def generate(self, conversations, **_):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        return [c[-1]["content"][-1]["text"] for c in conversations]

    def model_image_size(self, width, height):
        return width, height


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_of_a_batch_run_concurrently_and_keep_their_order(concurrency):
    slow = _Slow(0.25)
    with ServerThread(build_app(slow)) as server:
        client = get_backend("openai", base_url=server.base_url, model="slow-echo", concurrency=concurrency)
        convs = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
        start = time.perf_counter()
        assert client.generate(convs) == ["q0", "q1", "q2", "q3"]
        elapsed = time.perf_counter() - start
    assert slow.peak == concurrency
    assert elapsed < 0.8 if concurrency == 4 else elapsed >= 1.0


def _reply(content: str, **message) -> bytes:
    body = completion_response("m", Generation(content, "stop"))
    body["choices"][0]["message"].update(message)
    return json.dumps(body).encode()


def _handler(statuses: list[int], seen: list[dict], body: bytes = b"", delay: float = 0.0):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            time.sleep(delay)
            status = statuses.pop(0) if statuses else 200
            data = body if status == 200 else json.dumps({"error": {"message": f"busy {status}"}}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

    return Handler


def test_503_is_retried_with_backoff_then_succeeds(http_server):
    seen: list[dict] = []
    url = http_server(_handler([503, 503, 500], seen, _reply("left lung")))
    client = get_backend("openai", base_url=url, model="m", max_retries=3, backoff=0.01)
    assert client.generate([[{"role": "user", "content": "q"}]], seed=7) == ["left lung"]
    assert len(seen) == 4 and isinstance(seen[0]["seed"], int) and seen[0]["stop"] == ["</tool_call>", "</answer>"]
    assert len({r["seed"] for r in seen}) == 1  # retries resend the same request

    seen.clear()
    url = http_server(_handler([503] * 5, seen, _reply("x")))
    client = get_backend("openai", base_url=url, model="m", max_retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=r"failed after 3 attempt\(s\): HTTP 503"):
        client.generate([[{"role": "user", "content": "q"}]])
    assert len(seen) == 3


def test_client_errors_are_not_retried_and_say_what_to_check(http_server):
    seen: list[dict] = []
    url = http_server(_handler([401], seen))
    client = get_backend("openai", base_url=url, model="m", max_retries=3, backoff=0.01, api_key_env="MMR_TEST_KEY")
    with pytest.raises(BackendError, match="HTTP 401.*set MMR_TEST_KEY"):
        client.generate([[{"role": "user", "content": "q"}]])
    assert len(seen) == 1


def test_timeout_is_a_backend_error_with_a_hint(http_server):
    url = http_server(_handler([], [], _reply("late"), delay=1.0))
    client = get_backend("openai", base_url=url, model="m", timeout=0.2, max_retries=0)
    with pytest.raises(BackendError, match=r"no response within 0.2 s; raise timeout="):
        client.generate([[{"role": "user", "content": "q"}]])


def test_unreachable_server_says_how_to_start_one():
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    client = get_backend("openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0)
    with pytest.raises(BackendError, match="could not connect.*mmreason serve --model"):
        client.generate([[{"role": "user", "content": "q"}]])


def test_structured_tool_calls_come_back_as_hermes_text(http_server):
    seen: list[dict] = []
    call = {"id": "c1", "type": "function", "function": {"name": "crop", "arguments": '{"box": [1, 2, 3, 4]}'}}
    url = http_server(_handler([], seen, _reply("", tool_calls=[call])))
    client = get_backend("openai", base_url=url, model="m", native_tools=True)
    tools = [{"name": "crop", "description": "zoom", "parameters": {"type": "object"}}]
    [text] = client.generate([[{"role": "user", "content": "q"}]], tools=tools)
    assert text == '<tool_call>\n{"name": "crop", "arguments": {"box": [1, 2, 3, 4]}}\n</tool_call>'
    assert seen[0]["tools"] == [{"type": "function", "function": tools[0]}]


def test_restore_stop_rules():
    stop = ("</tool_call>", "</answer>")
    assert restore_stop("<tool_call>{}", "stop", "</tool_call>", stop) == "<tool_call>{}</tool_call>"
    assert restore_stop("<answer>left", "stop", None, stop) == "<answer>left</answer>"
    assert restore_stop("<answer>left", "length", None, stop) == "<answer>left"
    assert restore_stop("all done", "stop", None, stop) == "all done"  # EOS, nothing stripped


def test_model_image_size_identity_unless_a_resize_rule_is_named():
    assert get_backend("openai", model="m").model_image_size(1000, 700) == (1000, 700)
    qwen = get_backend("openai", model="m", image_resize="qwen")
    assert qwen.model_image_size(1000, 700) == tuple(reversed(smart_resize(700, 1000, 28, 3136, 12845056)))
    # Qwen3-VL writes boxes in relative 0..1000 coordinates, whatever the resize
    assert get_backend("openai", model="m", image_resize="qwen3_vl").model_image_size(4000, 3000) == (1000, 1000)
    qwen3 = get_backend("openai", model="m", image_resize="qwen3_vl", max_pixels=256 * 32 * 32, box_format="absolute")
    assert qwen3.model_image_size(4000, 3000) == tuple(reversed(smart_resize(3000, 4000, 32, 65536, 262144)))
    assert get_backend("openai", model="m", box_format="relative").model_image_size(640, 480) == (1000, 1000)
    with pytest.raises(BackendError, match="box_format must be one of"):
        get_backend("openai", model="m", box_format="normalised")
    assert get_backend("openai", model="m", image_resize="gemma3").model_image_size(636, 420) == (896, 896)
    assert get_backend("openai", model="m", image_resize="internvl").model_image_size(636, 420) == (1000, 1000)
    with pytest.raises(BackendError, match="image_resize must be one of"):
        get_backend("openai", model="m", image_resize="llava")


def test_request_seeds_follow_the_conversation_not_its_place_in_the_batch(http_server):
    seen: list[dict] = []
    url = http_server(_handler([], seen, _reply("ok")))
    client = get_backend("openai", base_url=url, model="m", concurrency=1)
    a, b = [{"role": "user", "content": "case a"}], [{"role": "user", "content": "case b"}]
    client.generate([b], seed=3)
    alone = seen[-1]["seed"]
    seen.clear()
    client.generate([a, b, b], seed=3)
    seeds = [r["seed"] for r in seen]
    assert seeds[1] == alone  # the same case samples the same in any batch
    assert len(set(seeds)) == 3  # a repeated prompt (a GRPO group) still gets its own seed
    seen.clear()
    client.generate([a], seed=4)
    assert seen[-1]["seed"] != seeds[0]


def test_requests_spread_over_endpoints_and_fail_over_without_using_retries(http_server):
    seen_a: list[dict] = []
    seen_b: list[dict] = []
    url_a = http_server(_handler([], seen_a, _reply("a")))
    url_b = http_server(_handler([], seen_b, _reply("b")))
    client = get_backend("openai", base_url=[url_a, url_b], model="m", concurrency=1)
    # one at a time, every endpoint idle: ties go round in turn
    assert client.generate([[{"role": "user", "content": f"q{i}"}] for i in range(6)]) == ["a", "b"] * 3
    client = get_backend("openai", base_url=[url_a, url_b], model="m", concurrency=4)
    replies = client.generate([[{"role": "user", "content": f"q{i}"}] for i in range(8)])
    assert len(replies) == 8 and {"a", "b"} <= set(replies)  # in flight at once: both endpoints used
    broken: list[dict] = []
    url_down = http_server(_handler([503] * 10, broken, _reply("x")))
    client = get_backend("openai", base_url=[url_down, url_b], model="m", max_retries=0, cooldown=60, concurrency=1)
    assert client.generate([[{"role": "user", "content": "q"}]] * 3) == ["b"] * 3
    assert len(broken) == 1  # tried once, then passed over for the cooldown


def test_pixel_limits_that_would_change_nothing_are_refused():
    with pytest.raises(BackendError, match="no Qwen image_resize rule is named"):
        get_backend("openai", model="m", max_pixels=1003520)
    with pytest.raises(BackendError, match="the boxes are relative"):
        get_backend("openai", model="m", image_resize="qwen3_vl", max_pixels=1003520)
    qwen = get_backend("openai", model="m", image_resize="qwen2_5_vl", max_pixels=256 * 28 * 28)
    assert qwen.model_image_size(1000, 700) == tuple(reversed(smart_resize(700, 1000, 28, 3136, 256 * 28 * 28)))
