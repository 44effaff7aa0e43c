"""One run specification: built from the command line or a config file, the same for infer, bench,
train and the app; a program can hand the segment tool a segmenter of its own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grounding.tool import ToolContext
from imaging.io.dicom import select_series
from imaging.io.errors import MultipleSeriesError
from imaging.volume import Volume
from mmreason.cli import build_parser, main
from mmreason.commands.run_args import run_spec_from_args
from mmreason.run_spec import BackendOptionError, BackendSpec, RunSpec, RunSpecError, ToolRecipe

CONFIG = """
backend: {name: openai, model: served, base_url: [http://a/v1, http://b/v1], image_resize: qwen2_5_vl,
          max_pixels: 1003520, options: {timeout: 300}}
segmenter: {name: sam, weights: [sam.pth], device: cpu}
loop: {max_turns: 5, temperature: 0.7, max_images: 6}
loader: {series: 1, allow_uneven: true, spacing: [0.7, 0.7]}
tools: {names: [view, segment, measure], segment_targets: [lungs, nodule]}
seed: 3
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG)
    return path


def test_a_config_file_with_command_line_options_over_it(config_file):
    args = build_parser("infer").parse_args(["infer", "--image", "ct.nii.gz", "--question", "q", "--config",
                                             str(config_file), "--max-turns", "3", "--frame", "2", "--seed", "9"])
    spec = run_spec_from_args(args)
    assert spec.backend.resolve() == ("openai", {"model": "served", "base_url": ["http://a/v1", "http://b/v1"],
                                                 "max_pixels": 1003520, "image_resize": "qwen2_5_vl",
                                                 "timeout": 300})
    assert spec.segmenter.options() == {"weights": "sam.pth", "device": "cpu"}
    loop = spec.loop_config()
    assert (loop.max_turns, loop.temperature, loop.max_images) == (3, 0.7, 6)  # --max-turns over the file's 5
    assert loop.segmenter == "sam" and loop.tool_options["segmenter_options"]["weights"] == "sam.pth"
    assert spec.loader == {"series": 1, "allow_uneven": True, "spacing": (0.7, 0.7), "frame": 2}
    assert spec.seed == 9 and spec.tools.segment_targets == ["lungs", "nodule"]


def test_round_trip_through_json(config_file, tmp_path):
    spec = RunSpec.from_file(config_file)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(spec.to_dict()))
    again = RunSpec.from_file(path)
    assert again == spec and again.to_dict() == spec.to_dict()


@pytest.mark.parametrize("text, message", [
    ("backend: {name: rules}\nmodle: x\n", "unknown section"),
    ("loop: {max_turn: 3}\n", "loop: unknown key"),
    ("loop: {segmenter: sam}\n", "'segmenter' section"),
    ("tools: {name: [view]}\n", "tools: unknown key"),
    ("- a list\n", "mapping of sections"),
])
def test_config_file_mistakes_name_the_fix(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RunSpecError, match=message):
        RunSpec.from_file(path)


def test_bench_chooses_segmenter_temperature_and_image_budget_like_infer():
    args = build_parser("bench").parse_args(["bench", "--tasks", "synthetic", "--segmenter", "sam", "--weights",
                                             "sam.pth", "--temperature", "0.5", "--max-images", "4",
                                             "--max-pixels", "200000", "--model", "m", "--no-tools"])
    spec = run_spec_from_args(args)
    assert spec.segmenter.name == "sam" and spec.loop.temperature == 0.5 and spec.loop.max_images == 4
    assert spec.backend.resolve() == ("hf", {"model": "m", "max_pixels": 200000})
    assert spec.tools.enabled is False and spec.registry().names() == []


def test_infer_accepts_the_loader_options_its_errors_name():
    args = build_parser("infer").parse_args(["infer", "--image", "dir", "--question", "q", "--series", "2",
                                             "--allow-uneven", "--pixel-spacing", "0.5", "0.6",
                                             "--assume-orientation", "--nonfinite", "zero"])
    assert run_spec_from_args(args).loader == {"series": "2", "allow_uneven": True, "assume_orientation": True,
                                               "nonfinite": "zero", "spacing": (0.5, 0.6)}


def test_an_unknown_backend_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["bench", "--tasks", "synthetic", "--backend", "nope", "--out", str(out)]) == 2
    assert "unknown backend 'nope'; choose one of rules, hf, openai" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(BackendOptionError, match="unknown backend"):
        BackendSpec("hff", model="m").resolve()


def test_tool_recipe_and_the_app_use_the_same_spec():
    from mmreason.app import Ask

    base = RunSpec(tools=ToolRecipe(names=["segment", "measure"], segment_targets=["lungs"]))
    assert base.registry().names() == ["segment", "measure"]
    spec = Ask("q", backend="openai", model="served", base_url="http://a/v1", max_turns=3).run_spec(base)
    assert spec.backend.resolve() == ("openai", {"model": "served", "base_url": "http://a/v1"})
    assert spec.loop.max_turns == 3 and spec.tools == base.tools


#: voxel (z, y, x) -> LPS mm: x to the left, y posterior, z superior in 2 mm slices
ZYX_TO_LPS = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1.0]])


class _Recording:
    """A segmenter that records its calls and segments everything below -500."""

    name = "recording"
    targets = {"lungs": "air in the chest"}

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def segment(self, volume, target=None, prompt=None):
        self.calls.append(target)
        return volume.data < -500


def test_a_run_can_hand_the_segment_tool_its_own_segmenter():
    data = np.full((4, 16, 16), 40.0, np.float32)
    data[:, 4:12, 4:12] = -900.0
    volume = Volume(data=data, spacing=(2.0, 1.0, 1.0), affine=ZYX_TO_LPS, modality="CT", name="v")
    recording = _Recording()
    config = RunSpec(segmenter_instance=recording).loop_config()
    context = ToolContext(volumes={"0": volume}, segmenter=config.segmenter, options=config.tool_options,
                          segmenter_instance=config.segmenter_instance)
    evidence = RunSpec().registry().run(context, "segment", {"target": "lungs"})
    assert recording.calls == ["lungs"] and int(evidence.mask.sum()) == 4 * 8 * 8


class _Series:
    def __init__(self, i: int) -> None:
        self.uid, self.token = f"1.2.{i}", f"s{i}"

    def label(self) -> str:
        return f"[{self.token}] series {self.uid} with a long description of its protocol, 120 slices"


def test_a_folder_with_many_series_gives_a_short_error():
    with pytest.raises(MultipleSeriesError) as info:
        select_series([_Series(i) for i in range(40)], None, "folder")
    message = str(info.value)
    assert "\n" not in message and len(message) < 700
    assert "40 series" in message and "[s0]" in message and "and 36 more (mmreason inspect FOLDER" in message
