"""MMMU, medical subjects (Yue et al., 2024), from a local copy of the Hugging Face dataset.

Layout under the data folder: the hub repository's per-subject folders,
``<Subject>/validation-00000-of-00001.parquet`` (or ``<Subject>/`` as a ``save_to_disk``
folder), with columns id, question, options (a Python list written as a string), explanation,
image_1 .. image_7, img_type, answer, topic_difficulty, question_type, subfield.

Only the validation (and dev) split has answers. ``multiple-choice`` rows become ``choice`` cases
(answer = letter); ``open`` rows become ``open`` cases. ``<image k>`` placeholders stay in the
question text; the images are listed in column order.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, ImageStore, annotation_files_hf, enum, hf_rows

SUBJECTS = ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
            "Public_Health")


def _as_list(value: object) -> list:
    """A list column as the hub parquet writes it (a Python list in a string) or as a decoded copy holds it."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise DatasetError(f"MMMU list column {value[:60]!r} is not a Python list") from None
    return list(value)


def annotation_files(root: Path, split: str, subjects: tuple[str, ...] = SUBJECTS) -> list[Path]:
    files = [f for s in subjects for f in annotation_files_hf(root, split, s)]
    if not files:
        raise DatasetError(f"no MMMU files for split '{split}' under {root} (expected <Subject>/{split}-*.parquet "
                           f"for {', '.join(subjects)})")
    return files


def load(root: Path, split: str = "validation", task: str = "mmmu_med",
         subjects: tuple[str, ...] = SUBJECTS) -> list[Case]:
    if split == "test":
        raise DatasetError("MMMU's test answers are not public; use split 'validation' or 'dev'")
    store = ImageStore(root, task)
    cases = []
    for subject in subjects:
        if not annotation_files_hf(root, split, subject):
            continue
        for row in hf_rows(root, split, subject):
            options = _as_list(row.get("options"))
            kind = "choice" if enum(row.get("question_type")) == "multiple-choice" and options else "open"
            images = [store.put(row[f"image_{k}"], f"{row['id']}_{k}") for k in range(1, 8)
                      if row.get(f"image_{k}") is not None]
            img_types = _as_list(row.get("img_type"))
            native = {k: v for k, v in row.items() if not k.startswith("image_")}
            cases.append(Case(
                id=str(row["id"]), task=task, images=images, question=row["question"],
                answer=str(row["answer"]).strip(), answer_type=kind,
                options=[str(o) for o in options] if kind == "choice" else None,
                subgroups={"answer_type": kind, "subject": subject, "subfield": str(row.get("subfield", "")),
                           "img_type": str(img_types[0]) if img_types else ""},
                native=native,
            ))
    if not cases:
        annotation_files(root, split, subjects)  # raises the missing-files error
    return cases
