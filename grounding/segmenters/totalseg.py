"""TotalSegmentator adapter: its CT models through its Python API, classes mapped onto our targets.

The volume goes to ``totalsegmentator.python_api.totalsegmentator`` as an in-memory NIfTI image
(our LPS ``(z, y, x)`` array stored as ``(x, y, z)`` with the affine converted to RAS, as
`imaging.writers.write_nifti` does), the multi-label result comes back the same way, and the
classes of the requested target are merged (`targets_for_class`): the lobes of each lung make
``lung_left`` / ``lung_right`` / ``lungs`` (each lobe is also a target of its own), vertebrae make
``vertebrae`` and, with ribs and the other bones, ``bone``; ``trachea`` is ``airways``; organs
keep their names (`ORGAN_TARGETS`). ``body`` comes from the ``body`` task and ``nodule`` /
``lesion`` from the ``lung_nodules`` task. One run per (volume, task) serves every target.

Weights: TotalSegmentator would download them; this adapter never lets it. ``weights`` (or
``TOTALSEG_HOME_DIR`` / ``TOTALSEG_WEIGHTS_PATH``) is a TotalSegmentator home folder (holding
``nnunet/results``) or the results folder itself (holding ``Dataset<id>_...`` folders); get it
with ``totalseg_download_weights -t total`` on a machine with internet (see docs/segmenters.md).
``fast=None`` picks the full-resolution five-part model when its weights are present, else the
3 mm model. The adapter writes ``config.json`` with usage statistics off when the home folder has
none (TotalSegmentator would create it with statistics on) and sends TotalSegmentator's console
output to stderr.

Device and memory: ``device="auto"`` is the GPU when present (nnU-Net runs it in float16
autocast), else the CPU. Tiling is nnU-Net's own (patch size from the plans, overlap fixed by
TotalSegmentator at 0.2 for the ``total`` models and 0.5 otherwise; batch 1), so the
sliding-window options of the MONAI adapter do not apply; an out-of-memory failure becomes a
`SegmentationError` suggesting ``fast`` or the CPU.

Needs the optional package: ``pip install 'mmreason[totalseg]'``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.base import (
    MODEL_TARGETS,
    ORGAN_TARGETS,
    TARGETS,
    Prompt,
    SegmentationError,
    resolve_target,
)
from grounding.segmenters.device import out_of_memory_hint, resolve_device
from grounding.segmenters.morphology import restrict_to_prompt
from grounding.segmenters.volume_io import labels_from_nifti, to_nifti, volume_key
from imaging.volume import Volume

INSTALL_HINT = "pip install 'mmreason[totalseg]'"
#: TotalSegmentator class-name prefixes and names that are bone
BONE_PREFIXES = ("vertebrae_", "rib_", "hip_", "femur_", "humerus_", "scapula_", "clavicula_")
BONE_NAMES = ("sacrum", "sternum", "costal_cartilages", "skull")
#: targets that need a task other than ``total``
TASK_FOR_TARGET = {"body": "body", "nodule": "lung_nodules", "lesion": "lung_nodules"}
#: the crop model TotalSegmentator runs first for tasks with a ``crop`` (its 6 mm total model)
CROP_TASK_ID = 298
#: every target the adapter can map (``thorax``, a radiograph target, has no class)
ALL_TARGETS: tuple[str, ...] = tuple(t for t in {**TARGETS, **ORGAN_TARGETS, **MODEL_TARGETS} if t != "thorax")


def targets_for_class(name: str) -> tuple[str, ...]:
    """Our targets that a TotalSegmentator class belongs to (empty when none).

    >>> targets_for_class("lung_lower_lobe_left")
    ('lung_lower_lobe_left', 'lung_left', 'lungs')
    >>> targets_for_class("vertebrae_L1")
    ('vertebrae', 'bone')
    """
    if name.startswith("lung_") and name.endswith(("_left", "_right")) and "lobe" in name:
        return (name, "lung_left" if name.endswith("_left") else "lung_right", "lungs")
    if name == "trachea":
        return ("airways",)
    if name.startswith("vertebrae_") or name == "sacrum":
        return ("vertebrae", "bone")
    if name.startswith(BONE_PREFIXES) or name in BONE_NAMES:
        return ("bone",)
    if name in ORGAN_TARGETS:
        return (name,)
    if name.startswith("body"):  # body task: body_trunc, body_extremities
        return ("body",)
    if name == "lung_nodules":
        return ("nodule", "lesion")
    return ()


def results_dir(weights: str | Path | None = None) -> Path:
    """The nnU-Net results folder: ``weights`` (a home or results folder) or TotalSegmentator's own rule."""
    if weights is not None:
        folder = Path(weights).expanduser()
        return folder / "nnunet" / "results" if (folder / "nnunet" / "results").is_dir() else folder
    if "TOTALSEG_WEIGHTS_PATH" in os.environ:
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))
    return home / "nnunet" / "results"


def _task_config(task: str, fast: bool) -> dict[str, Any]:
    from totalsegmentator.python_api import get_task_config

    with contextlib.redirect_stdout(sys.stderr):
        return get_task_config(task, fast=fast, quiet=True)


