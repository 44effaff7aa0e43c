"""``mmreason`` command line: a thin dispatcher over command modules.

A command module defines ``SUMMARY`` (its one-line help) and ``register(subparsers)``, which adds
its parser and sets ``func=run`` (``run(args) -> int``). The built-in commands live in
`mmreason.commands`; commands of the distribution's other packages (``bench`` in `benchmarks.cli`,
``train`` in `train.cli`) and of other installed packages are found through the
``mmreason.commands`` entry point group, so `mmreason` never imports the packages built on it.
Only the command being run is imported and registers its options (a built-in one without
scanning the entry points); ``--help`` imports the command modules, which are light, for their
summaries.

Errors a user can fix (`MMReasonError`) print one line on stderr and exit 2; no traceback; the
input's file and folder names in it are hidden unless ``--show-paths`` (they often hold a
patient's name).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from types import ModuleType
from typing import Any

from imaging.errors import MMReasonError

#: command modules of mmreason itself, in the order shown by --help (entry-point commands follow)
BUILTIN = ("inspect", "segment", "measure", "infer", "app", "serve", "mcp")
#: the entry point group other packages register their commands in (``name = "package.module"``)
ENTRY_POINT_GROUP = "mmreason.commands"


@functools.lru_cache(maxsize=1)
def commands() -> dict[str, str]:
    """``{command: module}``: the built-in ones, then those of the ``mmreason.commands`` entry points."""
    from importlib.metadata import entry_points

    found = {name: f"mmreason.commands.{name}" for name in BUILTIN}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.partition(":")[0])
    return found


class _Version(argparse.Action):
    """``--version``, read from the installed distribution only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("mmreason")
        except PackageNotFoundError:
            text = "unknown (not installed; pip install -e .)"
        print(f"mmreason {text}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser. ``command`` None: every command registers its options (for programs that parse
    command lines); a command's name: only that command is there (a built-in one needs no
    entry-point scan); "": every command listed by its summary, none registered (``--help``)."""
    parser = argparse.ArgumentParser(
        prog="mmreason", description="Grounded reasoning over medical images.",
        epilog="Run 'mmreason COMMAND --help' for a command's options. Commands of other installed packages "
               f"come from the '{ENTRY_POINT_GROUP}' entry point group (reinstall with pip install -e . when "
               "one is missing from a source checkout).")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    found = {command: f"mmreason.commands.{command}"} if command in BUILTIN else commands()
    for name, target in found.items():
        if command and name != command:
            continue
        module: ModuleType = importlib.import_module(target)
        if command is None or name == command:
            module.register(sub)
        else:
            sub.add_parser(name, help=module.SUMMARY)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not an option), None when there is none."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    # only the command being run registers its options; none for --help, --version or a mistyped name
    known = command in BUILTIN or command in commands()
    args = build_parser(command if known else "").parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MMReasonError as exc:
        from mmreason.commands.run_args import hide_input_names

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
