"""``mmreason mcp``: the grounding tools (open a study, view, crop, segment, measure) as an MCP server.

    mmreason mcp                                   # stdio, for agents that launch the server
    mmreason mcp --transport http --port 8765      # streamable HTTP at http://127.0.0.1:8765/mcp

See `mmreason.serving.mcp_server` for the tools and what their results hold.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmreason.commands import plain

SUMMARY = "serve the grounding tools over the Model Context Protocol"


def register(subparsers: Any) -> None:
    from mmreason.commands.run_args import add_config_argument, add_segmenter_arguments

    p = subparsers.add_parser("mcp", help=SUMMARY,
                              description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (default) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="http: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="http: port (default 8765; 0 picks a free one)")
    add_config_argument(p)
    add_segmenter_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmreason.commands.run_args import run_spec_from_args
    from mmreason.serving.mcp_server import Studies, build_server, http_app, run_stdio

    spec = run_spec_from_args(args)
    studies = Studies(spec.registry(), spec.segmenter.name, spec.segmenter.tool_options())
    server = build_server(studies)
    if args.transport == "stdio":
        run_stdio(server)
        return 0
    from mmreason.serving.openai_server import bind, serve

    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"MCP (streamable HTTP) at http://{host}:{port}/mcp", flush=True)
    print("[mmreason] stop with Ctrl-C", file=sys.stderr, flush=True)
    serve(http_app(server, host), sock)
    return 0
