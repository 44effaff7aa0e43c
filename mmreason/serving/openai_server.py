"""An OpenAI-compatible chat-completions server around any ``Backend``, on FastAPI + uvicorn.

    mmreason serve --model DIR --port 8000                # a local checkpoint (hf backend)
    mmreason serve --backend rules                        # the weight-free planner
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``. Any other route is a 404 in the OpenAI error shape; the connection stays usable.

Requests:
- ``messages``: text and ``image_url`` parts (base64 ``data:image/...`` URLs only; a remote URL or
  undecodable data is a 400), assistant ``tool_calls`` (rendered back as ``<tool_call>`` text for
  the model), ``role: tool`` messages, and the ``<tool_response>`` user turns the ``openai``
  backend sends (turned back into tool messages, so the ``rules`` backend reads its tool results).
- ``model`` must name a served model (``/v1/models``), else 404 ``model_not_found``.
- ``max_tokens``/``max_completion_tokens``, ``temperature``, ``seed``, ``stop``, ``n`` (1 only),
  ``stream`` and ``stream_options.include_usage``, ``tools``.
- ``tool_choice``: ``"auto"`` (default with tools) or ``"none"`` (tools neither shown nor parsed).
  ``"required"`` and a named function are a 400: the model cannot be forced to call.
- ``response_format`` ``{"type": "text"}`` only; ``logprobs``/``top_logprobs`` only false/absent
  (the backends do not return token log-probabilities); ``top_p`` 1, ``frequency_penalty`` and
  ``presence_penalty`` 0 only. Anything else is a 400 naming the parameter.
- Ignored, as metadata: ``user``, ``metadata``, ``store``, ``service_tier``,
  ``parallel_tool_calls`` (all the calls a turn makes are returned).

Replies: a stop string the request gave that ended generation is stripped from ``content`` and
named in ``stop_reason`` (as vLLM does). Without ``stop``, the turn ends at the loop's own stop
strings (``</tool_call>``, ``</answer>``) and they stay in the text, so a turn reads whole. With ``tools=`` and a turn whose ``<tool_call>`` blocks parse
(`mmreason.parsing.parse_tool_calls`), they come back as structured ``tool_calls``, ``content``
holds the text before them (None when empty) and ``finish_reason`` is ``"tool_calls"``.

Streaming (``stream=True``): server-sent events of ``chat.completion.chunk`` objects, then
``data: [DONE]``. The backends generate a turn whole, so the chunks arrive when the turn is done
(role, the content in pieces, the tool calls, the finish reason; a usage chunk when asked): the
wire format of streaming, not token-by-token latency.

Requests run in a thread pool; the ``hf`` backend answers one at a time. For throughput serve the
checkpoint with vLLM or SGLang (docs/serving.md) or start several servers (``bench`` spreads
requests over them).
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (``Request``,
# imported lazily inside `build_app`) at runtime.
import base64
import binascii
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from imaging.errors import MMReasonError
from mmreason.backends.base import DEFAULT_STOP, Backend, BackendError, Generation, content_parts, cut_at_stop

#: parameters accepted and ignored (metadata that does not change the reply)
IGNORED = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls"})
#: parameters accepted only at their neutral value (the backends do not implement them)
NEUTRAL: dict[str, Any] = {"top_p": 1, "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False,
                           "top_logprobs": 0, "logit_bias": {}}
SUPPORTED = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed", "stop",
                       "n", "stream", "stream_options", "tools", "tool_choice", "response_format"})
_RESPONSE_OPEN = "<tool_response>\n"
_RESPONSE_CLOSE = "\n</tool_response>"


class RequestError(BackendError):
    """A request the server cannot answer; ``status`` (400, 404) and ``code`` go back to the client."""

    def __init__(self, message: str, status: int = 400, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def _install_hint(error: ImportError) -> BackendError:
    return BackendError(f"mmreason serve needs FastAPI and uvicorn ({error}); pip install 'mmreason[serve]'")


# --------------------------------------------------------------------------- requests in

def decode_image_url(url: str) -> Any:
    """A ``data:image/...;base64,...`` URL -> PIL image (RGB); anything else is a `RequestError`."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:image") or "base64," not in url:
        raise RequestError("only base64 data URLs (data:image/png;base64,...) are accepted as images", param="messages")
    try:
        data = base64.b64decode(url.split("base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as error:
        raise RequestError(f"an image_url is not a readable base64 image ({error})", param="messages") from None


def _parts(content: Any) -> list[dict]:
    parts: list[dict] = []
    for part in content_parts(content):
        if not isinstance(part, dict):
            raise RequestError("content parts must be objects with a 'type'", param="messages")
        if part.get("type") == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url or "")
            parts.append({"type": "image", "image": decode_image_url(url)})
        elif part.get("type") == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        else:
            raise RequestError(f"unsupported content part type {part.get('type')!r}; use text or image_url",
                               param="messages")
    return parts


def _split_tool_responses(parts: list[dict]) -> list[list[dict]] | None:
    """The blocks of a user turn made only of ``<tool_response>`` blocks (what
    `mmreason.backends.base.tool_messages_as_user` writes), None for any other user turn."""
    blocks: list[list[dict]] = []
    current: list[dict] | None = None
    for part in parts:
        text = part.get("text") if part.get("type") == "text" else None
        if current is None:
            if text == _RESPONSE_OPEN:
                current = []
            elif text != "\n":
                return None
        elif text == _RESPONSE_CLOSE:
            blocks.append(current)
            current = None
        else:
            current.append(part)
    return blocks if blocks and current is None else None


def to_conversation(messages: Any) -> list[dict]:
    """OpenAI ``messages`` -> the chat format backends take (images decoded to PIL)."""
    from mmreason.backends.openai_compat import tool_calls_as_text

    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    conversation: list[dict] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise RequestError(f"each message needs a role of system, user, assistant or tool, got {role!r}",
                               param="messages")
        parts = _parts(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            text = tool_calls_as_text(message["tool_calls"])
            parts.append({"type": "text", "text": ("\n" if parts else "") + text})
        if role == "user" and (blocks := _split_tool_responses(parts)) is not None:
            conversation += [{"role": "tool", "content": block} for block in blocks]
            continue
        conversation.append({"role": "system" if role == "developer" else role, "content": parts})
    return conversation


def check_parameters(request: dict) -> None:
    """Refuse what the server cannot honour (see the module doc), naming the parameter."""
    for key, value in request.items():
        if key in SUPPORTED or key in IGNORED:
            continue
        if key in NEUTRAL:
            if value is None or value == NEUTRAL[key]:
                continue
            raise RequestError(f"{key}={value!r} is not supported: the backends do not implement it; "
                               f"drop it or send {NEUTRAL[key]!r}", param=key)
        raise RequestError(f"unsupported parameter {key!r}; see GET /v1/models and the mmreason serve docs "
                           "for the parameters this server takes", param=key)
    choice = request.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise RequestError(f"tool_choice={choice!r} is not supported: the model decides whether to call a tool; "
                           "send 'auto' or 'none'", param="tool_choice")
    fmt = request.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise RequestError("response_format other than {'type': 'text'} is not supported (no constrained "
                           "decoding); ask for JSON in the prompt instead", param="response_format")
    if int(request.get("n") or 1) != 1:
        raise RequestError("n > 1 is not supported; send one request per sample", param="n")
    tools = request.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise RequestError("tools must be a list of {'type': 'function', 'function': {...}} objects", param="tools")


# --------------------------------------------------------------------------- replies out

def _generate(backend: Backend, conversation: list[dict], request: dict) -> Generation:
    stop = request.get("stop", DEFAULT_STOP)
    stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    tools = request.get("tools") if request.get("tool_choice") != "none" else None
    try:
        options = dict(
            tools=tools,
            max_new_tokens=int(request.get("max_completion_tokens") or request.get("max_tokens") or 512),
            temperature=float(request.get("temperature") or 0.0),
            seed=None if request.get("seed") is None else int(request["seed"]),
            stop=stop,
        )
    except (TypeError, ValueError) as error:
        raise RequestError(f"bad sampling parameter: {error}") from None
    detailed = getattr(backend, "generate_detailed", None)
    if detailed is not None:
        generation = detailed([conversation], **options)[0]
    else:
        text, stop_string = cut_at_stop(backend.generate([conversation], **options)[0], stop)
        generation = Generation(text, "stop", stop_string)
    return generation if "stop" in request else replace(generation, stop_string=None)


def reply_message(generation: Generation, tools: list[dict] | None) -> tuple[dict, str]:
    """The assistant ``message`` and ``finish_reason`` of a generation (see the module doc)."""
    from mmreason.parsing import parse_tool_calls, strip_think

    text = generation.text
    if generation.stop_string and text.endswith(generation.stop_string):
        text = text[: -len(generation.stop_string)]
    if tools:
        calls = parse_tool_calls(generation.text, tools)
        if calls and all(c.error is None and c.name for c in calls):
            before = strip_think(generation.text).split("<tool_call>", 1)[0].strip()
            tool_calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                           "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                          for c in calls]
            return {"role": "assistant", "content": before or None, "tool_calls": tool_calls}, "tool_calls"
    return {"role": "assistant", "content": text}, generation.finish_reason


def _usage(generation: Generation) -> dict[str, int]:
    prompt, completion = generation.prompt_tokens or 0, generation.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_response(model: str, generation: Generation, tools: list[dict] | None = None) -> dict:
    """An OpenAI ``chat.completion`` object for one generation."""
    message, finish_reason = reply_message(generation, tools)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                     "stop_reason": generation.stop_string, "logprobs": None}],
        "usage": _usage(generation),
    }


