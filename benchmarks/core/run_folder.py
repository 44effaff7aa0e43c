"""The files of a run folder (`benchmarks.core.runner`), read and written so that a kill at any
moment loses at most the case being written: append-only JSONL flushed and fsynced per line, a cut
last line tolerated (and cut off on resume), whole-file rewrites through a temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imaging.errors import MMReasonError
from mmreason.case import Case

from benchmarks.protocols import DEFAULT_PROTOCOL

SAMPLES = "samples_{task}.jsonl"
STEPS = "steps_{task}.jsonl"


class RunError(MMReasonError):
    """The run cannot start or continue as configured."""


def read_jsonl_tolerant(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a truncated or corrupt last line is ignored (and cut off if ``repair``)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good_end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # the last line of a killed write
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good_end += len(line)
    if repair and good_end < len(data):
        with path.open("r+b") as f:
            f.truncate(good_end)
    return rows


class JsonlAppender:
    """Append-only JSONL writer: every line is flushed and fsynced before `write` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = path.open("a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False, default=json_default) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def json_default(obj: Any) -> Any:
    """JSON for arrays (as lists), bytes (their size) and anything else (its ``str``)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (bytes, bytearray)):
        return f"<{len(obj)} bytes>"
    return str(obj)


def case_from_row(row: dict[str, Any]) -> Case:
    """The `Case` a samples line was scored on."""
    return Case.from_dict(dict(row["case"]))


def check_run_dir(run_dir: Path) -> list[Path]:
    """The samples files of a run folder; a `RunError` naming the problem when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} does not exist; give the --out folder of a finished mmreason bench run")
    files = sorted(run_dir.glob("samples_*.jsonl"))
    if not files or not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} is not an mmreason bench run folder (it needs config.json and "
                       "samples_<task>.jsonl); give the --out folder of a run")
    return files


def run_protocol(run_dir: Path) -> str:
    """The protocol a run scores ``correct`` with (``ours`` for runs made before protocols)."""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    return config.get("protocol") or DEFAULT_PROTOCOL


def dedup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the first of each ``id`` kept (a case rerun after a kill may appear twice)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["id"], row)
    return list(seen.values())


def rewrite_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace a JSONL file's rows atomically (written to a temporary file, then renamed)."""
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
