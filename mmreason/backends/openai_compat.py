"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs).

Plain HTTP with the standard library (no client package). Per conversation one
``POST {base_url}/chat/completions`` request; the conversations of a call run concurrently
(``concurrency`` threads) and come back in order.

How conversations are sent:
- images become base64 PNG data URLs in ``image_url`` content parts, at their original size:
  the server-side processor resizes them. ``model_image_size`` is therefore the identity unless
  ``image_resize`` names the served model's resize rule (``"qwen2_5_vl"``/``"qwen"``: 28 px
  factor, 3136..12845056 pixels; ``"qwen3_vl"``: 32 px factor, 65536..16777216 pixels; override
  with ``min_pixels``/``max_pixels`` to match the server's ``--mm-processor-kwargs``);
- ``role: tool`` messages become user turns wrapped in ``<tool_response>`` tags with their
  images, because OpenAI-style APIs accept images only in user messages and require tool
  messages to answer structured ``tool_calls``, which raw-text tool calls do not have;
- ``tools=`` is passed through when given. ``native_tools`` (default False) tells the loop
  whether to rely on that (servers started with a tool parser, hosted APIs) or to write the tool
  list into the system prompt itself, which works with every server.

How replies come back: OpenAI servers strip the stop string that ended generation. It is put
back when the server says which one it was (vLLM's ``stop_reason``), or, without that, when
``finish_reason == "stop"`` and the text has an unclosed opening tag matching a ``</tag>`` stop
string (``<tool_call>`` without ``</tool_call>``). Structured ``tool_calls`` in the reply are
rendered back into ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` text, so the loop
parses one format whatever the server does.

Several endpoints: ``base_url`` may be a list of servers serving the same model (data-parallel
replicas, e.g. one vLLM per GPU). Each request goes to the live endpoint with the fewest requests
in flight. An endpoint that refuses connections or answers 5xx is set aside for ``cooldown``
seconds and the request is sent again, at once, to another live endpoint (this failover does not
use up a retry); only when every endpoint is down do the retries wait and count. A request is
answered exactly once, so a benchmark loses and duplicates no sample when an endpoint dies.

Errors: 429, 408, 5xx, connection errors and timeouts are retried ``max_retries`` times with
exponential backoff (``backoff`` * 2**attempt seconds plus jitter, or the server's Retry-After);
then, and for any other HTTP error, a ``BackendError`` says what to check.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from typing import Any

from imaging.locate import RESIZE_RULES, ModelFrame
from mmreason.backends.base import (
    BackendError,
    DetailedBackend,
    Generation,
    GenerationConfig,
    content_parts,
    cut_at_stop,
    is_image_part,
    uses_relative_boxes,
    tool_messages_as_user,
)

#: the served families' image rules (`imaging.locate.RESIZE_RULES`); InternVL sends its images as
#: they are and writes relative 0..1000 boxes
IMAGE_RESIZE_CHOICES = tuple(RESIZE_RULES) + ("internvl",)
_RETRY_STATUS = {408, 409, 429}
_MAX_RETRY_AFTER = 60.0


def image_data_url(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (lossless, so the server sees our pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text_of(content: Any) -> str:
    return "".join(part.get("text", "") for part in content_parts(content) if not is_image_part(part))


def to_openai_messages(conversation: list[dict]) -> list[dict]:
    """Chat-format conversation -> OpenAI ``messages`` (images as data URLs, tool turns as user)."""
    messages = []
    for message in tool_messages_as_user(conversation):
        role = message["role"]
        if role in ("system", "assistant"):
            messages.append({"role": role, "content": _text_of(message.get("content"))})
            continue
        parts = []
        for part in content_parts(message.get("content")):
            if is_image_part(part) and "image" in part:
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(part["image"])}})
            elif is_image_part(part):
                parts.append({"type": "image_url", "image_url": part["image_url"]})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        messages.append({"role": role, "content": parts})
    return messages


def tool_calls_as_text(tool_calls: list[dict]) -> str:
    """OpenAI ``tool_calls`` -> Hermes ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks."""
    blocks = []
    for call in tool_calls:
        function = call.get("function", call)
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass  # keep the server's string; the loop's parser reports it as malformed
        payload = json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)
        blocks.append(f"<tool_call>\n{payload}\n</tool_call>")
    return "\n".join(blocks)


def restore_stop(text: str, finish_reason: str | None, stop_reason: Any, stop: tuple[str, ...]) -> str:
    """Put back the stop string the server stripped (see the module doc for the rule)."""
    if finish_reason != "stop":
        return text
    if isinstance(stop_reason, str):
        return text + stop_reason if stop_reason in stop and not text.endswith(stop_reason) else text
    for s in stop:
        if s.startswith("</") and s.endswith(">"):
            opening = "<" + s[2:]
            if text.count(opening) > text.count(s):
                return text + s
    return text


def conversation_seed(seed: int, content_key: int, repeat: int) -> int:
    """The request seed of a conversation: the run's seed, its content's checksum and how many
    identical conversations came before it in the same call, folded into 31 bits."""
    return (seed * 1_000_003 + content_key + repeat * 7919) % 2**31


class OpenAIBackend(DetailedBackend):
    """Generate through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the served model name; None asks the server (``GET /models``) and takes the first.
        base_url: API root including ``/v1``; default a local vLLM/SGLang server. A list spreads
            the requests over several servers of the same model (see the module doc).
        api_key_env: environment variable holding the API key; unset is fine for local servers.
        timeout: seconds to wait for one response before retrying.
        max_retries: retries after the first attempt on 429/408/5xx/connection errors/timeouts.
        concurrency: requests in flight at once within one ``generate`` call.
        backoff: first retry delay in seconds, doubled each retry.
        image_resize: None, ``"qwen"``/``"qwen2_5_vl"``, ``"qwen3_vl"``, ``"gemma3"`` (a fixed
            896x896 square) or ``"internvl"`` (relative boxes): the image rule of the served
            model, used only by ``model_image_size``. Without it a Qwen2.5-VL's pixel boxes are
            taken in the image as sent, which is wrong once the server resizes it.
        box_format: ``"auto"`` (relative 0..1000 boxes when ``image_resize`` is ``"qwen3_vl"`` or
            ``"internvl"``, absolute pixels otherwise), ``"absolute"`` or ``"relative"`` (Qwen2-VL,
            Qwen3-VL, Qwen3.5 served under any rule).
        min_pixels, max_pixels: override the pixel budget of ``image_resize`` (a Qwen rule; give the
            server the same limits with ``--mm-processor-kwargs``). They change the frame boxes
            are read in, so they are refused where they would change nothing: without a Qwen
            ``image_resize``, or with relative boxes.
        cooldown: seconds an endpoint that failed is passed over while others are live.
        native_tools: whether the server renders ``tools=`` (see the module doc).
        extra_body: extra JSON fields merged into every request (e.g. ``{"top_p": 0.9}``).

    A ``seed`` given to ``generate`` is sent per request as `conversation_seed` of the seed and
    the conversation: reproducible whatever the batching, yet repeated prompts in one batch (GRPO
    groups) still sample differently.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | Sequence[str] = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 8,
        backoff: float = 1.0,
        image_resize: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        native_tools: bool = False,
        extra_body: dict | None = None,
        box_format: str = "auto",
        cooldown: float = 5.0,
    ) -> None:
        if image_resize is not None and image_resize not in IMAGE_RESIZE_CHOICES:
            raise BackendError(
                f"image_resize must be one of {', '.join(IMAGE_RESIZE_CHOICES)} or None, got {image_resize!r}"
            )
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise BackendError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise BackendError("base_url is empty; give at least one server URL ending in /v1")
        self.endpoints = [u.rstrip("/") for u in urls]
        self.base_url = self.endpoints[0]
        self.cooldown = cooldown
        self._in_flight = [0] * len(self.endpoints)
        self._down_until = [0.0] * len(self.endpoints)
        self._turn = 0
        self._lock = threading.Lock()
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff = backoff
        self.native_tools = native_tools
        self.extra_body = dict(extra_body or {})
        self._model = model
        self.relative_boxes = uses_relative_boxes(box_format, image_resize)
        self.frame = ModelFrame.from_resize_rule(image_resize, self.relative_boxes, min_pixels, max_pixels)
        qwen_rule = image_resize in RESIZE_RULES and RESIZE_RULES[image_resize].rule == "qwen"
        if (min_pixels is not None or max_pixels is not None) and (not qwen_rule or self.relative_boxes):
            why = ("the boxes are relative (0..1000), whatever the resize" if qwen_rule else
                   "no Qwen image_resize rule is named, so the frame is the image as sent")
            raise BackendError(
                f"min_pixels/max_pixels would change nothing here: {why}. For a Qwen2.5-VL server give "
                "image_resize='qwen2_5_vl' (or 'qwen3_vl' with box_format='absolute') and start the server "
                "with the same limits (vllm serve --mm-processor-kwargs); otherwise drop them"
            )

    @property
    def model_id(self) -> str:
        if self._model is None:
            models = self._request("GET", "/models").get("data") or []
            if not models:
                raise BackendError(f"{self.base_url}/models lists no model; pass model= explicitly")
            self._model = str(models[0]["id"])
        return self._model

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        """The frame of the model's boxes: ``(1000, 1000)`` for relative boxes, else (width,
        height) after the server's resize when ``image_resize`` is set, else unchanged."""
        return self.frame(width, height)

    # -- HTTP ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _http_error(self, url: str, error: urllib.error.HTTPError) -> BackendError:
        body = error.read().decode("utf-8", "replace")[:500]
        hint = {
            401: f"the server rejected the API key: set {self.api_key_env}",
            403: f"the API key in {self.api_key_env} is not allowed to use this model",
            404: "check base_url (it should end in /v1) and the model name (GET /models lists them)",
        }.get(error.code, "see the server's message")
        return BackendError(f"{url} answered HTTP {error.code}: {body}; {hint}")

    def _pick(self, avoid: set[int]) -> int:
        """The live endpoint with the fewest requests in flight (ties in turn), or, when all are
        down, the one that comes back first; ``avoid`` (failed for this request) only if nothing
        else is left."""
        with self._lock:
            now = time.monotonic()
            order = [(i + self._turn) % len(self.endpoints) for i in range(len(self.endpoints))]
            self._turn += 1
            live = [i for i in order if self._down_until[i] <= now and i not in avoid]
            pool = live or [i for i in order if i not in avoid] or order
            choice = min(pool, key=lambda i: (self._down_until[i] > now, self._in_flight[i], self._down_until[i]))
            self._in_flight[choice] += 1
            return choice

    def _release(self, index: int, failed: bool) -> None:
        with self._lock:
            self._in_flight[index] -= 1
            self._down_until[index] = time.monotonic() + self.cooldown if failed else 0.0

    def _live_others(self, failed: set[int]) -> bool:
        now = time.monotonic()
        return any(i not in failed and self._down_until[i] <= now for i in range(len(self.endpoints)))

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        """One JSON request with failover and retries; returns the decoded body."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        last = ""
        failed: set[int] = set()
        attempt = 0
        while True:
            delay = self.backoff * 2**attempt + random.uniform(0, self.backoff)
            index = self._pick(failed)
            base = self.endpoints[index]
            url = base + path
            request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            endpoint_failed = True
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read()
                endpoint_failed = False
                return json.loads(body.decode("utf-8"))
            except urllib.error.HTTPError as error:
                endpoint_failed = error.code >= 500
                if error.code not in _RETRY_STATUS and error.code < 500:
                    raise self._http_error(url, error) from error
                retry_after = error.headers.get("Retry-After", "") if error.headers else ""
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), _MAX_RETRY_AFTER)
                last = f"HTTP {error.code}: {error.read().decode('utf-8', 'replace')[:200]}"
            except json.JSONDecodeError as error:
                raise BackendError(f"{url} did not return JSON ({error}); is base_url an OpenAI API?") from error
            except (OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError):
                    last = (
                        f"no response within {self.timeout:g} s; raise timeout=, lower max_new_tokens "
                        "or check the server's load"
                    )
                else:
                    last = (
                        f"could not connect to {base} ({reason}); is the server running? Start one with "
                        "`vllm serve MODEL` or `mmreason serve --model DIR`"
                    )
            finally:
                self._release(index, endpoint_failed)
            if endpoint_failed:
                failed.add(index)
                if self._live_others(failed):
                    continue  # fail over at once; the retry budget is for when nothing else is up
            if attempt >= self.max_retries:
                break
            attempt += 1
            time.sleep(delay)
        where = self.base_url if len(self.endpoints) == 1 else f"{len(self.endpoints)} endpoints"
        raise BackendError(f"{method} {path} on {where} failed after {self.max_retries + 1} attempt(s): {last}")

    # -- generation ------------------------------------------------------------------------

    def _payload(
        self, conversation: list[dict], tools: list[dict] | None, config: GenerationConfig, seed: int | None
    ) -> dict:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": to_openai_messages(conversation),
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
        }
        if config.stop:
            payload["stop"] = list(config.stop)
        if seed is not None:
            payload["seed"] = seed
        if tools:
            payload["tools"] = [t if "function" in t else {"type": "function", "function": t} for t in tools]
        payload.update(self.extra_body)
        return payload

    def _complete(self, payload: dict, stop: tuple[str, ...]) -> Generation:
        body = self._request("POST", "/chat/completions", payload)
        try:
            choice = body["choices"][0]
        except (KeyError, IndexError, TypeError) as error:
            raise BackendError(f"the server's reply has no choices: {str(body)[:300]}") from error
        message = choice.get("message") or {}
        text = message.get("content") or ""
        finish_reason = choice.get("finish_reason")
        if message.get("tool_calls"):
            text = (text + "\n" if text else "") + tool_calls_as_text(message["tool_calls"])
            finish_reason = "stop"
        else:
            text = restore_stop(text, finish_reason, choice.get("stop_reason"), stop)
        text, stop_string = cut_at_stop(text, stop)
        usage = body.get("usage") or {}
        return Generation(
            text,
            "length" if finish_reason == "length" else "stop",
            stop_string,
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
        )

    def _generate(
        self, conversations: list[list[dict]], tools: list[dict] | None, config: GenerationConfig
    ) -> list[Generation]:
        """One request per conversation, ``concurrency`` at a time.

        With a ``config.seed``, each request's seed is derived from the seed and the conversation
        itself (`conversation_seed`), so a case samples the same whatever batch it runs in or
        whether a run was resumed, while repeated prompts in one batch (GRPO groups) still differ.
        """
        payloads = [self._payload(c, tools, config, None) for c in conversations]
        if config.seed is not None:
            seen: dict[int, int] = {}
            for payload in payloads:
                key = zlib.crc32(json.dumps(payload["messages"], sort_keys=True).encode())
                payload["seed"] = conversation_seed(config.seed, key, seen.get(key, 0))
                seen[key] = seen.get(key, 0) + 1
        if len(payloads) <= 1 or self.concurrency == 1:
            return [self._complete(p, config.stop) for p in payloads]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(payloads))) as pool:
            return list(pool.map(lambda p: self._complete(p, config.stop), payloads))
