"""A small OpenAI-compatible HTTP server around any ``Backend``.

    python -m mmreason.backends.serve --model DIR --port 8000
    mmreason infer --backend openai --base-url http://127.0.0.1:8000/v1 ...

Endpoints: ``POST /v1/chat/completions`` (messages with text and base64 ``image_url`` data-URL
parts, ``tools``, ``max_tokens``/``max_completion_tokens``, ``temperature``, ``seed``, ``stop``)
and ``GET /v1/models``. Replies follow the OpenAI shape: the stop string that ended generation
is stripped from ``content``, ``finish_reason`` is ``"stop"`` or ``"length"`` and, as vLLM does,
``stop_reason`` names the stop string. Requests are answered one ``generate`` call each (the
``hf`` backend serialises them); for throughput use vLLM or SGLang, this server is for tests,
smoke tests and small local models.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mmreason.backends.base import DEFAULT_STOP, Backend, BackendError, Generation, cut_at_stop


class RequestError(BackendError):
    """A request the server cannot answer (HTTP 400); the message goes back to the client."""


def decode_image_url(url: str) -> Any:
    """A ``data:image/...;base64,...`` URL -> PIL image (RGB). Remote URLs are refused."""
    from PIL import Image

    if not url.startswith("data:image") or "base64," not in url:
        raise RequestError("only base64 data URLs (data:image/png;base64,...) are accepted as images")
    data = base64.b64decode(url.split("base64,", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def to_conversation(messages: list[dict]) -> list[dict]:
    """OpenAI ``messages`` -> the chat format backends take (images decoded to PIL)."""
    conversation = []
    for message in messages:
        content = message.get("content")
        parts: list[dict] = []
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                parts.append({"type": "image", "image": decode_image_url(url)})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            else:
                raise RequestError(f"unsupported content part type {part.get('type')!r}")
        converted: dict[str, Any] = {"role": message["role"], "content": parts}
        if message.get("tool_calls"):
            converted["tool_calls"] = message["tool_calls"]
        conversation.append(converted)
    return conversation


def _generate(backend: Backend, conversation: list[dict], request: dict) -> Generation:
    stop = request.get("stop", DEFAULT_STOP)
    stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    options = dict(
        tools=request.get("tools"),
        max_new_tokens=int(request.get("max_completion_tokens") or request.get("max_tokens") or 512),
        temperature=float(request.get("temperature", 0.0) or 0.0),
        seed=request.get("seed"),
        stop=stop,
    )
    detailed = getattr(backend, "generate_detailed", None)
    if detailed is not None:
        return detailed([conversation], **options)[0]
    text, stop_string = cut_at_stop(backend.generate([conversation], **options)[0], stop)
    return Generation(text, "stop", stop_string)


def completion_response(model: str, generation: Generation) -> dict:
    """An OpenAI ``chat.completion`` object for one generation (stop string stripped)."""
    text = generation.text
    if generation.stop_string and text.endswith(generation.stop_string):
        text = text[: -len(generation.stop_string)]
    prompt, completion = generation.prompt_tokens or 0, generation.completion_tokens or 0
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": generation.finish_reason,
                "stop_reason": generation.stop_string,
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                model = {"id": backend.model_id, "object": "model", "owned_by": "mmreason"}
                self._send(200, {"object": "list", "data": [model]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}", "not_found_error")

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}", "not_found_error")
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if int(request.get("n", 1)) != 1:
                    raise RequestError("n > 1 is not supported; send one request per sample")
                generation = _generate(backend, to_conversation(request.get("messages") or []), request)
            except (BackendError, json.JSONDecodeError, KeyError, ValueError) as error:
                self._error(400, str(error), "invalid_request_error")
                return
            except Exception as error:  # report, keep serving
                self._error(500, f"{type(error).__name__}: {error}", "server_error")
                return
            self._send(200, completion_response(backend.model_id, generation))

    return Handler


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving ``backend`` in a daemon thread.

    Args:
        backend: any ``Backend``.
        host, port: where to listen; port 0 picks a free port (read ``server.server_address``).

    Returns:
        The server (call ``shutdown()`` then ``server_close()`` to stop) and its thread.
    """
    server = ThreadingHTTPServer((host, port), _handler(backend))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="mmreason-serve", daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    from mmreason.backends import get_backend

    parser = argparse.ArgumentParser(
        prog="python -m mmreason.backends.serve",
        description="Serve a transformers model through an OpenAI-compatible /v1/chat/completions endpoint.",
    )
    parser.add_argument("--model", required=True, help="checkpoint directory or hub id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-pixels", type=int, default=None)
    parser.add_argument("--max-pixels", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        backend = get_backend(
            "hf", model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
            min_pixels=args.min_pixels, max_pixels=args.max_pixels,
        )
    except BackendError as error:
        parser.exit(2, f"error: {error}\n")
    server, thread = make_server(backend, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {backend.model_id} at http://{host}:{port}/v1", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
