"""MedXpertQA, multimodal subset (MM), from the release files.

Layout under the data folder::

    MM/test.jsonl (or MM/dev.jsonl)   one row per line: id, question (with the options written
                                      in it), options {"A": text, ...}, label ("A".."E"), images
                                      [file names], medical_task, body_system, question_type
    images/<file name>                (or MM/images/)
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, find_file, find_image, read_jsonl


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in ("test", "dev"):
        raise DatasetError(f"MedXpertQA splits are test and dev, not '{split}'")
    return [find_file(root, [f"MM/{split}.jsonl", f"{split}.jsonl", f"*/MM/{split}.jsonl"],
                      f"MedXpertQA MM/{split}.jsonl")]


def load(root: Path, split: str = "test", task: str = "medxpertqa_mm") -> list[Case]:
    path = annotation_files(root, split)[0]
    data_root = path.parent.parent if path.parent.name == "MM" else path.parent
    cases = []
    for row in read_jsonl(path):
        letters = sorted(row["options"])
        options = [str(row["options"][k]) for k in letters]
        if row["label"] not in letters:
            raise DatasetError(f"{path.name} {row['id']}: label '{row['label']}' is not an option key")
        images = [str(find_image(data_root, name, ["images", "MM/images", "."])) for name in row["images"]]
        cases.append(Case(
            id=str(row["id"]), task=task, images=images, question=row["question"],
            answer=row["label"], answer_type="choice", options=options,
            subgroups={"answer_type": "choice", "medical_task": str(row.get("medical_task", "")),
                       "body_system": str(row.get("body_system", "")),
                       "question_type": str(row.get("question_type", ""))},
            native=row,
        ))
    return cases
