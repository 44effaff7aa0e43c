"""Tiny, randomly initialised segmentation checkpoints in the on-disk layouts real weights use.

No machine here can download weights, so every model adapter is tested (and its cost floor
measured, `benchmarks.perf_segment`) on checkpoints built by these functions and read back
through exactly the code path real weights take:

* `build_tiny_totalseg`: a TotalSegmentator home folder (``nnunet/results/Dataset<id>_.../
  <trainer>__nnUNetPlans__3d_fullres/{dataset.json, plans.json, fold_0/checkpoint_final.pth}``),
  with the dataset folder names, trainers and class lists the *installed* TotalSegmentator
  version asks for, so ``totalsegmentator.python_api.totalsegmentator`` finds the weights and
  never tries to download them;
* `build_tiny_bundle`: a MONAI bundle (``configs/inference.json``, ``configs/metadata.json``,
  ``models/model.pt``), either a plain label-map bundle (wholeBody_ct_segmentation style) or a
  promptable one (VISTA3D style: class and point prompts as extra input channels);
* `save_tiny_sam`: a tiny SAM state dict.

Their outputs are random unless ``favour`` names a class: its logit then wins everywhere, which
lets a test check the label mapping end to end. Use them for plumbing and cost, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the tiny SAM: 64-pixel images, one global-attention block, 32-channel embeddings
TINY_SAM = {
    "encoder_embed_dim": 32,
    "encoder_depth": 1,
    "encoder_num_heads": 1,
    "encoder_global_attn_indexes": (0,),
    "image_size": 64,
    "patch_size": 16,
    "window_size": 0,
    "prompt_embed_dim": 32,
    "mask_in_chans": 8,
    "decoder_depth": 1,
    "decoder_mlp_dim": 64,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 32,
}

#: the tiny nnU-Net: a two-stage plain U-Net with 4 and 8 features
TINY_NNUNET_ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 2,
        "features_per_stage": [4, 8],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [2, 2, 2]],
        "n_conv_per_stage": [1, 1],
        "n_conv_per_stage_decoder": [1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


def save_tiny_sam(path: Path, seed: int = 0) -> Path:
    """Build the tiny SAM with seeded random weights and ``torch.save`` its state dict to ``path``."""
    import torch

    from grounding.segmenters.sam import SamConfig, build_sam

    torch.manual_seed(seed)
    model = build_sam(SamConfig.from_dict(TINY_SAM))
    torch.save(model.state_dict(), path)
    return path


def _favour_class(layer: Any, index: int) -> None:
    """Zero a 1x1 output convolution and give class ``index`` the only positive bias."""
    import torch

    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(-10.0)
        layer.bias[index] = 10.0


def _nnunet_plans(dataset_name: str, spacing: float, patch: int) -> dict[str, Any]:
    """A plans.json for `TINY_NNUNET_ARCH` at isotropic ``spacing`` mm (nnU-Net v2 format)."""
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [spacing] * 3,
        "original_median_shape_after_transp": [patch] * 3,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": [patch] * 3,
                "median_image_size_in_voxels": [patch] * 3,
                "spacing": [spacing] * 3,
                "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                       "force_separate_z": None},
                "architecture": TINY_NNUNET_ARCH,
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 1500.0, "mean": 50.0, "median": 40.0, "min": -1000.0, "percentile_00_5": -1000.0,
                  "percentile_99_5": 1200.0, "std": 300.0}
        },
    }


def _write_nnunet_model(folder: Path, dataset_name: str, labels: dict[int, str], trainer: str, spacing: float,
                        patch: int, favour: str | None, seed: int) -> None:
    """One trained-model folder of nnU-Net v2 with random weights."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    folder.mkdir(parents=True, exist_ok=True)
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{n: i for i, n in labels.items()}},
               "numTraining": 1, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    (folder / "plans.json").write_text(json.dumps(_nnunet_plans(dataset_name, spacing, patch), indent=1))
    torch.manual_seed(seed)
    arch = TINY_NNUNET_ARCH
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 1, len(labels) + 1, deep_supervision=False)
    if favour is not None and favour in labels.values():
        index = next(i for i, n in labels.items() if n == favour)
        _favour_class(net.decoder.seg_layers[-1], index)
    (folder / "fold_0").mkdir(exist_ok=True)
    torch.save({"network_weights": net.state_dict(), "trainer_name": trainer,
                "init_args": {"configuration": "3d_fullres", "fold": 0},
                "inference_allowed_mirroring_axes": None}, folder / "fold_0" / "checkpoint_final.pth")


