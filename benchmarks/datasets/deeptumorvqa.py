"""DeepTumorVQA (Chen et al., 2025): 3-D abdominal CT tumour VQA, in the release layout.

Layout under the data folder (``tumor-vqa/DeepTumorVQA_2.0`` on the hub, the ``--data-dir`` of
the official ``deeptumorvqa`` evaluator)::

    benchmark/test_qa.json       {"version", "num_questions", "question_types", "questions": [...]}
    (or benchmark/test_qa.jsonl) the same records, one per line
    benchmark/ct/<image_id>/ct.nii.gz                      the CT volumes (991, about 70 GB)
    benchmark/ct/<image_id>/segmentations/<name>.nii.gz    reference masks, AbdomenAtlas layout
                                                           (oracle mode only; see below)

A record: ``qid``, ``image_id`` (``BDMAP_...``), ``question``, ``answer``, ``mc_question`` (the
question with its options written in it, ``A: ... B: ... C: ... D: ...``), ``correct_option``,
``question_type`` (the stage: recognition, measurement, visual reasoning, medical reasoning),
``question_subtype`` (42 of them), ``organ``, ``lesion``, ``spacing``, ``shape``,
``requires_tools``.

Formats (``--data-option deeptumorvqa.format=...``): ``mc`` (default, the leaderboard's: the
model reads ``mc_question`` and answers a letter) or ``freeform`` (the model reads ``question``;
the answer type follows the subtype as in the official ``SUBTYPE_ANSWER_TYPE``: numeric, binary
-> closed, categorical -> open). Freeform numbers are scored correct within `NUMERIC_TOLERANCE`
(the official scorer reports mean relative accuracy and 5/10/20/50% bands instead; only the 10%
band is reproduced here).

Per-stage metrics: cases carry ``question_type`` (the stage) and ``question_subtype`` as
subgroups, so ``results.json`` reports accuracy per stage and per subtype. In the mc format the
official per-stage figure (subtype accuracies weighted by their counts) equals the stage's plain
accuracy, which is what the subgroup reports.

Tool modes (the official ``--agent-mode``), chosen on the bench command line:

* ``oracle``: ``--segmenter reference``: the ``segment`` tool answers with the case's reference
  masks (`grounding.segmenters.reference`). The release ships no masks for the benchmark
  volumes, only their measurements in ``tool_cache/``; the masks are AbdomenAtlas3.0Mini's
  ``<image_id>/segmentations/*.nii.gz``: copy (or link) each into
  ``benchmark/ct/<image_id>/segmentations`` or point ``--data-option deeptumorvqa.masks=DIR`` at an
  AbdomenAtlas folder holding ``<image_id>/segmentations``;
* ``predicted``: any other segmenter (``--segmenter auto`` with TotalSegmentator weights is the
  closest to the official predicted mode, whose cache came from TotalSegmentator);
* ``vision``: ``--no-tools``: the model sees the volume's views and answers without tools (the
  official vision mode offers pre-cut organ crops instead; those PNGs are not used here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from grounding.segmenters.reference import mask_files
from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, enum, read_json, read_jsonl

LAYOUT = ("DeepTumorVQA_2.0's benchmark/test_qa.json and benchmark/ct/<image_id>/ct.nii.gz (huggingface-cli download "
          "tumor-vqa/DeepTumorVQA_2.0 --repo-type dataset --include 'benchmark/test_qa.json' 'benchmark/ct/*' "
          "--local-dir DIR; the volumes are about 70 GB)")
STAGES = ("recognition", "measurement", "visual reasoning", "medical reasoning")
FORMATS = ("mc", "freeform")
#: a freeform number within 10% of the reference is correct (the official 10% tolerance band)
NUMERIC_TOLERANCE = 0.10
#: subtypes the official scorer treats as numeric / binary (every other subtype is categorical)
NUMERIC_SUBTYPES = frozenset({
    "organ volume measurement", "organ hu measurement", "lesion volume measurement", "organ hu ratio",
    "tumor burden percentage", "largest lesion diameter", "largest lesion slice", "lesion counting",
    "lesion count by location", "organ aggregation", "tumor organ hu difference",
})
BINARY_SUBTYPES = frozenset({
    "pancreatic lesion existence", "liver lesion existence", "kidney lesion existence", "kidney tumor existence",
    "kidney cyst existence", "colon lesion existence", "pdac existence", "pnet existence", "lesion outlier",
    "organ enlargement", "pancreatic steatosis", "pancreatic cyst resectability", "pseudocyst determination",
    "splenomegaly detection", "portal hypertension assessment",
})
REQUIRED = ("qid", "image_id", "question", "answer", "question_type", "question_subtype")
_OPTION = re.compile(r"(?:(?<=\s)|^)([A-E])\s*[:.)]\s")


def annotation_files(root: Path, split: str) -> list[Path]:
    if split != "test":
        raise DatasetError(f"DeepTumorVQA's benchmark split is test, not '{split}' (the train pool is not a benchmark)")
    for name in ("benchmark/test_qa.json", "benchmark/test_qa.jsonl", "test_qa.json", "test_qa.jsonl"):
        if (root / name).exists():
            return [root / name]
    raise DatasetError(f"no benchmark/test_qa.json under {root}; put {LAYOUT} there")


def _records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    doc = read_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("questions"), list):
        return doc["questions"]
    raise DatasetError(f"{path} is not DeepTumorVQA's test_qa.json (expected an object with a 'questions' list)")


def split_options(mc_question: str) -> tuple[str, list[str]]:
    """``"Q? A: x B: y C: z"`` -> ``("Q?", ["x", "y", "z"])``: letters must run A, B, C ... in order."""
    marks, expected = [], "A"
    for m in _OPTION.finditer(mc_question):
        if m.group(1) == expected:
            marks.append(m)
            expected = chr(ord(expected) + 1)
    if len(marks) < 2:
        raise ValueError("mc_question lists no options written 'A: ... B: ...'")
    stem = mc_question[: marks[0].start()].strip()
    ends = [m.start() for m in marks[1:]] + [len(mc_question)]
    return stem, [mc_question[m.end():end].strip() for m, end in zip(marks, ends)]


def answer_type(subtype: str) -> str:
    """The freeform answer type of a subtype (official mapping; unknown subtypes are categorical)."""
    key = enum(subtype)
    return "numeric" if key in NUMERIC_SUBTYPES else "closed" if key in BINARY_SUBTYPES else "open"


def load(root: Path, split: str = "test", task: str = "deeptumorvqa", format: str = "mc",
         masks: str | None = None) -> list[Case]:
    """The benchmark questions as cases (see the module docstring for ``format`` and ``masks``)."""
    fmt = enum(format)
    if fmt not in FORMATS:
        raise DatasetError(f"DeepTumorVQA format must be one of {', '.join(FORMATS)}, not '{format}'")
    path = annotation_files(root, split)[0]
    base = path.parent if path.parent.name == "benchmark" else path.parent / "benchmark"
    mask_root = Path(masks).expanduser() if masks else None
    if mask_root is not None and not mask_root.is_dir():
        raise DatasetError(f"--data-option deeptumorvqa.masks={masks} is not a folder; give the AbdomenAtlas folder "
                           "holding <image_id>/segmentations/")
    cases, missing = [], []
    for i, row in enumerate(_records(path), 1):
        lacking = [k for k in REQUIRED if row.get(k) in (None, "")]
        if lacking:
            raise DatasetError(f"{path} question {i} is not a DeepTumorVQA record (missing {', '.join(lacking)})")
        image_id, stage = str(row["image_id"]).strip(), enum(row["question_type"])
        if stage not in STAGES:
            raise DatasetError(f"{path} question {row['qid']}: question_type '{row['question_type']}' is not one of "
                               f"the stages {', '.join(STAGES)}")
        ct = base / "ct" / image_id / "ct.nii.gz"
        if not ct.exists():
            missing.append(image_id)
            continue
        subtype = str(row["question_subtype"]).strip()
        if fmt == "mc":
            if not row.get("mc_question") or not row.get("correct_option"):
                raise DatasetError(f"{path} question {row['qid']} has no mc_question/correct_option; use "
                                   "--data-option deeptumorvqa.format=freeform")
            try:
                question, options = split_options(str(row["mc_question"]))
            except ValueError as exc:
                raise DatasetError(f"{path} question {row['qid']}: {exc}") from None
            answer, kind = str(row["correct_option"]).strip().upper(), "choice"
            if not ("A" <= answer < chr(ord("A") + len(options))):
                raise DatasetError(f"{path} question {row['qid']}: correct_option '{answer}' is not one of its "
                                   f"{len(options)} options")
        else:
            question, options, kind = str(row["question"]), None, answer_type(subtype)
            answer = str(row["answer"]).strip()
        reference = mask_files((mask_root or base / "ct") / image_id / "segmentations")
        cases.append(Case(
            id=str(row["qid"]), task=task, images=[str(ct.resolve())], question=question, answer=answer,
            answer_type=kind, options=options, tolerance=NUMERIC_TOLERANCE if kind == "numeric" else None,
            subgroups={"question_type": stage, "question_subtype": subtype, "organ": str(row.get("organ") or ""),
                       "answer_type": kind},
            masks=reference, native=row,
        ))
    if missing:
        raise DatasetError(f"{len(missing)} DeepTumorVQA question(s) refer to CT volumes missing under {base / 'ct'} "
                           f"(first: {missing[0]}/ct.nii.gz); download them with: {LAYOUT}")
    return cases
