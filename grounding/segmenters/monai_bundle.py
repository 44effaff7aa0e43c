"""MONAI bundle adapter: a bundle's own network, transforms and inferer through ``monai.bundle``.

A bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``, as
downloaded by ``python -m monai.bundle download``) is read with ``monai.bundle.ConfigParser``; the
adapter instantiates the bundle's ``network_def``, ``preprocessing``, ``inferer`` and
``postprocessing`` exactly as its ``evaluator`` would, loads the weights the bundle's
``checkpointloader`` names, and replaces only the file plumbing: the volume goes in as a NIfTI file
(`grounding.segmenters.volume_io.to_nifti`) through the bundle's own ``LoadImaged``, and the
``pred`` after the bundle's post-processing (``Invertd`` back to the input grid) comes back as a
label map; ``SaveImaged`` steps are skipped.

Labels are the bundle metadata's ``network_data_format.outputs.pred.channel_def`` (the same key
VISTA3D's own config reads); names are mapped onto our targets (`bundle_targets`): "left kidney"
and "kidney_left" are ``kidney_left``, lobes join ``lung_left`` / ``lung_right`` / ``lungs``,
vertebrae ``vertebrae`` and ``bone``, as for TotalSegmentator.

Two kinds of bundle:

* label-map bundles (wholeBody_ct_segmentation, spleen_ct_segmentation ...): one pass of the
  inferer gives every class; the result is cached per volume.
* promptable bundles whose network is ``monai.networks.nets.VISTA3D``: a target becomes class
  prompts (``label_prompt``, one inferer pass per class id; the bundle's ``VistaPreTransformd``
  expands super-classes), a point prompt becomes a VISTA3D point click mapped into the
  pre-processed image through the affines and run with MONAI's ``point_based_window_inferer``;
  the bundle's ``VistaPostTransformd`` turns the logits into labels.

Device and memory: ``device="auto"`` (GPU when present, float16 autocast there when ``half``);
``sw_batch_size`` and ``sw_overlap`` override the bundle inferer's; running out of memory raises a
`SegmentationError` that says which of them to lower.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.base import (
    MODEL_TARGETS,
    ORGAN_TARGETS,
    TARGETS,
    Prompt,
    SegmentationError,
    normalize_target,
    resolve_target,
)
from grounding.segmenters.device import autocast, out_of_memory_hint, resolve_device
from grounding.segmenters.morphology import restrict_to_prompt
from grounding.segmenters.totalseg import targets_for_class
from grounding.segmenters.volume_io import labels_from_nifti, volume_key, write_temp_nifti
from imaging.io.orientation import RAS_TO_LPS
from imaging.volume import Volume

INFERENCE_CONFIG = Path("configs") / "inference.json"
METADATA = Path("configs") / "metadata.json"
DEFAULT_WEIGHTS = Path("models") / "model.pt"
KNOWN = {**TARGETS, **ORGAN_TARGETS, **MODEL_TARGETS}


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a MONAI bundle folder (has ``configs/inference.json`` and metadata)."""
    folder = Path(path)
    return (folder / INFERENCE_CONFIG).is_file() and (folder / METADATA).is_file()


def channel_names(metadata: dict[str, Any]) -> dict[int, str]:
    """The bundle's output channel (label value) -> class name, background dropped.

    Raises:
        SegmentationError: the metadata has no ``network_data_format.outputs.pred.channel_def``.
    """
    try:
        channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (KeyError, TypeError) as err:
        raise SegmentationError(
            "the bundle's metadata.json has no network_data_format.outputs.pred.channel_def, so its labels are "
            "unknown; add the label names there"
        ) from err
    return {int(k): str(v) for k, v in channels.items() if int(k) != 0 and str(v).lower() != "background"}


def class_key(name: str) -> str:
    """A bundle class name in TotalSegmentator's form: ``"right lung upper lobe"`` -> ``lung_upper_lobe_right``."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    for side in ("left", "right"):
        if key.startswith(side + "_"):
            key = key[len(side) + 1:] + "_" + side
    return key


def bundle_targets(channels: dict[int, str]) -> dict[str, list[int]]:
    """Our targets -> the bundle's label values that make them (targets with no class left out)."""
    out: dict[str, list[int]] = {}
    for value, name in channels.items():
        key = class_key(name)
        found = set(targets_for_class(key))
        alias = normalize_target(key)
        if alias in KNOWN:
            found.add(alias)
        for target in found:
            out.setdefault(target, []).append(value)
    return out


