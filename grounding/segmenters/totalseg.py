"""TotalSegmentator adapter: its CT classes mapped onto our target names.

The volume goes to ``totalsegmentator.python_api.totalsegmentator`` as an in-memory NIfTI image
(our LPS ``(z, y, x)`` array stored as ``(x, y, z)`` with the affine converted to RAS, as
`imaging.writers.write_nifti` does), the multi-label result comes back the same way, and the
classes of the requested target are merged (`targets_for_class`): the lobes of each lung make
``lung_left`` / ``lung_right`` / ``lungs``, vertebrae, ribs and the other bones make ``bone``,
``trachea`` is ``airways``; organs keep their names (`ORGAN_TARGETS`). ``body`` comes from the
``body`` task and ``nodule`` / ``lesion`` from the ``lung_nodules`` task.

Needs the optional package (``pip install 'mmreason[totalseg]'``) and its weights, which it would
otherwise try to download: run ``totalseg_download_weights`` on a machine with internet and copy
the weights folder, or point ``TOTALSEG_HOME_DIR`` / ``TOTALSEG_WEIGHTS_PATH`` at it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from grounding.segmenters.base import ORGAN_TARGETS, TARGETS, Prompt, SegmentationError, resolve_target
from grounding.segmenters.morphology import restrict_to_prompt
from imaging.io.orientation import RAS_TO_LPS
from imaging.volume import Volume

INSTALL_HINT = "pip install 'mmreason[totalseg]'"
#: TotalSegmentator class-name prefixes and names that are bone
BONE_PREFIXES = ("vertebrae_", "rib_", "hip_", "femur_", "humerus_", "scapula_", "clavicula_")
BONE_NAMES = ("sacrum", "sternum", "costal_cartilages", "skull")
#: targets that need a task other than ``total``
TASK_FOR_TARGET = {"body": "body", "nodule": "lung_nodules", "lesion": "lung_nodules"}


def targets_for_class(name: str) -> tuple[str, ...]:
    """Our targets that a TotalSegmentator class belongs to (empty when none).

    >>> targets_for_class("lung_lower_lobe_left")
    ('lung_left', 'lungs')
    """
    if name.startswith("lung_") and name.endswith(("_left", "_right")) and "lobe" in name:
        return ("lung_left" if name.endswith("_left") else "lung_right", "lungs")
    if name == "trachea":
        return ("airways",)
    if name.startswith(BONE_PREFIXES) or name in BONE_NAMES:
        return ("bone",)
    if name in ORGAN_TARGETS:
        return (name,)
    if name.startswith("body"):  # body task: body_trunc, body_extremities
        return ("body",)
    if name == "lung_nodules":
        return ("nodule", "lesion")
    return ()


def weights_dir() -> Path:
    """Where TotalSegmentator looks for its weights (same rules as its own ``config``)."""
    if "TOTALSEG_WEIGHTS_PATH" in os.environ:
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))
    return home / "nnunet" / "results"


def require_weights() -> Path:
    """The weights folder, or a `SegmentationError` saying how to provide it."""
    folder = weights_dir()
    if not folder.is_dir() or not any(p.name.startswith("Dataset") for p in folder.iterdir()):
        raise SegmentationError(
            f"TotalSegmentator weights not found in {folder} (this machine cannot download them); run "
            "`totalseg_download_weights -t total` on a machine with internet and copy its ~/.totalsegmentator "
            "folder here, or set TOTALSEG_HOME_DIR to a folder holding nnunet/results"
        )
    return folder


def _import_api() -> tuple[Callable[..., Any], dict[str, dict[int, str]]]:
    try:
        from totalsegmentator.map_to_binary import class_map
        from totalsegmentator.python_api import totalsegmentator
    except ImportError as err:
        raise SegmentationError(
            f"the totalsegmentator segmenter needs the TotalSegmentator package: {INSTALL_HINT}"
        ) from err
    return totalsegmentator, class_map


def to_nifti(volume: Volume):
    """An in-memory ``nibabel.Nifti1Image`` of ``volume`` ((x, y, z) array, RAS affine)."""
    import nibabel as nib

    return nib.Nifti1Image(volume.data.transpose(2, 1, 0), RAS_TO_LPS @ volume.affine[:, [2, 1, 0, 3]])


def from_nifti(image, shape: tuple[int, int, int]) -> np.ndarray:
    """A label image returned for `to_nifti` input -> integer labels ``(z, y, x)``."""
    labels = np.asarray(image.dataobj).transpose(2, 1, 0)
    if labels.shape != shape:
        raise SegmentationError(f"TotalSegmentator returned shape {labels.shape}, expected {shape}")
    return labels


class TotalSegmentatorSegmenter:
    """Targets from TotalSegmentator's CT models.

    Args:
        fast: use the 3 mm model (faster, coarser).
        device: ``cpu``, ``gpu`` or ``mps``, passed to TotalSegmentator.

    Raises (at construction): `SegmentationError` when the package is missing.
    """

    name = "totalsegmentator"
    #: the CT targets and organs (``thorax``, a radiograph target, has no TotalSegmentator class)
    targets: tuple[str, ...] = tuple(t for t in {**TARGETS, **ORGAN_TARGETS} if t != "thorax")

    def __init__(self, fast: bool = False, device: str = "cpu") -> None:
        self._run, self._class_map = _import_api()
        self.fast = bool(fast)
        self.device = device

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape``; a prompt box clips it, a point picks a component."""
        name = resolve_target(target, self.targets)
        if volume.modality != "CT":
            raise SegmentationError(f"the TotalSegmentator adapter runs its CT models; got {volume.modality}")
        require_weights()
        task = TASK_FOR_TARGET.get(name, "total")
        result = self._run(to_nifti(volume), None, ml=True, task=task, fast=self.fast, device=self.device, quiet=True)
        labels = from_nifti(result, volume.shape)
        ids = [i for i, cls in self._class_map[task].items() if name in targets_for_class(cls)]
        prompt = prompt or Prompt()
        return restrict_to_prompt(
            np.isin(labels, ids), prompt.region(volume.shape), prompt.point_index(volume.shape), volume.spacing
        )
