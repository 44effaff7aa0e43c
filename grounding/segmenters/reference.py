"""The reference segmenter: answers ``segment`` with a case's reference (ground-truth) masks.

This is the "oracle" tool mode of tool-using benchmarks (DeepTumorVQA's ``--agent-mode
oracle``): the model plans and reasons, the masks are the annotators'. It isolates reasoning
from segmentation errors, so an oracle figure is an upper bound for the same model with
`predicted` masks (any other segmenter) and is never a figure of our segmenters.

Masks come from either

* ``masks``: ``{target: path}`` (a benchmark `Case.masks`; the runner passes each case's own), or
* ``weights``: a folder of ``<target>.nii.gz`` files, the AbdomenAtlas ``segmentations/`` layout
  (``liver.nii.gz``, ``kidney_left.nii.gz``, ``liver_lesion.nii.gz`` ...), for ``infer``.

Names are normalised like every target (``left_kidney`` -> ``kidney_left``). A request for
``lesion`` (also ``tumor``, ``mass``) is the union of every lesion-like mask (names containing
lesion, tumor, tumour, cyst, mass, nodule, metastasis), confined to ``Prompt.within`` when given,
so "a lesion within the liver" is the liver's reference lesions. A box or point prompt restricts
the mask the same way the classical segmenter does. Masks are read with `imaging.io.load` (any
format it reads) and must lie on the volume's grid; a target without a mask is an error naming
the masks the case has, never an empty mask (an absent file is not an absent structure).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.base import TARGET_DESCRIPTIONS, Prompt, SegmentationError, normalize_target
from grounding.segmenters.morphology import restrict_to_prompt
from imaging.volume import Volume

#: a mask whose name matches this is a lesion (part of the ``lesion`` target)
LESION_NAME = re.compile(r"lesion|tumou?r|cyst|mass|nodule|metasta", re.I)
#: targets offered when no mask set is known yet (a run-level tool list): every target name the
#: other segmenters know plus the AbdomenAtlas classes DeepTumorVQA asks about
ATLAS_TARGETS = ("pancreas", "gall_bladder", "stomach", "postcava", "colon", "duodenum", "esophagus",
                 "liver_lesion", "pancreatic_lesion", "kidney_lesion", "colon_lesion")
#: mask voxels at or above this value are inside (label maps stored as 0/1 or 0/255 floats)
INSIDE = 0.5


def mask_files(folder: Path) -> dict[str, str]:
    """``{name: path}`` of the NIfTI masks in an AbdomenAtlas-style ``segmentations`` folder ({} if absent)."""
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.iterdir()):
        for suffix in (".nii.gz", ".nii"):
            if path.name.endswith(suffix):
                files[path.name[: -len(suffix)]] = str(path.resolve())
    return files


class ReferenceSegmenter:
    """Reference masks behind the `Segmenter` interface (see the module docstring).

    Args:
        masks: ``{target: path}`` of one case's reference masks.
        weights: a folder of ``<target>.nii.gz`` masks (used when ``masks`` is not given).
    """

    name = "reference"

    def __init__(self, masks: dict[str, str] | None = None, weights: str | Path | None = None, **_: Any) -> None:
        if not masks and weights and not Path(weights).is_dir():
            raise SegmentationError(f"the reference segmenter's --weights must be a folder of <target>.nii.gz masks "
                                    f"(AbdomenAtlas segmentations/); {weights} is not a folder")
        raw = dict(masks) if masks else mask_files(Path(weights)) if weights else {}
        self.masks: dict[str, str] = {normalize_target(k): str(v) for k, v in raw.items()}
        self.lesions = tuple(t for t in self.masks if LESION_NAME.search(t))
        if self.masks:
            known = list(self.masks) + (["lesion"] if self.lesions and "lesion" not in self.masks else [])
        else:
            known = list(TARGET_DESCRIPTIONS) + [t for t in ATLAS_TARGETS if t not in TARGET_DESCRIPTIONS]
        self.targets: tuple[str, ...] = tuple(known)
        self._loaded: dict[str, np.ndarray] = {}

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        if not self.masks:
            raise SegmentationError("the reference segmenter has no reference masks: it answers from a benchmark "
                                    "case's masks (bench --segmenter reference on a task whose cases have masks) "
                                    "or from --weights <a folder of <target>.nii.gz masks>")
        if not target:
            raise SegmentationError(f"the reference segmenter needs a target; reference masks: "
                                    f"{', '.join(self.targets)}")
        key = normalize_target(target)
        if key in self.masks:
            mask = self._mask(key, volume)
        elif key == "lesion" and self.lesions:
            mask = np.zeros(volume.shape, dtype=bool)
            for name in self.lesions:
                mask |= self._mask(name, volume)
        else:
            raise SegmentationError(f"no reference mask for '{target}' in this case; reference masks: "
                                    f"{', '.join(self.targets)}")
        if prompt is not None:
            within = prompt.within_mask(volume.shape)
            if within is not None:
                mask = mask & within
            mask = restrict_to_prompt(mask, prompt.region(volume.shape), prompt.point_index(volume.shape),
                                      volume.spacing)
        return mask

    def _mask(self, name: str, volume: Volume) -> np.ndarray:
        if name not in self._loaded:
            from imaging.io import load

            ref = load(self.masks[name])
            if ref.shape != volume.shape:
                detail = (" (a 2-D slice: reference masks are 3-D, segment in mode '3d')" if volume.shape[0] == 1
                          else "; the mask belongs to another image")
                raise SegmentationError(f"the reference mask '{name}' has shape {ref.shape}, the volume {volume.shape}"
                                        f"{detail}")
            if not np.allclose(ref.affine, volume.affine, atol=1e-3):
                raise SegmentationError(f"the reference mask '{name}' is on another grid than the volume (its affine "
                                        "differs); reference masks must be saved on the image's own grid")
            self._loaded[name] = ref.data >= INSIDE
        return self._loaded[name].copy()
