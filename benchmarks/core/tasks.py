"""The task registry: what each benchmark is, where its files live, how to ask and how to score.

A task is declarative (`TaskSpec`): a name, the loader module of its dataset family, the split,
the local data folder and the public Hugging Face id + revision for users with network, the
expected sha256 of its annotation files where they are fixed, a prompt template per answer type,
and the subgroup keys accuracy is reported by. Scoring is `benchmarks.core.scoring.score_response`
for every task (the answer type of each case picks the rule), so no task can drift silently.

Data folders: ``--data TASK=DIR`` on the command line, else ``$MMREASON_DATA/<task>``, else
``~/.cache/mmreason/data/<task>``. The ``synthetic`` task is generated there on first use. When
that folder does not exist, the task's hub dataset at its pinned revision is used from the
Hugging Face cache if it is there (`hub_snapshot`, never touching the network); ``bench
--download`` fetches it into that cache with ``huggingface_hub.snapshot_download`` on a machine
with network. Offline (``HF_HUB_OFFLINE=1``) nothing is fetched and nothing waits on retries: the
error says where to put the files. A run records the snapshot's commit with the checksums.

Checksums: the sha256 of the annotation files is always computed and recorded in the run's
``config.json``; when a task pins ``sha256`` and the local files differ, a loud warning is
printed and the mismatch is recorded (the numbers are then not comparable with published ones).
The public datasets are not pinned here: this build had no access to the files, and a hash
typed from memory would be worse than none. Pin them with ``TaskSpec.sha256`` once verified.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging.errors import MMReasonError
from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, sha256_files

#: default prompt templates per answer type (``{question}`` and ``{unit}`` are filled). The loop
#: itself lists the options of a choice question (``A. text`` lines) and asks for the letter, and
#: its system prompt asks for ``<answer>...</answer>``; templates add only what the type needs.
DEFAULT_PROMPTS: dict[str, str] = {
    "closed": "{question}\nAnswer yes or no, or with the word or short phrase asked for.",
    "open": "{question}\nAnswer with a single word or a short phrase.",
    "choice": "{question}",
    "numeric": "{question}\nAnswer with a number and its unit ({unit}).",
}
#: for datasets whose question text already lists the options (MedXpertQA): the loop is given no
#: options (so they are not listed twice) and the template asks for the letter
OPTIONS_IN_QUESTION: dict[str, str] = DEFAULT_PROMPTS | {
    "choice": "{question}\nAnswer with the letter of the correct option.",
}
#: DeepTumorVQA's own answer-format lines for freeform (its ``data/prompt.py``): a bare number, yes/no
#: or a short phrase; for its mc format the loop lists the options and asks for the letter
DEEPTUMORVQA_PROMPTS: dict[str, str] = {
    "choice": "{question}",
    "numeric": "{question}\nAnswer with a single number (no units, no extra words).",
    "closed": "{question}\nAnswer with 'yes' or 'no'.",
    "open": "{question}\nAnswer with the most appropriate short phrase.",
}
#: the synthetic questions: short format instructions that lead with the value
SYNTHETIC_PROMPTS: dict[str, str] = {
    "closed": "{question} Answer yes or no first.",
    "open": "{question}",
    "choice": "{question}",
    "numeric": "{question} Give the number first, with its unit ({unit}).",
}


class TaskError(MMReasonError):
    """Unknown task or unusable task data."""


class ChecksumWarning(UserWarning):
    """The local annotation files differ from the pinned release."""


@dataclass(frozen=True)
class TaskSpec:
    """One registered benchmark task.

    Attributes:
        name: the task name used on the command line (``vqa_rad``).
        family: module under ``benchmarks.datasets`` that loads it.
        title: a human-readable name with its reference.
        split: the split evaluated by default.
        answer_types: answer types its cases use (for ``--list``).
        subgroup_keys: `Case.subgroups` keys accuracy is reported by.
        hf_id / hf_revision: the public dataset for users with network (None if not on the hub).
        sha256: expected sha256 of the annotation files (see `benchmarks.datasets.common.sha256_files`),
            None when not pinned.
        prompts: prompt template per answer type.
        loader_options: extra keyword arguments of the loader (``language="en"`` for SLAKE).
        options_in_question: the question text already lists the options; they are then not
            passed to the loop (the scorer still uses them).
        data_name: the data folder's name when several tasks read the same files (default: the
            task name).
    """

    name: str
    family: str
    title: str
    split: str
    answer_types: tuple[str, ...]
    subgroup_keys: tuple[str, ...]
    hf_id: str | None = None
    hf_revision: str | None = None
    sha256: str | None = None
    prompts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROMPTS))
    loader_options: dict[str, Any] = field(default_factory=dict)
    options_in_question: bool = False
    data_name: str | None = None

    @property
    def module(self) -> Any:
        return importlib.import_module(f"benchmarks.datasets.{self.family}")

    def prompt_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.prompts, sort_keys=True).encode()).hexdigest()[:16]

    def format_prompt(self, case: Case) -> str:
        """The question text sent to the model for ``case``."""
        template = self.prompts.get(case.answer_type, DEFAULT_PROMPTS[case.answer_type])
        return template.format(question=case.question, unit=case.unit or "")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_snapshot(spec: "TaskSpec", download: bool = False) -> Path | None:
    """The task's hub dataset at its pinned revision as a local folder, or None when unavailable.

    Without ``download`` (or when offline) only the local cache is read; with it, a missing
    snapshot is fetched with ``huggingface_hub.snapshot_download``.
    """
    if not spec.hf_id:
        return None
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    local_only = not download or hub_offline()
    try:
        return Path(snapshot_download(spec.hf_id, repo_type="dataset", revision=spec.hf_revision,
                                      cache_dir=hub_cache_dir(), local_files_only=local_only))
    except LocalEntryNotFoundError:
        return None
    except OSError as exc:  # network errors while downloading
        raise TaskError(f"could not download {spec.hf_id}@{spec.hf_revision} ({exc}); download it by hand "
                        f"and pass --data {spec.name}=DIR") from None


def data_dir(task: str, overrides: dict[str, str] | None = None) -> Path:
    """The local data folder of ``task`` (see the module docstring for the order).

    Tasks that read the same files (``m3d_vqa_closed`` and ``m3d_vqa_open``) share the folder named
    by their ``data_name``, and ``--data m3d_vqa=DIR`` sets it for both.
    """
    spec = REGISTRY.get(task)
    folder = spec.data_name if spec is not None and spec.data_name else task
    for key in (task, folder):
        if overrides and key in overrides:
            return Path(overrides[key]).expanduser()
    if os.environ.get("MMREASON_DATA"):
        return Path(os.environ["MMREASON_DATA"]).expanduser() / folder
    return Path.home() / ".cache" / "mmreason" / "data" / folder


REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in REGISTRY:
        raise TaskError(f"task '{spec.name}' is already registered")
    REGISTRY[spec.name] = spec
    return spec


for _spec in (
    TaskSpec("vqa_rad", "vqa_rad", "VQA-RAD (Lau et al. 2018), OSF release JSON", "test", ("closed", "open"),
             ("answer_type", "question_type", "organ"), hf_id="flaviagiammarino/vqa-rad", hf_revision="main"),
    TaskSpec("slake", "slake", "SLAKE (Liu et al. 2021), English subset", "test", ("closed", "open"),
             ("answer_type", "modality", "location", "content_type"), hf_id="BoKelvin/SLAKE", hf_revision="main",
             loader_options={"language": "en"}),
    TaskSpec("pathvqa", "pathvqa", "PathVQA (He et al. 2020), HF parquet", "test", ("closed", "open"),
             ("answer_type",), hf_id="flaviagiammarino/path-vqa", hf_revision="main"),
    TaskSpec("pmc_vqa", "pmc_vqa", "PMC-VQA (Zhang et al. 2023), test_clean.csv", "test", ("choice",),
             ("answer_type",), hf_id="xmcmic/PMC-VQA", hf_revision="main"),
    TaskSpec("omnimedvqa", "omnimedvqa", "OmniMedVQA (Hu et al. 2024), open-access QA json", "test", ("choice",),
             ("modality", "question_type", "dataset"), hf_id="foreverbeliever/OmniMedVQA", hf_revision="main"),
    TaskSpec("medxpertqa_mm", "medxpertqa", "MedXpertQA MM (Zuo et al. 2025), jsonl", "test", ("choice",),
             ("medical_task", "body_system", "question_type"), hf_id="TsinghuaC3I/MedXpertQA",
             hf_revision="main", prompts=dict(OPTIONS_IN_QUESTION), options_in_question=True),
    TaskSpec("mmmu_med", "mmmu", "MMMU medical subjects (Yue et al. 2024), validation", "validation",
             ("choice", "open"), ("subject", "subfield", "img_type"), hf_id="MMMU/MMMU", hf_revision="main"),
    TaskSpec("medframeqa", "medframeqa", "MedFrameQA (Yu et al. 2025), 2-5 images per question", "test",
             ("choice",), ("system", "organ", "modality", "n_images"), hf_id="SuhaoYu1020/MedFrameQA",
             hf_revision="main"),
    # 3-D CT VQA: run with tools (--segmenter X: predicted; --segmenter reference: oracle, needs the
    # cases' reference masks) or without (--no-tools: vision only); see benchmarks/datasets/deeptumorvqa.py
    TaskSpec("deeptumorvqa", "deeptumorvqa", "DeepTumorVQA (Chen et al. 2025), 3-D abdominal CT, benchmark split",
             "test", ("choice", "numeric", "closed", "open"), ("question_type", "question_subtype", "organ",
                                                               "answer_type"),
             prompts=dict(DEEPTUMORVQA_PROMPTS)),
    TaskSpec("m3d_vqa_closed", "m3d_vqa", "M3D-VQA (Bai et al. 2024), 3-D CT, closed (4 choices)", "test",
             ("choice",), ("question_type",), loader_options={"mode": "closed"}, data_name="m3d_vqa"),
    TaskSpec("m3d_vqa_open", "m3d_vqa", "M3D-VQA (Bai et al. 2024), 3-D CT, open", "test", ("open",),
             ("question_type",), loader_options={"mode": "open"}, data_name="m3d_vqa"),
    TaskSpec("3d_rad", "rad3d", "3D-RAD (Gai et al. 2025), 3-D chest CT, six tasks", "test", ("choice", "open"),
             ("task", "subtask", "answer_type")),
    TaskSpec("synthetic", "synthetic", "Synthetic grounded phantoms (mmreason), seed 0, 200 cases", "test",
             ("closed", "choice", "numeric"), ("family", "answer_type", "n_images"), prompts=dict(SYNTHETIC_PROMPTS)),
):
    register(_spec)


def get_task(name: str) -> TaskSpec:
    if name not in REGISTRY:
        raise TaskError(f"unknown task '{name}'; registered tasks: {', '.join(REGISTRY)} (see mmreason bench --list)")
    return REGISTRY[name]


@dataclass
class LoadedTask:
    """A task's cases with the provenance a run records."""

    spec: TaskSpec
    root: Path
    cases: list[Case]
    sha256: str
    files: list[str]
    checksum_ok: bool | None  # None when no checksum is pinned
    options: dict[str, Any] = field(default_factory=dict)
    hf_snapshot: str | None = None  # the hub commit the data came from, when read from the hub cache