def completion_chunks(model: str, generation: Generation, tools: list[dict] | None, include_usage: bool,
                      piece: int = 16) -> Iterator[dict]:
    """The ``chat.completion.chunk`` objects of one generation, in streaming order."""
    message, finish_reason = reply_message(generation, tools)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return body | ({"usage": None} if include_usage else {})

    yield chunk({"role": "assistant", "content": ""})
    content = message.get("content") or ""
    for start in range(0, len(content), piece):
        yield chunk({"content": content[start:start + piece]})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, finish_reason)
    if include_usage:
        yield {**head, "choices": [], "usage": _usage(generation)}


# --------------------------------------------------------------------------- the app

def _error_body(message: str, kind: str, code: str | int | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def build_app(backends: Backend | dict[str, Backend]) -> Any:
    """The FastAPI application serving ``backends`` (one, or ``{served name: backend}``).

    The first is the default when a request names no model.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.concurrency import run_in_threadpool
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, StreamingResponse
        from starlette.exceptions import HTTPException
    except ImportError as error:
        raise _install_hint(error) from error

    served = backends if isinstance(backends, dict) else {backends.model_id: backends}
    if not served:
        raise BackendError("build_app needs at least one backend")
    created = int(time.time())
    app = FastAPI(title="mmreason", description="OpenAI-compatible chat completions", docs_url=None, redoc_url=None)

    def model_card(name: str) -> dict:
        return {"id": name, "object": "model", "created": created, "owned_by": "mmreason",
                "backend": getattr(served[name], "name", "custom")}

    @app.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        kind = "invalid_request_error" if error.status == 400 else "not_found_error"
        return JSONResponse(_error_body(str(error), kind, error.code or error.status, error.param), error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = f"no route {request.method} {request.url.path}" if error.status_code == 404 else str(error.detail)
        return JSONResponse(_error_body(message, "not_found_error" if error.status_code == 404 else "invalid_request_error",
                                        error.status_code), error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(_error_body(f"invalid request: {error.errors()}", "invalid_request_error", 400), 400)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [model_card(name) for name in served]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict:
        if model_id not in served:
            raise RequestError(f"the model {model_id!r} does not exist; served: {', '.join(served)}", 404,
                               "model_not_found", "model")
        return model_card(model_id)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(f"the body is not JSON ({error})") from None
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object")
        name = body.get("model") or next(iter(served))
        if name not in served:
            raise RequestError(f"the model {name!r} does not exist; served: {', '.join(served)} (GET /v1/models)",
                               404, "model_not_found", "model")
        check_parameters(body)
        conversation = to_conversation(body.get("messages"))
        backend = served[name]
        try:
            generation = await run_in_threadpool(_generate, backend, conversation, body)
        except RequestError:
            raise
        except MMReasonError as error:
            raise RequestError(str(error)) from None
        except Exception as error:  # report, keep serving
            return JSONResponse(_error_body(f"{type(error).__name__}: {error}", "server_error", 500), 500)
        tools = body.get("tools") if body.get("tool_choice") != "none" else None
        if not body.get("stream"):
            return completion_response(name, generation, tools)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[str]:
            for chunk in completion_chunks(name, generation, tools, include_usage):
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


# --------------------------------------------------------------------------- running it

def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0 picks a free one: read ``getsockname()``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _server(app: Any) -> Any:
    try:
        import uvicorn
    except ImportError as error:
        raise _install_hint(error) from error
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30))


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until interrupted (what ``mmreason serve`` runs)."""
    _server(app).run(sockets=[sock])


class ServerThread:
    """``app`` served by uvicorn in a daemon thread on 127.0.0.1 (tests, benchmarks)::

        with ServerThread(build_app(backend)) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._server = _server(app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="mmreason-serve", daemon=True)

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise BackendError(f"the server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()
