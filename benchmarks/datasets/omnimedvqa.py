"""OmniMedVQA (Hu et al., 2024), from the release folder.

Layout under the data folder::

    QA_information/Open-access/<dataset>.json        (and Restricted-access/ when you have it)
        list of rows: dataset, question_id, question_type, question, gt_answer,
        option_A .. option_D (as many as the question has), image_path, modality_type
    Images/...                                       ``image_path`` is relative to the data folder

``gt_answer`` is an option's text; the reference is that option's letter. ``access="open"``
(default) reads Open-access only, ``"all"`` both folders. A few rows name the modality field
``modality`` instead of ``modality_type``; both are read.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, read_json

_ACCESS = {"open": ["Open-access"], "all": ["Open-access", "Restricted-access"]}


def _qa_folder(root: Path) -> Path:
    for base in (root, root / "OmniMedVQA"):
        if (base / "QA_information").is_dir():
            return base
    raise DatasetError(f"no QA_information/ folder under {root}; put the OmniMedVQA release there")


def annotation_files(root: Path, split: str, access: str = "open") -> list[Path]:
    if access not in _ACCESS:
        raise DatasetError(f"OmniMedVQA access must be one of {', '.join(_ACCESS)}, not '{access}'")
    base = _qa_folder(root)
    files = [p for folder in _ACCESS[access] for p in sorted((base / "QA_information" / folder).glob("*.json"))]
    if not files:
        raise DatasetError(f"no QA json files in {base / 'QA_information'} ({', '.join(_ACCESS[access])})")
    return files


def load(root: Path, split: str = "test", task: str = "omnimedvqa", access: str = "open") -> list[Case]:
    base = _qa_folder(root)
    cases = []
    for path in annotation_files(root, split, access):
        for row in read_json(path):
            options = [str(row[f"option_{c}"]).strip() for c in "ABCDEFGH" if row.get(f"option_{c}") not in (None, "")]
            gt = str(row["gt_answer"]).strip()
            if gt not in options:
                raise DatasetError(f"{path.name} question {row['question_id']}: gt_answer is not among the options")
            image = base / str(row["image_path"]).strip()
            if not image.exists():
                raise DatasetError(f"image {row['image_path']} of question {row['question_id']} not found under {base}")
            cases.append(Case(
                id=str(row["question_id"]), task=task, images=[str(image)],
                question=row["question"], answer="ABCDEFGH"[options.index(gt)], answer_type="choice",
                options=options,
                subgroups={"answer_type": "choice",
                           "modality": str(row.get("modality_type", row.get("modality", ""))),
                           "question_type": str(row.get("question_type", "")),
                           "dataset": str(row.get("dataset", path.stem))},
                native=row,
            ))
    return cases