def build_tiny_totalseg(home: str | Path, task: str = "total", fast: bool = True, favour: str | None = None,
                        patch: int = 16, seed: int = 0) -> Path:
    """A TotalSegmentator home folder holding tiny models for ``task`` (``fast``: the 3 mm model).

    The dataset ids, folder names, trainer and class list of every model come from the installed
    TotalSegmentator (``get_task_config``, ``TASK_ID_WEIGHTS_CONFIGS``, its class maps), so the
    layout is the one that version reads. The model spacing is the task's resampling (3 mm fast,
    1.5 mm full resolution). ``config.json`` turns TotalSegmentator's usage statistics off.

    Returns:
        ``home`` (set ``TOTALSEG_HOME_DIR`` to it, or pass it as the adapter's ``weights``).
    """
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.map_to_binary import class_map, class_map_5_parts, map_taskid_to_partname_ct
    from totalsegmentator.python_api import get_task_config

    home = Path(home)
    results = home / "nnunet" / "results"
    config = get_task_config(task, fast=fast, quiet=True)
    ids = config["task_id"] if isinstance(config["task_id"], list) else [config["task_id"]]
    resample = config["resample"]
    spacing = float(resample[0] if isinstance(resample, (list, tuple)) else resample or 1.5)
    for k, task_id in enumerate(ids):
        labels = class_map_5_parts[map_taskid_to_partname_ct[task_id]] if len(ids) > 1 else class_map[task]
        name = TASK_ID_WEIGHTS_CONFIGS[task_id]["foldername"]
        trainer = config["trainer"]
        _write_nnunet_model(results / name / f"{trainer}__nnUNetPlans__{config['model']}", name, labels, trainer,
                            spacing, patch, favour, seed + k)
    (home / "config.json").write_text(json.dumps({"totalseg_id": "totalseg_tiny", "send_usage_stats": False,
                                                  "statistics_disclaimer_shown": True, "prediction_counter": 0},
                                                 indent=1))
    return home


#: classes of the tiny label-map bundle (TotalSegmentator v1 names, as wholeBody_ct_segmentation uses)
TINY_BUNDLE_CLASSES = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "liver", 5: "lung_upper_lobe_left",
                       6: "lung_lower_lobe_left", 7: "vertebrae_L1"}
#: classes of the tiny promptable bundle (VISTA3D's naming: side first, words with spaces)
TINY_VISTA_CLASSES = {1: "liver", 2: "spleen", 3: "right kidney", 4: "left kidney", 5: "aorta", 6: "left lung upper lobe"}

_LOAD = [
    {"_target_": "LoadImaged", "keys": "@image_key", "image_only": True},
    {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
]


def _labelmap_config(n_out: int, spacing: float, patch: int) -> dict[str, Any]:
    """inference.json of a wholeBody_ct_segmentation-style bundle with a tiny SegResNet."""
    return {
        "imports": ["$import os"],
        "bundle_root": ".",
        "image_key": "image",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {"_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": n_out,
                        "init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1], "dropout_prob": 0.0},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            *_LOAD,
            {"_target_": "EnsureTyped", "keys": "@image_key"},
            {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "@image_key", "pixdim": [spacing] * 3, "mode": "bilinear"},
            {"_target_": "NormalizeIntensityd", "keys": "@image_key", "nonzero": True},
            {"_target_": "ScaleIntensityd", "keys": "@image_key", "minv": -1.0, "maxv": 1.0},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [patch] * 3, "sw_batch_size": 1, "overlap": 0.25,
                    "padding_mode": "replicate", "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "@image_key",
             "nearest_interp": True, "to_tensor": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "trans"},
        ]},
        "checkpointloader": {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                             "load_dict": {"model": "@network"}},
    }


