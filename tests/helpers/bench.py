"""Helpers of the benchmark tests: fixture datasets with generated images, and scripted backends.

The fixture folders under ``tests/fixtures/bench/`` hold annotation files in each dataset's
native schema; `materialize` copies one into a temporary folder and writes tiny PNG images where
the annotations point (or, for datasets published as parquet, writes the parquet shards from
``rows.json`` with the images embedded as ``{"bytes", "path"}`` structs, as the hub stores them).

The backends follow the `mmreason.backends.base.Backend` interface and are loaded by the runner
through ``--backend tests.helpers.bench:ScriptedBackend`` (with the repository root, `REPO_DIR`, on
``PYTHONPATH``).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bench"
#: the repository root: on ``PYTHONPATH``, runner subprocesses import ``tests.helpers.bench`` backends
REPO_DIR = Path(__file__).resolve().parents[2]


def png_bytes(seed: int, size: int = 24) -> bytes:
    """A small grayscale PNG with a bright square whose place depends on ``seed``."""
    rng = np.random.default_rng(seed)
    img = (rng.random((size, size)) * 60).astype(np.uint8)
    y, x = rng.integers(2, size - 8, size=2)
    img[y:y + 6, x:x + 6] = 220
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _write_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed))


def _image_names(name: str, root: Path) -> list[Path]:
    if name == "vqa_rad":
        rows = json.loads((root / "VQA_RAD Dataset Public.json").read_text())
        return [root / "VQA_RAD Image Folder" / r["image_name"] for r in rows]
    if name == "slake":
        rows = json.loads((root / "test.json").read_text())
        return [root / "imgs" / r["img_name"] for r in rows]
    if name == "pmc_vqa":
        import csv

        with (root / "test_clean.csv").open() as f:
            return [root / "images" / r["Figure_path"] for r in csv.DictReader(f)]
    if name == "omnimedvqa":
        rows = [r for p in (root / "QA_information" / "Open-access").glob("*.json") for r in json.loads(p.read_text())]
        return [root / r["image_path"] for r in rows]
    if name == "medxpertqa_mm":
        rows = [json.loads(line) for line in (root / "MM" / "test.jsonl").read_text().splitlines() if line.strip()]
        return [root / "images" / n for r in rows for n in r["images"]]
    if name == "medxpertqa_eval":  # the official eval reads images/<image_path> from its eval/ folder
        path = root / "eval" / "data" / "medxpertqa" / "input" / "medxpertqa_mm_input.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [root / "eval" / "images" / i["image_path"] for r in rows for i in r["images"]]
    if name == "pmc_vqa_test2":
        import csv

        with (root / "test_2.csv").open() as f:
            return [root / "figures" / r["Figure_path"] for r in csv.DictReader(f)]
    raise KeyError(name)


def _image_struct(seed: int) -> dict[str, Any]:
    return {"bytes": png_bytes(seed), "path": f"img_{seed}.png"}


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _parquet_dataset(name: str, root: Path) -> None:
    spec = json.loads((root / "rows.json").read_text())
    split = spec["split"]
    seed = 0
    if name in ("pathvqa", "vqa_rad_hub"):
        rows = []
        for r in spec["rows"]:
            seed += 1
            rows.append({"image": _image_struct(seed), **r})
        _write_parquet(rows, root / "data" / f"{split}-00000-of-00001.parquet")
    elif name == "mmmu_med":
        for subject, subject_rows in spec["subjects"].items():
            rows = []
            for r in subject_rows:
                row = dict(r)
                for col in spec["image_columns"]:
                    seed += 1
                    row[col] = _image_struct(seed) if r.get(col) else None
                rows.append(row)
            _write_parquet(rows, root / subject / f"{split}-00000-of-00001.parquet")
    elif name == "medframeqa":
        rows = []
        for r in spec["rows"]:
            frames = []
            for _ in r["image_url"]:
                seed += 1
                frames.append(_image_struct(seed))
            rows.append({**r, spec["image_list_column"]: frames})
        _write_parquet(rows, root / "data" / f"{split}-00000-of-00001.parquet")
    else:
        raise KeyError(name)
    (root / "rows.json").unlink()


def materialize(name: str, dest: Path) -> Path:
    """Copy fixture dataset ``name`` to ``dest/name`` and generate its images; returns the folder."""
    root = dest / name
    shutil.copytree(FIXTURES / name, root)
    if (root / "rows.json").exists():
        _parquet_dataset(name, root)
    else:
        for i, path in enumerate(dict.fromkeys(_image_names(name, root))):
            _write_png(path, i)
    return root


def vqa_rad_many(dest: Path, n: int) -> Path:
    """A VQA-RAD folder (native schema) with ``n`` test questions alternating closed/open."""
    root = dest / "vqa_rad_many"
    rows = []
    for i in range(n):
        closed = i % 2 == 0
        rows.append({"qid": 100 + i, "phrase_type": "test_freeform", "qid_linked_id": f"link-{i}",
                     "image_case_url": "", "image_name": f"synpic{i:05d}.jpg", "image_organ": ["CHEST", "HEAD"][i % 2],
                     "evaluation": "given", "question": f"Question {i}: is there an abnormality?",
                     "question_rephrase": "NULL", "question_relation": "NULL", "question_frame": "NULL",
                     "question_type": "PRES", "answer": "yes" if closed else f"finding {i}",
                     "answer_type": "CLOSED" if closed else "OPEN"})
        _write_png(root / "VQA_RAD Image Folder" / f"synpic{i:05d}.jpg", i)
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(rows))
    return root


class ScriptedBackend:
    """Answers every question at once with ``<answer>yes</answer>`` (a fixed, checkable policy).

    ``delay`` seconds are slept per conversation in each `generate` call (0: instant), so a test
    can kill a run while it is in progress. Each call is recorded in ``calls`` (conversation
    lengths), to check that no conversation carries another case's messages.
    """

    name = "scripted"
    native_tools = False
    #: every instance made in this process, newest last (tests inspect the runner's backend)
    instances: list["ScriptedBackend"] = []

    def __init__(self, model: str | None = None, delay: float = 0.0, answer: str = "yes", **_: Any) -> None:
        self.model_id = model or "scripted-yes"
        self.delay = delay
        self.answer = answer
        self.calls: list[list[int]] = []
        ScriptedBackend.instances.append(self)

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], **_: Any) -> list[str]:
        self.calls.append([len(c) for c in conversations])
        if self.delay:
            time.sleep(self.delay * len(conversations))
        return [f"Looking at the image.\n<answer>{self.answer}</answer>" for _ in conversations]


def SlowBackend(model: str | None = None, **kwargs: Any) -> ScriptedBackend:  # noqa: N802 - a backend factory
    """`ScriptedBackend` that takes 0.25 s per case (for the kill-and-resume test)."""
    return ScriptedBackend(model=model, delay=0.25, **kwargs)