def loader_options(name: str, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The task's loader options with the command line's ``--data-option TASK.KEY=VALUE`` applied."""
    import inspect

    spec = get_task(name)
    given = (overrides or {}).get(name, {})
    accepted = [p for p in inspect.signature(spec.module.load).parameters if p not in ("root", "split", "task")]
    unknown = [k for k in given if k not in accepted]
    if unknown:
        raise TaskError(f"task '{name}' has no data option {', '.join(unknown)}; it accepts "
                        f"{', '.join(accepted) or 'none'}")
    return {**spec.loader_options, **given}


def load_task(name: str, overrides: dict[str, str] | None = None, split: str | None = None,
              limit: int | None = None, progress: bool = True,
              options: dict[str, dict[str, Any]] | None = None, download: bool = False) -> LoadedTask:
    """Load every case of task ``name`` from its data folder, verifying the annotation checksum.

    ``limit`` tells a task that builds its own data (synthetic) how many cases the run needs;
    ``options`` are per-task loader options from the command line (``{"slake": {"language": "zh"}}``);
    ``download`` fetches a missing task from the hub (see the module docstring).
    """
    spec = get_task(name)
    options = loader_options(name, options)
    root = data_dir(name, overrides)
    split = split or spec.split
    module = spec.module
    if hasattr(module, "prepare"):  # tasks that can build their own data (synthetic)
        module.prepare(root, limit=limit, progress=progress)
    snapshot = None
    if not root.exists():
        snapshot = hub_snapshot(spec, download=download)
        if snapshot is None:
            raise TaskError(_missing_data_message(spec, module, root))
        root = snapshot
    files = module.annotation_files(root, split, **_annotation_kwargs(module, options))
    digest = sha256_files(files)
    ok = None if spec.sha256 is None else digest == spec.sha256
    if ok is False:
        message = (f"CHECKSUM MISMATCH for task '{name}': {root} has sha256 {digest}, the registry pins "
                   f"{spec.sha256}. Scores will not be comparable with published figures.")
        warnings.warn(message, ChecksumWarning, stacklevel=2)
        print(f"WARNING: {message}", file=sys.stderr)
    cases = module.load(root, split, task=name, **options)
    if not cases:
        raise DatasetError(f"task '{name}' has no cases in split '{split}' at {root} ({', '.join(map(str, files))}); "
                           "the annotation file is empty or holds only a header: re-download it")
    # ids key resume and results: a repeated id would be skipped or dropped without a word
    seen: set[str] = set()
    repeated = sorted({c.id for c in cases if c.id in seen or seen.add(c.id)})
    if repeated:
        raise TaskError(f"task '{name}' at {root} has {len(repeated)} repeated case id(s) ({', '.join(repeated[:5])}); "
                        "every case needs its own id: fix the annotation file")
    return LoadedTask(spec, root, cases, digest, [str(f) for f in files], ok, options,
                      snapshot.name if snapshot is not None else None)


def _missing_data_message(spec: TaskSpec, module: Any, root: Path) -> str:
    layout = getattr(module, "LAYOUT", None) or spec.title
    message = f"no data for task '{spec.name}' at {root}; put {layout} there, set MMREASON_DATA, or pass --data {spec.name}=DIR"
    if spec.hf_id:
        cache = hub_cache_dir() / f"datasets--{spec.hf_id.replace('/', '--')}"
        if hub_offline():
            message += (f". Offline (HF_HUB_OFFLINE=1): nothing was fetched; a hub snapshot of {spec.hf_id}@"
                        f"{spec.hf_revision} in {cache} is used when present")
        else:
            message += f", or add --download to fetch {spec.hf_id}@{spec.hf_revision} into {cache}"
    return message


def _annotation_kwargs(module: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Loader options that also select annotation files (OmniMedVQA access, MMMU subjects)."""
    import inspect

    params = inspect.signature(module.annotation_files).parameters
    return {k: v for k, v in options.items() if k in params}


def local_count(name: str, overrides: dict[str, str] | None = None) -> int | None:
    """Number of cases present locally, or None when the data is missing or unreadable."""
    spec = get_task(name)
    root = data_dir(name, overrides)
    if not root.exists():
        return None
    try:
        return len(spec.module.load(root, spec.split, task=name, **spec.loader_options))
    except MMReasonError:
        return None
