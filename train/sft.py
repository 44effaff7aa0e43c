"""SFT cold start: teach the model the tool-calling format from rules demonstrations (TRL ``SFTTrainer``).

Without a cold start, tool use collapses under RL (the policy never finds a valid call to
reinforce), so GRPO starts from this run's ``final/`` checkpoint. Steps:

1. load the processor and the training cases (`train.data.load_cases`);
2. run the ``rules`` backend on the cases through the reasoning loop, in the image frame of the
   model being trained, keeping correct episodes (`train.data.demonstrations`), plus any trace
   files of ``data.traces``; a summary goes to ``demonstrations.json``;
3. train with `trl.SFTTrainer` on the conversations, loss on assistant tokens only
   (`train.data.AssistantOnlyCollator`, tools rendered by the chat template exactly as TRL renders
   the GRPO environment's tools), optionally with LoRA;
4. save ``final/`` (merged when LoRA). Rerunning with the same output dir resumes from the last
   checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from train.config import RunConfig

#: SFTConfig values mmreason uses unless the config's training section sets them
SFT_DEFAULTS: dict[str, Any] = {"report_to": "none", "logging_steps": 1, "save_strategy": "steps",
                                "save_steps": 50, "max_length": None, "gradient_checkpointing": False}


def loop_config(cfg: RunConfig) -> Any:
    """The loop settings of the run's ``env`` section (`train.config.EnvConfig.run_spec`)."""
    return cfg.env.run_spec().loop_config()


def build_sft_dataset(cfg: RunConfig, processor: Any, out: Path) -> Any:
    """Demonstrations and user traces of ``cfg`` as an SFT dataset; writes ``demonstrations.json``."""
    from mmreason.backends.rules import RulesBackend

    from train.data import demonstrations, load_cases, read_traces, sft_dataset, short_demonstration
    from train.env import FramedBackend, build_registry
    from train.model import model_frame
    from train.run import phase

    traces = []
    summary: dict[str, Any] = {}
    if cfg.data.demonstrations:
        cases = load_cases(cfg.data, "train")
        phase(f"writing rules demonstrations on {len(cases)} cases")
        backend = FramedBackend(model_frame(cfg.model, processor), inner=RulesBackend())
        kept, demo = demonstrations(cases, backend, build_registry(cfg.env), loop_config(cfg), cfg.data.only_correct)
        if cfg.data.short_demos:
            kept = [short_demonstration(t) for t in kept]
        traces += kept
        summary["demonstrations"] = dataclasses.asdict(demo)
        phase(f"demonstrations: {demo.kept} of {demo.episodes} episodes kept ({demo.dropped})")
    if cfg.data.traces:
        extra = read_traces(cfg.data.traces)
        traces += extra
        summary["user_traces"] = len(extra)
    (out / "demonstrations.json").write_text(json.dumps(summary, indent=1))
    return sft_dataset(traces)


def run_sft(cfg: RunConfig) -> Path:
    """Run SFT as configured; returns the ``final/`` checkpoint directory."""
    from trl import SFTConfig, SFTTrainer

    from train.data import AssistantOnlyCollator
    from train.env import build_registry, tool_schemas
    from train.model import load_model, load_processor, peft_config
    from train.run import MetricsCallback, phase, prepare_output_dir, train_and_save

    out = prepare_output_dir(cfg)
    phase(f"loading the processor of {cfg.model.name_or_path}")
    processor = load_processor(cfg.model)
    dataset = build_sft_dataset(cfg, processor, out)
    phase(f"SFT on {len(dataset)} conversations; loading the model")
    args = SFTConfig(**(SFT_DEFAULTS | cfg.training), remove_unused_columns=False,
                     dataset_kwargs={"skip_prepare_dataset": True})
    trainer = SFTTrainer(
        model=load_model(cfg.model),
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        data_collator=AssistantOnlyCollator(processor, tool_schemas(build_registry(cfg.env))),
        peft_config=peft_config(cfg.lora),
        callbacks=[MetricsCallback(out / "metrics.jsonl")],
    )
    return train_and_save(trainer, processor, out, merge_lora=cfg.lora.merge_on_save)
