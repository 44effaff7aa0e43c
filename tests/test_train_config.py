"""Training configs: YAML loading, defaults, strict validation with messages that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from train.config import ConfigError, RewardWeights, config_from_dict, describe, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
MINIMAL = {"model": {"name_or_path": "some/model"}, "training": {"output_dir": "runs/x"}}


def test_defaults_and_output_dir_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(MINIMAL | {"rewards": {"grounding": 2}}))
    cfg = load_config(path, "grpo", output_dir=tmp_path / "out")
    assert cfg.output_dir == tmp_path / "out"
    assert cfg.rewards.grounding == 2.0 and isinstance(cfg.rewards.grounding, float)
    assert cfg.rewards.as_list() == [1.0, RewardWeights().format, 2.0, RewardWeights().evidence,
                                     RewardWeights().tool_economy]
    assert cfg.data.task == "synthetic" and cfg.lora.enabled is False
    saved = yaml.safe_load(cfg.save(tmp_path / "resolved.yaml").read_text())
    assert saved["training"]["output_dir"] == str(tmp_path / "out") and saved["env"]["segmenter"] == "classical"


@pytest.mark.parametrize(("raw", "message"), [
    ({"model": {"name_or_path": "m", "dtpye": "float32"}}, "unknown key 'dtpye'.*did you mean 'dtype'"),
    ({"model": {"name_or_path": "m"}, "data": {"limit": "ten"}}, r"data.limit must be .*int.*'ten'"),
    ({"model": {"name_or_path": "m"}, "lora": {"enabled": "yes"}}, "lora.enabled must be bool"),
    ({"model": {"name_or_path": "m"}, "data": {"families": "nodule"}}, r"data.families must be list\[str\]"),
    ({"data": {}}, "model.name_or_path is missing"),
    ({"model": {"name_or_path": "m"}, "training": {"learning_rat": 1e-4}},
     "unknown key training.learning_rat.*did you mean 'learning_rate'.*SFTConfig"),
    ({"model": {"name_or_path": "m"}, "training": {"assistant_only_loss": True}}, "set by mmreason"),
    ({"model": {"name_or_path": "m"}, "rewards": {"accuracy": 1}}, "rewards apply to grpo only"),
    ({"model": {"name_or_path": "m"}, "modle": {}}, "unknown section 'modle'.*did you mean 'model'"),
])
def test_invalid_sft_configs(raw, message):
    raw = {**raw, "training": {"output_dir": "o", **raw.get("training", {})}}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, "sft")


def test_missing_output_dir_and_bad_vllm_mode():
    with pytest.raises(ConfigError, match="output_dir is missing.*--output-dir"):
        config_from_dict({"model": {"name_or_path": "m"}}, "sft")
    with pytest.raises(ConfigError, match="vllm_mode"):
        config_from_dict(MINIMAL | {"training": {"output_dir": "o", "use_vllm": True, "vllm_mode": "remote"}}, "grpo")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", "sft")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, "sft")


@pytest.mark.parametrize(("name", "kind"), [("tiny_sft.yaml", "sft"), ("tiny_grpo.yaml", "grpo"),
                                            ("qwen3_vl_4b_sft.yaml", "sft"), ("qwen3_vl_4b_grpo.yaml", "grpo")])
def test_shipped_configs_are_valid(name, kind):
    cfg = load_config(CONFIGS / name, kind)
    assert cfg.model.name_or_path and cfg.training["output_dir"]
    if name.startswith("qwen3"):
        assert cfg.lora.enabled and cfg.model.dtype == "bfloat16"
    if name == "qwen3_vl_4b_grpo.yaml":
        assert cfg.training["use_vllm"] is True and cfg.training["vllm_mode"] in ("server", "colocate")


def test_accelerate_configs_parse():
    for name in ("deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"):
        doc = yaml.safe_load((CONFIGS / "accelerate" / name).read_text())
        assert doc["distributed_type"] in ("DEEPSPEED", "FSDP") and doc["num_processes"] >= 1


def test_describe_lists_help():
    text = describe("grpo")
    assert "grounding:" in text and "Best IoU" in text and "trl.GRPOConfig" in text
    assert "rewards:" not in describe("sft")
