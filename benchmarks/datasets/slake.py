"""SLAKE (Liu et al., 2021), from the Slake1.0 release.

Layout under the data folder (``Slake1.0/`` prefix optional)::

    train.json / validate.json / test.json   rows: img_id, img_name, question, answer, answer_type
                                             (OPEN/CLOSED), q_lang (en/zh), location, modality,
                                             content_type, base_type, qid
    imgs/<img_name>                          e.g. imgs/xmlab1/source.jpg

``language="en"`` (default) keeps the English questions, as most papers report; ``"zh"`` or
``"all"`` select the others (on the command line: ``--data-option slake.language=zh``). Enum
fields (answer_type, q_lang) are read without case or surrounding space.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, enum, find_file, find_image, read_json

LANGUAGES = ("en", "zh", "all")

SPLITS = {"train": "train.json", "validate": "validate.json", "validation": "validate.json", "test": "test.json"}


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DatasetError(f"SLAKE splits are {', '.join(SPLITS)}, not '{split}'")
    name = SPLITS[split]
    return [find_file(root, [name, f"Slake1.0/{name}", f"*/{name}"], f"SLAKE {name}")]


def load(root: Path, split: str = "test", task: str = "slake", language: str = "en") -> list[Case]:
    language = enum(language)
    if language not in LANGUAGES:
        raise DatasetError(f"SLAKE language must be one of {', '.join(LANGUAGES)}, not '{language}'")
    path = annotation_files(root, split)[0]
    cases = []
    for row in read_json(path):
        if language != "all" and enum(row.get("q_lang")) != language:
            continue
        answer_type = "closed" if enum(row.get("answer_type")) == "closed" else "open"
        cases.append(Case(
            id=str(row["qid"]), task=task,
            images=[str(find_image(path.parent, str(row["img_name"]).strip(), ["imgs", "."]))],
            question=str(row["question"]), answer=str(row["answer"]).strip(), answer_type=answer_type,
            subgroups={"answer_type": answer_type, "modality": str(row.get("modality", "")),
                       "location": str(row.get("location", "")).strip(), "language": enum(row.get("q_lang")),
                       "content_type": str(row.get("content_type", ""))},
            native=row,
        ))
    return cases
