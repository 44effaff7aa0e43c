"""VQA-RAD (Lau et al., 2018), from the OSF release.

Layout under the data folder::

    VQA_RAD Dataset Public.json     list of rows: qid, image_name, question, answer,
                                    answer_type (CLOSED/OPEN), question_type, image_organ,
                                    phrase_type (freeform/para for train, test_freeform/test_para)
    VQA_RAD Image Folder/<image_name>

Splits follow the release: ``test`` = rows whose ``phrase_type`` starts with ``test`` (451
questions), ``train`` = the others, ``all`` = every row.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, find_file, find_image, read_json

ANNOTATION = ["VQA_RAD Dataset Public.json", "*/VQA_RAD Dataset Public.json", "VQA_RAD*.json"]
IMAGE_FOLDERS = ["VQA_RAD Image Folder", "VQA_RAD_Image_Folder", "images", "."]


def annotation_files(root: Path, split: str) -> list[Path]:
    return [find_file(root, ANNOTATION, "VQA-RAD annotation file (VQA_RAD Dataset Public.json)")]


def _in_split(row: dict, split: str) -> bool:
    is_test = str(row.get("phrase_type", "")).startswith("test")
    return split == "all" or (split == "test") == is_test


def load(root: Path, split: str = "test", task: str = "vqa_rad") -> list[Case]:
    path = annotation_files(root, split)[0]
    if split not in ("test", "train", "all"):
        raise DatasetError(f"VQA-RAD splits are test, train and all, not '{split}'")
    base = path.parent
    cases = []
    for row in read_json(path):
        if not _in_split(row, split):
            continue
        answer_type = "closed" if str(row["answer_type"]).upper() == "CLOSED" else "open"
        cases.append(Case(
            id=str(row["qid"]), task=task,
            images=[str(find_image(base, row["image_name"], IMAGE_FOLDERS))],
            question=row["question"], answer=str(row["answer"]), answer_type=answer_type,
            subgroups={"answer_type": answer_type, "question_type": str(row.get("question_type", "")),
                       "organ": str(row.get("image_organ", ""))},
            native=row,
        ))
    return cases
