"""Model segmenters on tiny checkpoints built here in the on-disk layouts of the real weights.

TotalSegmentator runs through its own Python API and nnU-Net v2 on a tiny results folder; MONAI
bundles (a label-map bundle and a VISTA3D-style promptable one) through ``monai.bundle``. Weights
are random: the tests check the code path (layout, label mapping, grids, caching, prompts,
options, errors), never quality. Where a class is "favoured" its logit wins everywhere, so the
label mapping can be checked end to end.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest

from grounding.evidence import Evidence
from grounding.segmenters import Prompt, SegmentationError, get_segmenter
from grounding.segmenters.agreement import assess_agreement, segmenter_agreement
from grounding.segmenters.auto import discover_weights, weights_kind
from grounding.segmenters.device import out_of_memory_hint, resolve_device
from grounding.segmenters.monai_bundle import bundle_targets, class_key
from grounding.segmenters.spec import SegmenterSpec
from grounding.segmenters.tiny import build_tiny_bundle, build_tiny_totalseg, save_tiny_sam
from grounding.tool import ToolContext
from grounding.tools import default_registry
from imaging.phantoms import chest_ct
from imaging.volume import Volume


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a shared CPU their spin-waits cost 10x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_ct() -> Volume:
    """A 20 x 20 x 20 chest CT at 6 mm (small enough for tiny models on a shared CPU)."""
    return chest_ct(seed=0, spacing=(6.0, 6.0, 6.0), fov_mm=(120.0, 120.0, 120.0), vessels=False).volume


@pytest.fixture(scope="module")
def coarse_chest() -> Volume:
    """The whole chest phantom at 8 mm (30 x 42 x 42): enough anatomy for the classical segmenter."""
    return chest_ct(seed=0, spacing=(8.0, 8.0, 8.0), vessels=False).volume


@pytest.fixture(scope="module")
def nnunet_workers():
    """nnU-Net's worker processes started from a forkserver that has imported nnU-Net once.

    nnU-Net spawns its preprocessing and export workers, and each spawned worker re-imports torch
    and nnU-Net (tens of seconds per call on a busy CPU); forked from a preloaded server they start
    at once after the first call. Only the process start method changes: TotalSegmentator, nnU-Net
    and the adapter run their own code unchanged. (Plain fork is not safe here: a worker forked from
    a process whose torch threads are running can deadlock.)
    """
    import nnunetv2.inference.data_iterators as iterators
    import nnunetv2.inference.predict_from_raw_data as predict

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nnunetv2.inference.data_iterators", "nnunetv2.inference.predict_from_raw_data",
                                    "totalsegmentator.nnunet_runtime_patches"])

    class Preloaded:
        def __getattr__(self, name):
            return getattr(multiprocessing, name)

        def get_context(self, method=None):
            return context

    saved = iterators.multiprocessing, predict.multiprocessing
    iterators.multiprocessing = predict.multiprocessing = Preloaded()
    yield
    iterators.multiprocessing, predict.multiprocessing = saved


@pytest.fixture(scope="module")
def totalseg_home(tmp_path_factory):
    return build_tiny_totalseg(tmp_path_factory.mktemp("totalseg"), favour="lung_upper_lobe_left")


@pytest.fixture(scope="module")
def labelmap_bundle(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny_labelmap", favour="liver", spacing=6.0)


@pytest.fixture(scope="module")
def vista_bundle(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory.mktemp("vista") / "tiny_vista", kind="vista", spacing=6.0)


# -- TotalSegmentator -----------------------------------------------------------------------

def test_tiny_totalseg_has_the_layout_the_installed_version_reads(totalseg_home):
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

    folder = totalseg_home / "nnunet" / "results" / TASK_ID_WEIGHTS_CONFIGS[297]["foldername"]
    model = folder / "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres"
    assert {p.name for p in model.iterdir()} == {"dataset.json", "plans.json", "fold_0"}
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    assert len(json.loads((model / "dataset.json").read_text())["labels"]) == 118  # background + 117 classes
    assert json.loads((totalseg_home / "config.json").read_text())["send_usage_stats"] is False


def test_totalseg_end_to_end_through_its_python_api(totalseg_home, small_ct, nnunet_workers, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", "/nonexistent")  # restored after the run, never read
    seg = get_segmenter("totalseg", weights=str(totalseg_home), device="auto")
    assert seg.fast and seg.device == "cpu"  # only the 3 mm model is present
    assert {"lung_upper_lobe_left", "lungs", "vertebrae", "aorta", "liver"} <= set(seg.targets)
    assert "body" not in seg.targets and "nodule" not in seg.targets  # their task weights are absent
    lobe = seg.segment(small_ct, "left upper lobe")
    assert lobe.shape == small_ct.shape and lobe.dtype == bool and lobe.all()
    assert seg.segment(small_ct, "lung_left").all() and seg.segment(small_ct, "lungs").all()
    assert not seg.segment(small_ct, "lung_right").any() and not seg.segment(small_ct, "liver").any()
    assert len(seg._labels) == 1  # one TotalSegmentator run served every target
    box = Prompt(box_zyx=(slice(2, 5), slice(3, 9), slice(4, 8)))
    assert seg.segment(small_ct, "lungs", box).sum() == 3 * 6 * 4
    assert os.environ["TOTALSEG_HOME_DIR"] == "/nonexistent" and "TOTALSEG_WEIGHTS_PATH" not in os.environ
    with pytest.raises(SegmentationError, match="3-D CT"):
        seg.segment(Volume.from_array(small_ct.data, modality="MR"), "lungs")


def test_segment_cli_with_totalseg_weights(totalseg_home, small_ct, nnunet_workers, tmp_path, capsys):
    from imaging.writers import write_nifti
    from mmreason.cli import main

    path = write_nifti(small_ct, tmp_path / "ct.nii.gz")
    assert main(["segment", str(path), "--target", "lung_left", "--segmenter", "totalseg",
                 "--weights", str(totalseg_home), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["segmenter"] == "totalseg" and record["voxels"] == small_ct.data.size


def test_totalseg_without_weights_says_how_to_get_them(tmp_path):
    with pytest.raises(SegmentationError, match="totalseg_download_weights -t total"):
        get_segmenter("totalseg", weights=str(tmp_path))


# -- MONAI bundles --------------------------------------------------------------------------

def test_label_map_bundle_end_to_end(labelmap_bundle, small_ct):
    seg = get_segmenter("monai", weights=str(labelmap_bundle), sw_batch_size=3, sw_overlap=0.5)
    assert not seg.promptable and seg.bundle_name == "tiny_labelmap_ct_segmentation"
    assert (seg.inferer.sw_batch_size, seg.inferer.overlap) == (3, 0.5)  # options reach the bundle's inferer
    assert {"liver", "spleen", "kidney_left", "lungs", "lung_left", "vertebrae", "bone"} <= set(seg.targets)
    liver = seg.segment(small_ct, "liver")
    assert liver.shape == small_ct.shape and liver.all()  # inverted back onto the input grid
    assert not seg.segment(small_ct, "spleen").any() and not seg.segment(small_ct, "lungs").any()
    with pytest.raises(SegmentationError, match="unknown target 'aorta'"):
        seg.segment(small_ct, "aorta")


def test_vista_bundle_class_and_point_prompts(vista_bundle, small_ct):
    seg = get_segmenter("monai", weights=str(vista_bundle))
    assert seg.promptable and {"liver", "kidney_left", "lung_upper_lobe_left", "aorta"} <= set(seg.targets)
    liver = seg.segment(small_ct, "liver")
    assert liver.shape == small_ct.shape and liver.dtype == bool
    assert np.array_equal(liver, seg.segment(small_ct, "liver"))  # deterministic
    point = Prompt(point_zyx=(10.0, 10.0, 10.0), box_zyx=(slice(5, 15), slice(5, 15), slice(5, 15)))
    clicked = seg.segment(small_ct, None, point)
    assert clicked.shape == small_ct.shape and not clicked[:5].any() and not clicked[15:].any()
    with pytest.raises(SegmentationError, match="give a target"):
        get_segmenter("monai", weights=str(vista_bundle)).segment(small_ct)


def test_bundle_label_names_map_onto_our_targets():
    assert class_key("right lung upper lobe") == "lung_upper_lobe_right"
    assert class_key("left kidney") == "kidney_left"
    ids = bundle_targets({1: "liver", 2: "left kidney", 3: "right lung upper lobe", 4: "vertebrae_L1",
                          5: "esophagus"})
    assert ids == {"liver": [1], "kidney_left": [2], "lung_upper_lobe_right": [3], "lung_right": [3],
                   "lungs": [3], "vertebrae": [4], "bone": [4]}


def test_bundle_errors(tmp_path, labelmap_bundle):
    with pytest.raises(SegmentationError, match="not a MONAI bundle"):
        get_segmenter("monai", weights=str(tmp_path))
    with pytest.raises(SegmentationError, match="sw_overlap"):
        get_segmenter("monai", weights=str(labelmap_bundle), sw_overlap=1.5)
    broken = tmp_path / "broken"
    build_tiny_bundle(broken)
    meta = json.loads((broken / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    (broken / "configs" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SegmentationError, match="channel_def"):
        get_segmenter("monai", weights=str(broken))


# -- auto, agreement, device, spec ----------------------------------------------------------

def test_weights_are_recognised_by_their_layout(labelmap_bundle, totalseg_home, tmp_path):
    sam = save_tiny_sam(tmp_path / "sam_tiny.pth")
    medsam = save_tiny_sam(tmp_path / "medsam_tiny.pth")
    assert [weights_kind(p) for p in (labelmap_bundle, totalseg_home, sam, medsam)] == [
        "monai", "totalseg", "sam", "medsam"]
    with pytest.raises(SegmentationError, match="cannot tell what"):
        weights_kind(tmp_path)
    assert discover_weights([labelmap_bundle])["monai"] == labelmap_bundle


def test_auto_picks_per_target_and_says_why(labelmap_bundle, coarse_chest, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no TotalSegmentator weights in the default places
    for var in ("TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH"):
        monkeypatch.delenv(var, raising=False)
    sam = save_tiny_sam(tmp_path / "medsam_tiny.pth")
    spec = SegmenterSpec(name="auto", weights=[str(labelmap_bundle), str(sam)])
    context = ToolContext(volumes={"0": coarse_chest}, segmenter="auto", options=spec.tool_options())
    registry = default_registry(spec.targets())
    liver = registry.run(context, "segment", {"target": "liver"})
    assert liver.data["segmenter"] == "monai" and liver.data["segmenter_requested"] == "auto"
    assert "monai knows 'liver'" in liver.data["segmenter_reason"] and "chosen by auto" in liver.text
    lungs = registry.run(context, "segment", {"target": "lungs"})  # the bundle's lobes; it never predicts them
    assert lungs.data["segmenter"] == "monai" and lungs.data["voxels"] == 0
    assert lungs.data["agreement"]["other"] == "classical" and lungs.data["agreement"]["dice"] == 0.0
    assert lungs.quality.level == "doubtful" and "classical segmenter disagrees" in lungs.quality.reasons[0]
    airways = registry.run(context, "segment", {"target": "airways"})
    assert airways.data["segmenter"] == "classical" and "no model" in airways.data["segmenter_reason"]
    registry.run(context, "view", {"plane": "axial"})
    clicked = registry.run(context, "segment", {"view_id": "V1", "point_2d": [20, 20]})
    assert clicked.data["segmenter"] == "medsam" and "a prompt without a target" in clicked.data["segmenter_reason"]
    auto = context.cache[next(k for k in context.cache if k.startswith("segmenter|auto"))]
    radiograph = Volume.from_array(np.zeros((1, 32, 32), np.float32), modality="DX")
    assert [s.name for s, _ in auto.ranked(radiograph, "lungs", None)] == ["classical"]


def test_agreement_numbers_and_flags():
    a = np.zeros((4, 10, 10), bool)
    a[:, 2:8, 2:8] = True
    same = Evidence(id="E1", tool="segment", arguments={}, text="", mask=a.copy())
    record = assess_agreement(same, a, "classical", voxel_volume_mm3=8.0)
    assert record["dice"] == 1.0 and record["volume_ratio"] == 1.0 and same.quality.level == "ok"
    assert record["volume_ml"] == pytest.approx(4 * 36 * 8 / 1000)
    bigger = a.copy()
    bigger[:, 1:9, 1:9] = True  # Dice 0.72 but 1.78 times the volume
    ev = Evidence(id="E2", tool="segment", arguments={}, text="", mask=bigger)
    assess_agreement(ev, a, "totalseg")
    assert ev.quality.level == "doubtful" and "times its volume" in ev.quality.reasons[-1]
    assert segmenter_agreement(a, np.zeros_like(a))["volume_ratio"] is None
    assert segmenter_agreement(np.zeros_like(a), np.zeros_like(a))["dice"] == 1.0


def test_device_and_out_of_memory_errors():
    assert resolve_device("auto") in ("cpu", "cuda") and resolve_device("cpu") == "cpu"
    with pytest.raises(SegmentationError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(SegmentationError, match=r"\(20, 30, 40\).*lower the batch"):
        with out_of_memory_hint("a model", (20, 30, 40), "cpu", "lower the batch"):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")
    with pytest.raises(ValueError, match="not memory"):
        with out_of_memory_hint("a model", (1, 1, 1), "cpu", "x"):
            raise ValueError("not memory")


def test_segmenter_spec_and_command_line():
    from mmreason.cli import build_parser
    from mmreason.commands.run_args import segmenter_spec

    args = build_parser().parse_args(["infer", "--image", "ct.nii.gz", "--question", "q", "--segmenter", "monai",
                                      "--weights", "bundle", "--sw-overlap", "0.5", "--segmenter-device", "cpu"])
    spec = segmenter_spec(args)
    assert spec.options() == {"weights": "bundle", "device": "cpu", "sw_overlap": 0.5}
    assert SegmenterSpec.from_dict(spec.to_dict()) == spec
    bench = segmenter_spec(build_parser().parse_args(["bench", "--tasks", "synthetic", "--segmenter", "auto",
                                                      "--weights", "a", "--weights", "b", "--fast"]))
    assert bench.options() == {"weights": ["a", "b"], "fast": True}
    assert SegmenterSpec().options() == {} and SegmenterSpec().targets() is None
    with pytest.raises(SegmentationError, match="takes one --weights"):
        SegmenterSpec(name="totalseg", weights=["a", "b"]).options()
    with pytest.raises(SegmentationError, match="unknown segmenter"):
        SegmenterSpec(name="nnunet")


def test_segment_help_lists_the_segmenters(capsys):
    from mmreason.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{auto,classical,totalseg,monai,sam,medsam,reference}" in out and "--weights PATH" in out
