"""`mmreason` command line: a thin dispatcher over `mmreason.commands.*` modules.

Each command module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` (``run(args) -> int``). Errors a user can fix (`MMReasonError`) print one line on
stderr and exit 2; no traceback; the input's file and folder names in it are hidden unless
``--show-paths`` (they often hold a patient's name).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from imaging.errors import MMReasonError

#: command modules under mmreason.commands, in the order shown by --help
COMMANDS = ("inspect", "segment", "measure", "infer", "app", "bench", "train", "serve", "mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmreason", description="Grounded reasoning over medical images.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mmreason.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mmreason.commands.{name}":
                continue  # command not built in this version
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MMReasonError as exc:
        from mmreason.commands.image_args import hide_input_names

        message = " ".join(str(exc).split("\n"))  # one line, whatever a library put in it
        print(f"mmreason {args.command}: error: {hide_input_names(message, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmreason: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
