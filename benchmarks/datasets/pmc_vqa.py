"""PMC-VQA (Zhang et al., 2023), from the release CSV files.

Layout under the data folder::

    test_clean.csv (default, the cleaned test set) or test.csv / train.csv
        columns: Figure_path, Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label
        (choices are written "A:text"; the prefix is removed)
    images/<Figure_path>   (or figures/)

Splits: ``test`` (test_clean.csv), ``test_full`` (test.csv), ``train``. Rows have no id: the id
is ``<split>_<row number>``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, find_file, find_image

SPLITS = {"test": "test_clean.csv", "test_full": "test.csv", "train": "train.csv"}
_PREFIX = re.compile(r"^\s*[A-D]\s*[:.)]\s*")


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DatasetError(f"PMC-VQA splits are {', '.join(SPLITS)}, not '{split}'")
    return [find_file(root, [SPLITS[split], f"*/{SPLITS[split]}"], f"PMC-VQA {SPLITS[split]}")]


def load(root: Path, split: str = "test", task: str = "pmc_vqa") -> list[Case]:
    path = annotation_files(root, split)[0]
    cases = []
    with path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            row = {k.strip(): (v or "") for k, v in row.items() if k is not None}
            options = [_PREFIX.sub("", row[f"Choice {c}"]).strip() for c in "ABCD" if row.get(f"Choice {c}")]
            label = row["Answer_label"].strip().upper()
            if label not in "ABCD"[:len(options)] or not label:
                raise DatasetError(f"{path} row {i + 2}: Answer_label '{label}' is not one of the choices")
            case_id = f"{split}_{i}"
            cases.append(Case(
                id=case_id, task=task,
                images=[str(find_image(path.parent, row["Figure_path"], ["images", "figures", "."]))],
                question=row["Question"].strip(), answer=label, answer_type="choice", options=options,
                subgroups={"answer_type": "choice"}, native=row,
            ))
    return cases
