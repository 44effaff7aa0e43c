"""3D-RAD (Gai et al., 2025): 3-D chest CT VQA over six tasks, from the release CSVs.

Layout under the data folder (the GitHub ``3DRAD/`` folder or the hub's ``Tang-xiaoxiao/3D-RAD``)::

    3DRAD/test/Task1_Image_Observation/Anatomical_observation.csv   (or test/Task1_.../...)
    3DRAD/test/Task2_Anomaly_Detection/*.csv ... Task6_Longitudinal_Temporal_Diagnosis/*.csv
        columns: Task, Subtask, VolumeName, Question, Answer, QuestionType (Open or Close),
                 AnswerChoice, Choice A, Choice B, Choice C, Choice D ("-" where unused)
    the volumes, found by VolumeName (``test_1016_d_2.nii.gz``, CT-RATE naming):
        a paths CSV with columns VolumeName, Path (the official evaluation's ``--data_root``),
        given with ``--data-option 3d_rad.paths=FILE``; else, anywhere under the data folder,
        ``<name>.npy`` (the hub's preprocessed arrays) or the CT-RATE ``<name>.nii.gz`` itself

``Close`` rows are multiple choice (two options for yes/no existence questions, four for the
temporal ones; the reference is ``AnswerChoice``), ``Open`` rows are open questions (the official
script scores them by BLEU, ROUGE-1, METEOR and BERTScore; here by our open rule and token
recall). Subgroups: ``task`` (the folder: Image_Observation, Anomaly_Detection,
Medical_Computation, Existence_Detection, Static_Temporal_Diagnosis,
Longitudinal_Temporal_Diagnosis) and ``subtask`` (the file: Diameter, Lung nodule, ...).

An .npy volume has no spacing: it is read with 1 mm assumed (`imaging.io.npy`), so the diameters
and sizes of Medical_Computation are only meaningful on the CT-RATE NIfTI volumes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, enum

LAYOUT = ("3D-RAD's <split>/Task*/<subtask>.csv files (github.com/Tang-xiaoxiao/3D-RAD, folder 3DRAD, or the hub "
          "dataset Tang-xiaoxiao/3D-RAD) and the volumes: the hub's .npy arrays or the CT-RATE .nii.gz files, named "
          "after VolumeName, anywhere under the folder (or listed in --data-option 3d_rad.paths=FILE)")
SPLITS = ("test", "train")
REQUIRED = ("Task", "Subtask", "VolumeName", "Question", "Answer", "QuestionType", "AnswerChoice", "Choice A",
            "Choice B")
LETTERS = "ABCD"
UNUSED = ("", "-")


def annotation_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DatasetError(f"3D-RAD splits are {', '.join(SPLITS)}, not '{split}'")
    for base in (root / "3DRAD" / split, root / split, *sorted(root.glob(f"*/3DRAD/{split}"))):
        files = sorted(base.glob("Task*/*.csv"))
        if files:
            return files
    raise DatasetError(f"no 3D-RAD {split}/Task*/*.csv under {root}; put {LAYOUT} there")


def _stem(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".npy"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_index(root: Path, paths: str | None = None) -> dict[str, Path]:
    """VolumeName stem -> volume file: the paths CSV when given, else the .npy/.nii.gz files under ``root``."""
    if paths:
        table = Path(paths).expanduser()
        if not table.is_file():
            raise DatasetError(f"--data-option 3d_rad.paths={paths} is not a file; give the CSV with columns "
                               "VolumeName, Path")
        with table.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"VolumeName", "Path"} <= set(reader.fieldnames or []):
                raise DatasetError(f"{table} needs the columns VolumeName and Path (has {reader.fieldnames})")
            return {_stem(r["VolumeName"].strip()): (table.parent / r["Path"].strip()) for r in reader}
    index: dict[str, Path] = {}
    for pattern in ("**/*.nii.gz", "**/*.npy"):  # .npy last: the preprocessed array wins when both exist
        for path in root.glob(pattern):
            index[_stem(path.name)] = path
    return index


def load(root: Path, split: str = "test", task: str = "3d_rad", paths: str | None = None) -> list[Case]:
    files = annotation_files(root, split)
    volumes = volume_index(root, paths)
    cases, missing = [], []
    for path in files:
        group, subtask = path.parent.name.split("_", 1)[-1], path.stem
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            absent = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if absent:
                raise DatasetError(f"{path} is not a 3D-RAD file: no column {', '.join(absent)}")
            for i, row in enumerate(reader):
                name = row["VolumeName"].strip()
                volume = volumes.get(_stem(name))
                if volume is None or not volume.is_file():
                    missing.append(name)
                    continue
                kind = enum(row["QuestionType"])
                if kind == "close":
                    options = [str(row.get(f"Choice {k}") or "").strip() for k in LETTERS]
                    options = [o for o in options if o not in UNUSED]
                    answer = enum(row["AnswerChoice"]).upper()
                    if len(options) < 2 or answer not in LETTERS[: len(options)]:
                        raise DatasetError(f"{path}:{i + 2}: a Close question needs two or more choices and an "
                                           f"AnswerChoice among them (got '{row['AnswerChoice']}')")
                    answer_type = "choice"
                elif kind == "open":
                    options, answer, answer_type = None, str(row["Answer"]).strip(), "open"
                else:
                    raise DatasetError(f"{path}:{i + 2}: QuestionType '{row['QuestionType']}' is neither Open "
                                       "nor Close")
                cases.append(Case(
                    id=f"{path.parent.name}/{subtask}/{i}", task=task, images=[str(volume.resolve())],
                    question=str(row["Question"]).strip(), answer=answer, answer_type=answer_type, options=options,
                    subgroups={"task": group, "subtask": subtask, "answer_type": answer_type}, native=row,
                ))
    if missing:
        raise DatasetError(f"{len(missing)} 3D-RAD question(s) refer to volumes not found under {root} (first: "
                           f"{missing[0]}); put {LAYOUT}")
    return cases