def _to_ras_voxel(volume: Volume, point_zyx: tuple[int, int, int], image_affine: np.ndarray) -> list[float]:
    """A voxel of ``volume`` -> continuous voxel indices of a pre-processed image with RAS ``image_affine``."""
    world_lps = volume.voxel_to_world([point_zyx])[0]
    world_ras = RAS_TO_LPS[:3, :3] @ np.asarray(world_lps, dtype=np.float64)
    inverse = np.linalg.inv(np.asarray(image_affine, dtype=np.float64))
    return [float(v) for v in inverse[:3, :3] @ world_ras + inverse[:3, 3]]


class MonaiBundleSegmenter:
    """Targets (and, for VISTA3D bundles, point prompts) from a MONAI bundle; see the module docstring.

    Args:
        bundle: the bundle folder.
        device: ``auto`` (GPU when present), ``cpu``, ``cuda`` / ``cuda:N``.
        half: float16 autocast on a GPU.
        sw_batch_size: sliding-window batch (default: the bundle's).
        sw_overlap: sliding-window overlap in [0, 1) (default: the bundle's).
        config_file: the inference config inside the bundle.

    Raises (at construction): `SegmentationError` for a folder that is not a bundle, or weights that
    do not fit its network.
    """

    name = "monai"

    def __init__(self, bundle: str | Path, device: str = "auto", half: bool = True, sw_batch_size: int | None = None,
                 sw_overlap: float | None = None, config_file: str | Path = INFERENCE_CONFIG) -> None:
        import torch

        try:
            from monai.bundle import ConfigParser
            from monai.networks.nets import VISTA3D
            from monai.transforms import Compose, Invertd, SaveImaged
        except ModuleNotFoundError:
            raise SegmentationError("the monai segmenter needs MONAI: pip install 'mmreason[monai]'") from None

        self.bundle = Path(bundle).expanduser()
        if not is_bundle(self.bundle):
            raise SegmentationError(
                f"{self.bundle} is not a MONAI bundle (needs {INFERENCE_CONFIG} and {METADATA}); download one with "
                "`python -m monai.bundle download NAME --bundle_dir DIR` on a machine with internet"
            )
        if sw_overlap is not None and not 0 <= sw_overlap < 1:
            raise SegmentationError(f"sw_overlap must be in [0, 1), got {sw_overlap}")
        if sw_batch_size is not None and sw_batch_size < 1:
            raise SegmentationError(f"sw_batch_size must be at least 1, got {sw_batch_size}")
        self.device = resolve_device(device)
        self.half = bool(half)
        parser = ConfigParser()
        parser.read_config(str(self.bundle / config_file))
        parser.read_meta(str(self.bundle / METADATA))
        parser["bundle_root"] = str(self.bundle)
        parser["device"] = f"$torch.device('{self.device}')"
        inferer_config = parser.get("inferer", {})
        for key, value in (("sw_batch_size", sw_batch_size), ("overlap", sw_overlap)):
            if value is not None and isinstance(inferer_config, dict) and key in inferer_config:
                parser[f"inferer#{key}"] = value
        if isinstance(inferer_config, dict) and "device" in inferer_config:
            parser["inferer#device"] = f"$torch.device('{self.device}')"
        self.metadata = json.loads((self.bundle / METADATA).read_text())
        self.bundle_name = str(self.metadata.get("name") or self.bundle.name)
        self.channels = channel_names(self.metadata)
        self.target_ids = bundle_targets(self.channels)
        self.targets: tuple[str, ...] = tuple(t for t in KNOWN if t in self.target_ids)
        if (self.bundle / "scripts").is_dir() and str(self.bundle) not in sys.path:
            sys.path.insert(0, str(self.bundle))  # "$import scripts" in a bundle's config, as `monai.bundle run` does
        try:
            self.network = parser.get_parsed_content("network_def")
            self.preprocessing = parser.get_parsed_content("preprocessing")
            self.inferer = parser.get_parsed_content("inferer")
            post = parser.get_parsed_content("postprocessing")
        except Exception as err:  # monai raises several types while instantiating a config
            raise SegmentationError(f"cannot instantiate the bundle {self.bundle}: {err}") from err
        self.postprocessing = Compose([t for t in post.transforms if not isinstance(t, SaveImaged)])
        for step in self.postprocessing.transforms:
            if isinstance(step, Invertd):
                # VISTA3D's config inverts a deep copy of the pre-processing, whose transform ids MONAI's
                # inverse check rejects under the fork start method; invert the instance that ran instead
                step.transform = self.preprocessing
        self.promptable = isinstance(self.network, VISTA3D)
        weights = self._weights_path(parser)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]  # CheckpointLoader's load_dict {"model": network}
        try:
            self.network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise SegmentationError(
                f"the weights in {weights} do not fit the bundle's network_def ({str(err).splitlines()[0]})"
            ) from err
        self.network.to(self.device).eval()
        self._labels: dict[str, np.ndarray] = {}

    def _weights_path(self, parser: Any) -> Path:
        path = self.bundle / DEFAULT_WEIGHTS
        with contextlib.suppress(Exception):  # a bundle without a checkpointloader uses models/model.pt
            path = Path(parser.get_parsed_content("checkpointloader#load_path"))
        if not path.is_file():
            raise SegmentationError(f"the bundle's weights {path} are missing; download the bundle with its models")
        return path

    def _run(self, volume: Volume, data: dict[str, Any], points: list[tuple[int, int, int]] | None = None
             ) -> np.ndarray:
        """Pre-process ``data`` plus the volume, infer, post-process; labels on the volume's grid."""
        import torch
        from monai.apps.vista3d.inferer import point_based_window_inferer
        from monai.data import MetaTensor

        advice = (f"lower --sw-batch-size (bundle inferer: {getattr(self.inferer, 'sw_batch_size', '?')}) or "
                  f"--sw-overlap ({getattr(self.inferer, 'overlap', '?')})"
                  + (", or use --device cpu" if self.device != "cpu" else ""))
        with tempfile.TemporaryDirectory(prefix="mmreason_bundle_") as tmp, out_of_memory_hint(
            f"the MONAI bundle {self.bundle_name}", volume.shape, self.device, advice
        ):
            item = self.preprocessing({"image": str(write_temp_nifti(volume, tmp)), **data})
            image = item["image"]
            batch = image[None].to(self.device)
            with torch.no_grad(), autocast(self.device, self.half):
                if not self.promptable:
                    logits = self.inferer(batch, self.network)[0]
                elif points:
                    coords = [_to_ras_voxel(volume, p, image.affine) for p in points]
                    item["points"] = torch.tensor([coords], dtype=torch.float32)
                    item["point_labels"] = torch.ones((1, len(coords)), dtype=torch.int64)
                    logits = point_based_window_inferer(
                        batch, roi_size=self.inferer.roi_size, predictor=self.network,
                        point_coords=item["points"].to(self.device), point_labels=item["point_labels"].to(self.device),
                        overlap=self.inferer.overlap, sw_batch_size=1, mode="gaussian",
                    )[:, 0]
                else:
                    prompts = [int(v) for v in item["label_prompt"]]
                    item["label_prompt"] = torch.tensor(prompts)
                    logits = torch.cat([
                        self.inferer(batch, self.network, class_vector=torch.tensor([[v]], device=self.device))[:, 0]
                        for v in prompts
                    ])
            item["pred"] = MetaTensor(logits.float().cpu(), meta=image.meta,
                                      applied_operations=list(image.applied_operations))
            item["image"] = image.cpu() if hasattr(image, "cpu") else image
            out = self.postprocessing(item)
        pred = out["pred"]
        array = pred.detach().cpu().numpy() if hasattr(pred, "detach") else np.asarray(pred)
        return labels_from_nifti(array[0], volume.shape, f"the MONAI bundle {self.bundle_name}")

    def labels(self, volume: Volume) -> np.ndarray:
        """The label map of a label-map bundle for ``volume`` (cached per volume)."""
        key = volume_key(volume)
        if key not in self._labels:
            self._labels[key] = self._run(volume, {})
        return self._labels[key]

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape``.

        A target selects its classes (VISTA3D: as class prompts); on a VISTA3D bundle a point
        prompt without a target is a click on the object. A box clips the result; a point with a
        target picks the component under it.

        Raises:
            SegmentationError: an unknown target, a 2-D image, or nothing to segment.
        """
        if volume.is_2d:
            raise SegmentationError(f"the MONAI bundle {self.bundle_name} segments 3-D volumes; use the classical "
                                    "segmenter for 2-D images")
        prompt = prompt or Prompt()
        point = prompt.point_index(volume.shape)
        if target is None:
            if not (self.promptable and point is not None):
                raise SegmentationError(
                    f"give a target (one of: {', '.join(self.targets)})"
                    + ("" if not self.promptable else " or a point prompt on the object")
                )
            mask = self._run(volume, {}, points=[point]) > 0
            return restrict_to_prompt(mask, prompt.region(volume.shape), None, volume.spacing)
        name = resolve_target(target, self.targets)
        ids = self.target_ids[name]
        labels = self._run(volume, {"label_prompt": ids}) if self.promptable else self.labels(volume)
        return restrict_to_prompt(np.isin(labels, ids), prompt.region(volume.shape), point, volume.spacing)
