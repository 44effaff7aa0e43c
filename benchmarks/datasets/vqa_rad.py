"""VQA-RAD (Lau et al., 2018), from the OSF release or the Hugging Face copy.

Layouts under the data folder::

    VQA_RAD Dataset Public.json     the OSF release: rows qid, image_name, question, answer,
                                    answer_type (CLOSED/OPEN), question_type, image_organ,
                                    phrase_type (freeform/para for train, test_freeform/test_para)
    VQA_RAD Image Folder/<image_name>

    data/test-*.parquet             the hub copy (flaviagiammarino/vqa-rad, the id the registry
    data/train-*.parquet            names; or a ``save_to_disk`` folder): image, question, answer

OSF splits follow the release: ``test`` = rows whose ``phrase_type`` starts with ``test`` (451
questions), ``train`` = the others, ``all`` = every row. Enum fields are read without case or
surrounding space ("CLOSED " is closed); answers written as numbers are read as text.

The hub copy has the same 451 test questions but no answer_type: a case is ``closed`` when its
answer is yes/no (251 closed, 200 open, MedEvalKit's split) where the OSF answer_type gives
272/179; ids are ``<split>_<row number>``. The layout is recorded in each case's ``layout``
subgroup so a reader sees which split rule made the closed/open figures.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import (DatasetError, ImageStore, annotation_files_hf, enum, find_file, find_image,
                                        hf_rows, is_hf_saved, read_json, yes_no_type)

ANNOTATION = ["VQA_RAD Dataset Public.json", "*/VQA_RAD Dataset Public.json", "VQA_RAD*.json"]
IMAGE_FOLDERS = ["VQA_RAD Image Folder", "VQA_RAD_Image_Folder", "images", "."]
#: the layouts this loader reads (named in the missing-data messages)
LAYOUT = ("VQA-RAD: the OSF file 'VQA_RAD Dataset Public.json' with 'VQA_RAD Image Folder/', or the hub copy "
        "flaviagiammarino/vqa-rad (data/test-*.parquet)")


def _hub_layout(root: Path, split: str) -> bool:
    return is_hf_saved(root) or bool(annotation_files_hf(root, split))


def annotation_files(root: Path, split: str) -> list[Path]:
    try:
        return [find_file(root, ANNOTATION, "VQA-RAD annotation file (VQA_RAD Dataset Public.json)")]
    except DatasetError:
        if _hub_layout(root, split):
            return annotation_files_hf(root, split)
        raise DatasetError(f"no {LAYOUT} found under {root}; put one there or pass --data vqa_rad=DIR") from None


def _in_split(row: dict, split: str) -> bool:
    is_test = enum(row.get("phrase_type")).startswith("test")
    return split == "all" or (split == "test") == is_test


def load(root: Path, split: str = "test", task: str = "vqa_rad") -> list[Case]:
    files = annotation_files(root, split)
    if files[0].suffix != ".json":
        return _load_hub(root, split, task)
    path = files[0]
    if split not in ("test", "train", "all"):
        raise DatasetError(f"VQA-RAD splits are test, train and all, not '{split}'")
    base = path.parent
    cases = []
    for row in read_json(path):
        if not _in_split(row, split):
            continue
        answer_type = "closed" if enum(row.get("answer_type")) == "closed" else "open"
        cases.append(Case(
            id=str(row["qid"]), task=task,
            images=[str(find_image(base, str(row["image_name"]).strip(), IMAGE_FOLDERS))],
            question=str(row["question"]), answer=str(row["answer"]).strip(), answer_type=answer_type,
            subgroups={"answer_type": answer_type, "question_type": str(row.get("question_type", "")).strip(),
                       "organ": str(row.get("image_organ", "")).strip(), "layout": "osf"},
            native=row,
        ))
    return cases


def _load_hub(root: Path, split: str, task: str) -> list[Case]:
    store = ImageStore(root, task)
    cases = []
    for i, row in enumerate(hf_rows(root, split)):
        case_id = f"{split}_{i}"
        answer = str(row["answer"]).strip()
        answer_type = yes_no_type(answer)
        cases.append(Case(
            id=case_id, task=task, images=[store.put(row["image"], case_id)], question=str(row["question"]),
            answer=answer, answer_type=answer_type, subgroups={"answer_type": answer_type, "layout": "hub"},
            native={k: v for k, v in row.items() if k != "image"},
        ))
    return cases
