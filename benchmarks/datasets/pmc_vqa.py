"""PMC-VQA (Zhang et al., 2023), from the release CSV files.

Layouts under the data folder::

    test_clean.csv (split ``test``, the cleaned test set), test.csv (``test_full``), train.csv
        columns: Figure_path, Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label
    test_2.csv (split ``test_2``, the file MedEvalKit and other kits evaluate)
        columns: index, Figure_path, Caption, Question, Choice A .. Choice D, Answer (the letter), split
    images/<Figure_path>   (or figures/)

Choices are written "A:text" in the release; the prefix is removed. The reference letter is
``Answer_label`` (or ``Answer`` in test_2.csv; an answer written as an option's text is mapped to
its letter). Rows have no id in the first layout: the id is ``<split>_<row number>``; test_2.csv
ids are ``test_2_<index>``. A file with a header and no rows is a `DatasetError`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, find_file, find_image

SPLITS = {"test": "test_clean.csv", "test_full": "test.csv", "train": "train.csv", "test_2": "test_2.csv"}
_PREFIX = re.compile(r"^\s*[A-D]\s*[:.)]\s*")
REQUIRED = ("Figure_path", "Question", "Choice A", "Choice B")


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DatasetError(f"PMC-VQA splits are {', '.join(SPLITS)}, not '{split}'")
    return [find_file(root, [SPLITS[split], f"*/{SPLITS[split]}"], f"PMC-VQA {SPLITS[split]}")]


def _label(row: dict[str, str], options: list[str]) -> str:
    raw = (row.get("Answer_label") or row.get("Answer") or "").strip()
    letters = "ABCD"[:len(options)]
    if len(raw) == 1 and raw.upper() in letters:
        return raw.upper()
    text = _PREFIX.sub("", raw).strip()
    return letters[options.index(text)] if text in options else ""


def load(root: Path, split: str = "test", task: str = "pmc_vqa") -> list[Case]:
    path = annotation_files(root, split)[0]
    cases = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in [h.strip() for h in reader.fieldnames or []]]
        if missing:
            raise DatasetError(f"{path} is not a PMC-VQA CSV (no column {', '.join(missing)})")
        for i, row in enumerate(reader):
            row = {k.strip(): (v or "") for k, v in row.items() if k is not None}
            options = [_PREFIX.sub("", row[f"Choice {c}"]).strip() for c in "ABCD" if row.get(f"Choice {c}")]
            label = _label(row, options)
            if not label:
                raise DatasetError(f"{path} row {i + 2}: the answer '{row.get('Answer_label') or row.get('Answer')}' "
                                   "is not one of the choices")
            case_id = f"test_2_{row['index'].strip()}" if split == "test_2" and row.get("index") else f"{split}_{i}"
            cases.append(Case(
                id=case_id, task=task,
                images=[str(find_image(path.parent, row["Figure_path"].strip(), ["images", "figures", "."]))],
                question=row["Question"].strip(), answer=label, answer_type="choice", options=options,
                subgroups={"answer_type": "choice"}, native=row,
            ))
    if not cases:
        raise DatasetError(f"{path} has a header and no rows; re-download PMC-VQA's {path.name}")
    return cases
