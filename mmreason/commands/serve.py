"""``mmreason serve``: an OpenAI-compatible chat-completions server for a local checkpoint or the rules backend.

Examples::

    mmreason serve --model /ckpt/qwen2_5_vl-sft --port 8000           # hf backend
    mmreason serve --backend rules                                    # weight-free planner
    mmreason serve --model DIR --served-model-name radiology-vl --max-pixels 1003520

Any OpenAI client then talks to ``http://HOST:PORT/v1`` (see `mmreason.serving.openai_server` for
the parameters taken, refused and ignored). The address is printed on stdout once the socket
listens (``--port 0`` picks a free port). For throughput serve the checkpoint with vLLM
(docs/serving.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmreason.commands import plain

SUMMARY = "serve a backend through an OpenAI-compatible HTTP API"


def register(subparsers: Any) -> None:
    from mmreason.commands.run_args import add_backend_arguments, add_config_argument

    p = subparsers.add_parser("serve", help=SUMMARY,
                              description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(p)
    add_backend_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--served-model-name", help="the model name clients send (default: the backend's model id)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmreason.commands.run_args import BackendOptionError, run_spec_from_args
    from mmreason.serving.openai_server import bind, build_app, serve

    spec = run_spec_from_args(args)
    name, _ = spec.backend.resolve()
    if name == "openai":
        raise BackendOptionError("serving the openai backend would only proxy another server; "
                                 "serve a checkpoint (--model DIR) or --backend rules")
    backend = spec.build_backend()
    app = build_app({args.served_model_name or backend.model_id: backend})
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"serving {args.served_model_name or backend.model_id} ({name}) at http://{host}:{port}/v1", flush=True)
    print("[mmreason] stop with Ctrl-C", file=sys.stderr, flush=True)
    serve(app, sock)
    return 0
