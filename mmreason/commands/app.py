"""``mmreason app``: the Gradio web app (open a study, scroll it, ask, watch the reasoning).

The backend, segmenter and loop options (or ``--config FILE``) set what the page starts with.
Binds to 127.0.0.1 (this machine only) unless ``--host`` says otherwise; ``--share`` asks Gradio
for a public link, which exposes the app to anyone who has it: the user's explicit choice.
Needs the ``app`` extra: ``pip install 'mmreason[app]'``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmreason.commands import plain

SUMMARY = "web app: open a study, scroll it, ask a question, watch the reasoning"


def register(subparsers: Any) -> None:
    from mmreason.commands import run_args

    p = subparsers.add_parser("app", help=SUMMARY, description=plain(__doc__.splitlines()[0]))
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also publish a public gradio.live link (off by default)")
    run_args.add_run_arguments(p, loader=False)  # the page's own upload panel reads the study
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmreason.app import launch
    from mmreason.commands.run_args import run_spec_from_args

    if args.host not in ("127.0.0.1", "localhost") or args.share:
        print("[mmreason] warning: the app is reachable beyond this machine; studies uploaded to it are "
              "visible to its host", file=sys.stderr)
    launch(host=args.host, port=args.port, share=args.share, run=run_spec_from_args(args))
    return 0
