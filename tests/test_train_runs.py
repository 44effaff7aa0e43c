"""End to end on CPU with a tiny model: `mmreason train sft` (2 steps, then resumed to 3) and
`mmreason train grpo` (2 steps) with real tool rollouts through the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmreason.cli import main

CPU = {"bf16": False, "use_cpu": True, "seed": 0, "logging_steps": 1, "report_to": "none"}
#: the scripted policy of the GRPO test: first turn a tool call, after the tool result an answer
CALL = 'I will segment the nodule.\n<tool_call>\n{"name": "segment", "arguments": {"target": "nodule"}}\n</tool_call>'
ANSWER = "No nodule was found [E1].\n<answer>no [E1]</answer>"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, trainable_model, synthetic_dir) -> Path:
    out = tmp_path_factory.mktemp("sft_run")
    config = out / "sft.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name_or_path": str(trainable_model), "dtype": "float32"},
        "data": {"data_dir": str(synthetic_dir), "families": ["nodule_presence"], "limit": 2},
        "env": {"tools": ["crop", "segment", "measure"]},
        "training": CPU | {"output_dir": str(out / "run"), "max_steps": 2, "per_device_train_batch_size": 1,
                           "learning_rate": 1e-3, "save_steps": 1},
    }))
    assert main(["train", "sft", "--config", str(config)]) == 0
    return out


def test_sft_writes_config_logs_metrics_checkpoints(sft_run):
    run = sft_run / "run"
    assert (run / "final" / "config.json").exists() and (run / "final" / "processor_config.json").exists()
    assert (run / "checkpoint-2" / "trainer_state.json").exists()
    resolved = yaml.safe_load((run / "resolved_config.yaml").read_text())
    assert resolved["training"]["max_steps"] == 2 and resolved["env"]["tools"] == ["crop", "segment", "measure"]
    demos = json.loads((run / "demonstrations.json").read_text())["demonstrations"]
    assert demos["kept"] >= 1 and demos["episodes"] == 2
    losses = [r["loss"] for r in rows(run / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert "Total optimization steps" in (run / "train.log").read_text()


def test_sft_resumes_from_last_checkpoint(sft_run):
    run = sft_run / "run"
    before = len(rows(run / "metrics.jsonl"))
    config = yaml.safe_load((sft_run / "sft.yaml").read_text())
    config["training"]["max_steps"] = 3
    (sft_run / "sft3.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "sft", "--config", str(sft_run / "sft3.yaml")]) == 0
    state = json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    new = [r for r in rows(run / "metrics.jsonl")[before:] if "loss" in r]
    assert [r["step"] for r in new] == [3]  # steps 1-2 were not trained again
    assert "resuming from" in (run / "train.log").read_text()


def test_grpo_runs_tool_rollouts(sft_run, synthetic_dir, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    turns: list[int] = []

    def scripted(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tokenizer = self.processing_class.tokenizer
        text = CALL if num_generations != 1 else ANSWER  # TRL regenerates after tool results one by one
        turns.append(int(num_generations == 1))
        ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        return [list(ids) for _ in prompt_ids], None

    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", scripted)
    config = tmp_path / "grpo.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name_or_path": str(sft_run / "run" / "final"), "dtype": "float32"},
        "data": {"data_dir": str(synthetic_dir), "families": ["nodule_presence"], "limit": 1},
        "env": {"tools": ["crop", "segment", "measure"]},
        "training": CPU | {"output_dir": str(tmp_path / "grpo"), "max_steps": 2, "per_device_train_batch_size": 2,
                           "num_generations": 2, "max_completion_length": 512, "learning_rate": 1e-4,
                           "save_steps": 2},
    }))
    assert main(["train", "grpo", "--config", str(config)]) == 0
    run = tmp_path / "grpo"
    steps = [r for r in rows(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert r["tools/call_frequency"] == 1.0 and r["tools/failure_frequency"] == 0.0
        assert r["rollouts/valid_tool_call_rate"] == 1.0  # the environment ran the call
        assert r["rewards/accuracy_reward/mean"] == 1.0 and r["rewards/format_reward/mean"] == 1.0
        assert r["rewards/tool_economy_reward/mean"] == 0.0
    assert turns.count(1) >= 2  # generation resumed after the tool results
    assert (run / "checkpoint-2" / "trainer_state.json").exists() and (run / "final" / "config.json").exists()


def test_eval_greedy_and_sampled(sft_run, tmp_path, capsys):
    config = yaml.safe_load((sft_run / "sft.yaml").read_text())
    config["data"] |= {"eval_start": 2, "eval_limit": 1}
    config["env"] |= {"max_turns": 2, "max_new_tokens": 16}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(config))
    checkpoint = str(sft_run / "run" / "final")
    common = ["train", "eval", "--config", str(tmp_path / "eval.yaml"), "--kind", "sft", "--checkpoint", checkpoint]

    assert main([*common, "--out", str(tmp_path / "greedy.json")]) == 0
    greedy = json.loads((tmp_path / "greedy.json").read_text())
    assert greedy["temperature"] == 0.0 and greedy["summary"]["cases"] == 1
    assert sorted(p.name for p in (tmp_path / "greedy_traces").iterdir()) == sorted(
        f"{r['case_id']}.json" for r in greedy["cases"])

    assert main([*common, "--out", str(tmp_path / "sampled.json"), "--temperature", "1.0", "--samples", "3"]) == 0
    sampled = json.loads((tmp_path / "sampled.json").read_text())
    assert sampled["samples"] == 3 and sampled["summary"]["cases"] == 3
    assert {r["case_id"] for r in sampled["cases"]} == {greedy["cases"][0]["case_id"]}
    assert len(list((tmp_path / "sampled_traces").iterdir())) == 3
    capsys.readouterr()

    # several samples of a greedy policy are refused with the fix, on one line
    assert main([*common, "--samples", "2"]) == 2
    assert "pass a temperature above 0" in capsys.readouterr().err
