"""MedFrameQA (Yu et al., 2025): multi-image (2-5 frames) questions, from a local HF copy.

Layout: the hub repository's parquet shards (``data/test-*.parquet``) or a ``save_to_disk``
folder. Schema assumption (from the dataset card of the published parquet, revision 2787e08 of
``OctoMed/MedFrameQA``): question_id, system, organ, keyword, modality, video_id, question,
options (list of strings), image_url, reasoning_chain, image (list of 2-5 images), image_hash,
answer (the correct option's letter). Earlier copies with ``image_1`` .. ``image_5`` columns
and ``correct_answer`` are read too. An answer given as an option's text is mapped to its letter;
any other answer is an error rather than a guess.
"""

from __future__ import annotations

from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, ImageStore, annotation_files_hf, hf_rows

LETTERS = "ABCDEFGH"


def annotation_files(root: Path, split: str) -> list[Path]:
    return annotation_files_hf(root, split)


def _answer_letter(answer: str, options: list[str], row_id: str) -> str:
    answer = answer.strip()
    if len(answer) == 1 and answer.upper() in LETTERS[:len(options)]:
        return answer.upper()
    if answer in options:
        return LETTERS[options.index(answer)]
    raise DatasetError(f"MedFrameQA question {row_id}: answer '{answer}' is neither an option letter nor an option")


def load(root: Path, split: str = "test", task: str = "medframeqa") -> list[Case]:
    store = ImageStore(root, task)
    cases = []
    for i, row in enumerate(hf_rows(root, split)):
        row_id = str(row.get("question_id") or f"{split}_{i}")
        frames = row.get("image") if isinstance(row.get("image"), list) else \
            [row[f"image_{k}"] for k in range(1, 6) if row.get(f"image_{k}") is not None]
        if not 2 <= len(frames) <= 5:
            raise DatasetError(f"MedFrameQA question {row_id} has {len(frames)} images; expected 2 to 5")
        options = [str(o) for o in row["options"]]
        answer = row.get("answer", row.get("correct_answer"))
        native = {k: v for k, v in row.items() if k != "image" and not k.startswith("image_")}
        cases.append(Case(
            id=row_id, task=task, images=[store.put(img, f"{row_id}_{k}") for k, img in enumerate(frames, 1)],
            question=row["question"], answer=_answer_letter(str(answer), options, row_id),
            answer_type="choice", options=options,
            subgroups={"answer_type": "choice", "system": str(row.get("system", "")),
                       "organ": str(row.get("organ", "")), "modality": str(row.get("modality", "")),
                       "n_images": str(len(frames))},
            native=native,
        ))
    return cases
