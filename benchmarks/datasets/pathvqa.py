"""PathVQA (He et al., 2020), from a local copy of the Hugging Face dataset.

Layout: the hub repository's parquet shards (``data/test-*.parquet``, columns ``image``,
``question``, ``answer``) or a ``datasets.save_to_disk`` folder. Questions whose answer is yes/no
are ``closed``, the rest ``open`` (the published split of PathVQA). The rows have no id: the id
is ``<split>_<row number>`` in file order, stable for a fixed copy.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import ImageStore, annotation_files_hf, hf_rows, yes_no_type


def annotation_files(root: Path, split: str) -> list[Path]:
    return annotation_files_hf(root, split)


def load(root: Path, split: str = "test", task: str = "pathvqa") -> list[Case]:
    store = ImageStore(root, task)
    cases = []
    for i, row in enumerate(hf_rows(root, split)):
        case_id = f"{split}_{i}"
        answer = str(row["answer"])
        answer_type = yes_no_type(answer)
        native = {k: v for k, v in row.items() if k != "image"}
        cases.append(Case(
            id=case_id, task=task, images=[store.put(row["image"], case_id)],
            question=row["question"], answer=answer, answer_type=answer_type,
            subgroups={"answer_type": answer_type}, native=native,
        ))
    return cases
