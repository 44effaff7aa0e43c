"""The ``mmreason`` subcommands: one module per command, each light to import (``SUMMARY`` and
``register(subparsers)``; heavy packages are imported when the command runs). Commands of other
packages of the distribution (``bench``, ``train``) plug in through the ``mmreason.commands`` entry
point group (see `mmreason.cli`)."""

from __future__ import annotations

import re


def plain(doc: str | None) -> str:
    """A module docstring as help text: reStructuredText markup (````code````, ```ref```, ``::``) removed."""
    text = re.sub(r"``([^`]+)``", r"\1", doc or "")
    text = re.sub(r"`([^`]+)`", r"\1", text)
    return re.sub(r"::\n", ":\n", text)
