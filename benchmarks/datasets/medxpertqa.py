"""MedXpertQA, multimodal subset (MM), in either published layout.

Layouts under the data folder::

    MM/test.jsonl (or MM/dev.jsonl)      the Hugging Face release: one row per line: id, question
                                         (with the options written in it), options {"A": text, ...},
                                         label ("A".."E"), images [file names], medical_task,
                                         body_system, question_type
    medxpertqa_mm_input.jsonl            the official repository's eval input
    (or eval/data/medxpertqa/input/...)  (TsinghuaC3I/MedXpertQA): options [{"letter", "content"}],
                                         label ["A"], images [{"image_path"}]; test split only
    images/<file name>                   (or MM/images/, or next to the annotation file)

Both layouts give the same cases. A row that fits neither is a `DatasetError` naming the file,
the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, find_file, find_image, read_jsonl

EVAL_INPUT = "medxpertqa_mm_input.jsonl"


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in ("test", "dev"):
        raise DatasetError(f"MedXpertQA splits are test and dev, not '{split}'")
    candidates = [f"MM/{split}.jsonl", f"{split}.jsonl", f"*/MM/{split}.jsonl"]
    if split == "test":
        candidates += [EVAL_INPUT, f"input/{EVAL_INPUT}", f"eval/data/medxpertqa/input/{EVAL_INPUT}",
                       f"**/{EVAL_INPUT}"]
    return [find_file(root, candidates, f"MedXpertQA MM/{split}.jsonl or {EVAL_INPUT}")]


def _options(raw: Any) -> dict[str, str]:
    """``{"A": text}`` from either layout's options."""
    if isinstance(raw, dict):
        return {str(k).strip().upper(): str(v) for k, v in raw.items()}
    if isinstance(raw, list) and all(isinstance(o, dict) and "letter" in o and "content" in o for o in raw):
        return {str(o["letter"]).strip().upper(): str(o["content"]) for o in raw}
    raise ValueError('options must be {"A": text, ...} or [{"letter": "A", "content": text}, ...]')


def _label(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if not isinstance(raw, str):
        raise ValueError('label must be a letter ("A") or a one-letter list (["A"])')
    return raw.strip().upper()


def _image_names(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise ValueError('images must be a list of file names or of {"image_path": name}')
    names = []
    for item in raw:
        name = item.get("image_path") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise ValueError('images must be a list of file names or of {"image_path": name}')
        names.append(name)
    return names


def load(root: Path, split: str = "test", task: str = "medxpertqa_mm") -> list[Case]:
    path = annotation_files(root, split)[0]
    data_root = path.parent.parent if path.parent.name in ("MM", "input") else path.parent
    folders = ["images", "MM/images", "../images", "../../images", "."]
    cases = []
    for line, row in enumerate(read_jsonl(path), 1):
        try:
            options = _options(row["options"])
            label = _label(row["label"])
            names = _image_names(row.get("images", []))
            question = str(row["question"])
            case_id = str(row["id"])
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DatasetError(f"{path}:{line} is not a MedXpertQA row ({what}); expected the MM/{split}.jsonl "
                               f"or the {EVAL_INPUT} layout") from None
        letters = sorted(options)
        if label not in letters:
            raise DatasetError(f"{path}:{line} ({case_id}): label '{label}' is not an option letter ({', '.join(letters)})")
        images = [str(find_image(data_root, name, folders).resolve()) for name in names]
        cases.append(Case(
            id=case_id, task=task, images=images, question=question,
            answer=label, answer_type="choice", options=[options[k] for k in letters],
            subgroups={"answer_type": "choice", "medical_task": str(row.get("medical_task", "")).strip(),
                       "body_system": str(row.get("body_system", "")).strip(),
                       "question_type": str(row.get("question_type", "")).strip()},
            native=row,
        ))
    return cases