def _vista_config(n_classes: int, spacing: float, patch: int) -> dict[str, Any]:
    """inference.json of a VISTA3D-style promptable bundle with a tiny ``VISTA3D`` network."""
    return {
        "imports": ["$import copy", "$import json", "$import pathlib"],
        "bundle_root": ".",
        "image_key": "image",
        "output_dir": "$@bundle_root + '/eval'",
        "metadata_path": "$@bundle_root + '/configs/metadata.json'",
        "metadata": "$json.loads(pathlib.Path(@metadata_path).read_text())",
        "labels_dict": "$@metadata['network_data_format']['outputs']['pred']['channel_def']",
        "subclass": {},
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {
            "_target_": "monai.networks.nets.vista3d.VISTA3D",
            "image_encoder": {"_target_": "monai.networks.nets.segresnet_ds.SegResNetDS2", "in_channels": 1,
                              "blocks_down": [1, 1], "norm": "instance", "out_channels": 8, "init_filters": 8,
                              "dsdepth": 1},
            "point_head": {"_target_": "monai.networks.nets.vista3d.PointMappingSAM", "feature_size": 8,
                           "n_classes": n_classes, "last_supported": n_classes},
            "class_head": {"_target_": "monai.networks.nets.vista3d.ClassMappingClassify", "n_classes": n_classes,
                           "feature_size": 8, "use_mlp": True},
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            *_LOAD,
            {"_target_": "EnsureTyped", "keys": "@image_key", "device": "@device", "track_meta": True},
            {"_target_": "Spacingd", "keys": "@image_key", "pixdim": [spacing] * 3, "mode": "bilinear"},
            {"_target_": "CropForegroundd", "keys": "@image_key", "allow_smaller": True, "margin": 2,
             "source_key": "@image_key"},
            {"_target_": "monai.apps.vista3d.transforms.VistaPreTransformd", "keys": "@image_key",
             "subclass": "@subclass", "labels_dict": "@labels_dict"},
            {"_target_": "ScaleIntensityRanged", "keys": "@image_key", "a_min": -963.8, "a_max": 1053.7,
             "b_min": 0, "b_max": 1, "clip": True},
            {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
            {"_target_": "CastToTyped", "keys": "@image_key", "dtype": "$torch.float32"},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [patch] * 3, "sw_batch_size": 1, "overlap": 0.3},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "monai.apps.vista3d.transforms.VistaPostTransformd", "keys": "pred"},
            {"_target_": "Invertd", "keys": "pred", "transform": "$copy.deepcopy(@preprocessing)",
             "orig_keys": "@image_key", "nearest_interp": True, "to_tensor": True},
            {"_target_": "Lambdad", "func": "$lambda x: torch.nan_to_num(x, nan=255)", "keys": "pred"},
            {"_target_": "SaveImaged", "keys": "pred", "resample": False, "output_dir": "@output_dir"},
        ]},
        "checkpointloader": {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                             "load_dict": {"model": "@network"}},
    }


def build_tiny_bundle(folder: str | Path, kind: str = "labelmap", favour: str | None = None, spacing: float = 3.0,
                      patch: int = 16, seed: int = 0) -> Path:
    """A MONAI bundle folder with a tiny network and random weights.

    Args:
        folder: where to write ``configs/`` and ``models/``.
        kind: ``labelmap`` (SegResNet, softmax + argmax, like wholeBody_ct_segmentation) or ``vista``
            (a ``VISTA3D`` network with class and point prompts, like the VISTA3D bundle).
        favour: a class name of the label-map bundle whose logit wins everywhere.
        spacing: the bundle's resampling in mm; patch: its sliding-window size in voxels.

    Returns:
        ``folder``.
    """
    import torch
    from monai.bundle import ConfigParser

    if kind not in ("labelmap", "vista"):
        raise ValueError(f"kind must be 'labelmap' or 'vista', got '{kind}'")
    folder = Path(folder)
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    classes = TINY_BUNDLE_CLASSES if kind == "labelmap" else TINY_VISTA_CLASSES
    channel_def = {"0": "background", **{str(k): v for k, v in classes.items()}}
    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.0.1", "name": f"tiny_{kind}_ct_segmentation", "task": "tiny test bundle, random weights",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "num_channels": 1,
                                 "spatial_shape": [patch] * 3, "dtype": "float32"}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": len(channel_def),
                                 "spatial_shape": [patch] * 3, "dtype": "float32", "channel_def": channel_def}},
        },
    }
    config = (_labelmap_config(len(channel_def), spacing, patch) if kind == "labelmap"
              else _vista_config(len(channel_def) + 1, spacing, patch))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (folder / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    parser = ConfigParser(config)
    parser["bundle_root"] = str(folder)
    torch.manual_seed(seed)
    net = parser.get_parsed_content("network_def")
    if favour is not None and kind == "labelmap":
        index = next(k for k, v in classes.items() if v == favour)
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        _favour_class(last, index)
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder
