"""M3D-VQA (Bai et al., 2024; M3D-Bench), closed (multiple choice) and open, from the release CSVs.

Layout under the data folder (the hub's ``GoodBaiBai88/M3D-VQA`` files next to M3D's
``--data_root``)::

    M3D_VQA_test.csv   (or M3D-VQA/M3D_VQA_test.csv; splits test, test5k, val, train)
        columns: Image Path, Text, Question Type, Question, Choice A, Choice B, Choice C, Choice D,
                 Answer, Answer Choice
    <Image Path>       the volume, relative to the data folder (or to M3D_Cap_npy/ in it): a
                       ``(1, 32, 256, 256)`` .npy array normalised to 0..1, made from M3D-Cap's
                       slices by M3D's ``m3d_cap_data_prepare.py``

The same rows give two tasks: ``m3d_vqa_closed`` (the question with its four choices; the
reference is ``Answer Choice``) and ``m3d_vqa_open`` (the question alone; the reference is
``Answer``). ``Question Type`` 1-5 are the generator's five aspects: plane, phase (CT phase or
window), organ, abnormality, location. The ``Text`` column is the report the question was made
from: it is kept out of the question (it holds the answer).

Scoring differs from the official script on purpose: M3D counts a closed answer correct when
``"<letter>."`` occurs anywhere in the output, and scores open answers by BLEU-1, ROUGE-1,
METEOR and BERTScore; here the protocol's extraction cascade reads the letter, and open answers
get our open-answer rule and token recall (`benchmarks.core.scoring`).

The volumes carry no spacing, orientation or HU: `imaging.io.npy` reads them with 1 mm assumed,
and every measurement on them says so.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, enum, find_file

LAYOUT = ("M3D-VQA's M3D_VQA_test.csv (huggingface-cli download GoodBaiBai88/M3D-VQA --repo-type dataset "
          "--local-dir DIR) with the M3D-Cap volumes as .npy files at each row's 'Image Path' under DIR "
          "(M3D-Cap, preprocessed with M3D's Data/process/m3d_cap_data_prepare.py)")
SPLITS = {"test": "M3D_VQA_test.csv", "test5k": "M3D_VQA_test5k.csv", "val": "M3D_VQA_val.csv",
          "train": "M3D_VQA_train.csv"}
MODES = ("closed", "open")
QUESTION_TYPES = {"1": "plane", "2": "phase", "3": "organ", "4": "abnormality", "5": "location"}
REQUIRED = ("Image Path", "Question Type", "Question", "Choice A", "Choice B", "Choice C", "Choice D", "Answer",
            "Answer Choice")
LETTERS = "ABCD"


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DatasetError(f"M3D-VQA splits are {', '.join(SPLITS)}, not '{split}'")
    name = SPLITS[split]
    return [find_file(root, [name, f"M3D-VQA/{name}", f"*/{name}"], f"M3D-VQA {name}")]


def _volume(root: Path, csv_dir: Path, rel: str) -> Path | None:
    for base in (root, root / "M3D_Cap_npy", csv_dir, csv_dir.parent):
        path = base / rel
        if path.is_file():
            return path
    return None


def load(root: Path, split: str = "test", task: str = "m3d_vqa_closed", mode: str = "closed") -> list[Case]:
    mode = enum(mode)
    if mode not in MODES:
        raise DatasetError(f"M3D-VQA mode must be closed or open, not '{mode}'")
    path = annotation_files(root, split)[0]
    cases, missing = [], []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        absent = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if absent:
            raise DatasetError(f"{path} is not an M3D-VQA file: no column {', '.join(absent)} (columns: "
                               f"{', '.join(reader.fieldnames or [])})")
        for i, row in enumerate(reader):
            rel = (row["Image Path"] or "").strip()
            volume = _volume(root, path.parent, rel) if rel else None
            if volume is None:
                missing.append(rel or f"(row {i + 2} has no Image Path)")
                continue
            kind = str(row["Question Type"]).strip()
            qtype = QUESTION_TYPES.get(kind.split(".")[0], kind)
            if mode == "closed":
                letter = enum(row["Answer Choice"]).upper()
                if letter not in LETTERS:
                    raise DatasetError(f"{path}:{i + 2}: Answer Choice '{row['Answer Choice']}' is not A-D")
                options = [str(row[f"Choice {k}"]).strip() for k in LETTERS]
                answer, answer_type = letter, "choice"
            else:
                options, answer, answer_type = None, str(row["Answer"]).strip(), "open"
            cases.append(Case(
                id=f"{split}_{i}", task=task, images=[str(volume.resolve())], question=str(row["Question"]).strip(),
                answer=answer, answer_type=answer_type, options=options,
                subgroups={"question_type": qtype, "answer_type": answer_type},
                native={k: v for k, v in row.items() if k != "Text"},
            ))
    if missing:
        raise DatasetError(f"{len(missing)} M3D-VQA row(s) of {path.name} refer to volumes missing under {root} "
                           f"(first: {missing[0]}); put {LAYOUT}")
    return cases