def required_folders(task: str, fast: bool) -> list[str]:
    """The ``Dataset<id>_...`` folders a TotalSegmentator run of ``task`` reads (crop model included)."""
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

    config = _task_config(task, fast)
    ids = list(config["task_id"]) if isinstance(config["task_id"], list) else [config["task_id"]]
    if config.get("crop") is not None and config.get("crop_model") is None:
        ids.append(CROP_TASK_ID)
    return [TASK_ID_WEIGHTS_CONFIGS[i]["foldername"] for i in ids]


def weights_present(task: str, fast: bool, weights: str | Path | None = None) -> bool:
    """Whether every model folder of ``task`` is in the results folder (nothing would be downloaded)."""
    folder = results_dir(weights)
    return all((folder / name).is_dir() for name in required_folders(task, fast))


def _import_api():
    try:
        from totalsegmentator.map_to_binary import class_map
        from totalsegmentator.python_api import totalsegmentator
    except ImportError as err:
        raise SegmentationError(
            f"the totalseg segmenter needs the TotalSegmentator package: {INSTALL_HINT}"
        ) from err
    return totalsegmentator, class_map


@contextlib.contextmanager
def _weights_env(results: Path) -> Iterator[None]:
    """Point TotalSegmentator at ``results`` for one call, with its usage statistics off by default."""
    home = results.parent.parent if results.parent.name == "nnunet" else None
    saved = {k: os.environ.get(k) for k in ("TOTALSEG_WEIGHTS_PATH", "TOTALSEG_HOME_DIR")}
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(results)
    if home is not None:
        os.environ["TOTALSEG_HOME_DIR"] = str(home)
        config = home / "config.json"
        if not config.exists():
            config.write_text(json.dumps({"totalseg_id": "totalseg_mmreason", "send_usage_stats": False,
                                          "statistics_disclaimer_shown": True, "prediction_counter": 0}, indent=4))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class TotalSegmentatorSegmenter:
    """Targets from TotalSegmentator's CT models (see the module docstring).

    Args:
        weights: a TotalSegmentator home folder or its ``nnunet/results`` folder; default
            ``TOTALSEG_WEIGHTS_PATH`` / ``TOTALSEG_HOME_DIR`` / ``~/.totalsegmentator``.
        fast: the 3 mm ``total`` model; default: full resolution when its weights are present.
        device: ``auto`` (GPU if present), ``cpu``, ``cuda`` / ``cuda:N`` or ``mps``.

    Raises (at construction): `SegmentationError` when the package or the ``total`` weights are
    missing (the message says how to get them).
    """

    name = "totalseg"

    def __init__(self, weights: str | Path | None = None, fast: bool | None = None, device: str = "auto") -> None:
        self._run, self._class_map = _import_api()
        self.results = results_dir(weights)
        if fast is None:
            fast = not weights_present("total", False, self.results)
        self.fast = bool(fast)
        if not weights_present("total", self.fast, self.results):
            wanted = ", ".join(required_folders("total", self.fast))
            raise SegmentationError(
                f"TotalSegmentator weights not found in {self.results} (needs {wanted}; this machine cannot "
                "download them): run `totalseg_download_weights -t total" + (" --fast" if self.fast else "")
                + "` on a machine with internet and copy its ~/.totalsegmentator folder here, then pass "
                "--weights DIR or set TOTALSEG_HOME_DIR"
            )
        self.device = resolve_device(device)
        self.targets: tuple[str, ...] = tuple(
            t for t in ALL_TARGETS if weights_present(self._task(t), self._fast(self._task(t)), self.results)
        )
        self._labels: dict[tuple[str, str], np.ndarray] = {}

    @staticmethod
    def _task(target: str) -> str:
        return TASK_FOR_TARGET.get(target, "total")

    def _fast(self, task: str) -> bool:
        return self.fast and task != "lung_nodules"  # lung_nodules has no fast model

    def labels(self, volume: Volume, task: str) -> np.ndarray:
        """TotalSegmentator's multi-label map of ``volume`` for ``task`` (cached per volume)."""
        key = (volume_key(volume), task)
        if key not in self._labels:
            device = "gpu" + self.device[4:] if self.device.startswith("cuda") else self.device
            advice = "use --device cpu, or the 3 mm model (fast)" if device != "cpu" else "use the 3 mm model (fast)"
            with _weights_env(self.results), contextlib.redirect_stdout(sys.stderr), out_of_memory_hint(
                f"TotalSegmentator task {task}", volume.shape, self.device, advice
            ):
                result = self._run(to_nifti(volume), None, ml=True, task=task, fast=self._fast(task), device=device,
                                   quiet=True, nr_thr_resamp=1, nr_thr_saving=1)
            self._labels[key] = labels_from_nifti(np.asarray(result.dataobj), volume.shape, "TotalSegmentator")
        return self._labels[key]

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape``; a prompt box clips it, a point picks a component."""
        name = resolve_target(target, self.targets)
        if volume.modality != "CT" or volume.is_2d:
            raise SegmentationError(
                f"the TotalSegmentator adapter runs its 3-D CT models; got a {'2-D ' if volume.is_2d else ''}"
                f"{volume.modality} image (use the classical segmenter)"
            )
        task = self._task(name)
        labels = self.labels(volume, task)
        ids = [i for i, cls in self._class_map[task].items() if name in targets_for_class(cls)]
        prompt = prompt or Prompt()
        return restrict_to_prompt(
            np.isin(labels, ids), prompt.region(volume.shape), prompt.point_index(volume.shape), volume.spacing
        )
