"""Grounding-aware GRPO with tool rollouts (TRL ``GRPOTrainer`` with ``environment_factory``).

The policy starts from the SFT checkpoint (``model.name_or_path``). Each rollout gets a
`train.env.GroundingEnv` whose methods are the grounding tools of the same registry as inference;
TRL runs the calls the model makes (at most ``training.max_tool_calling_iterations`` rounds), feeds
back their text and images, and the reward functions of `train.rewards` score the finished
episode (accuracy, format, grounding, evidence, tool economy; weights from the ``rewards``
section). Every logging step writes the reward components, TRL's ``tools/call_frequency`` and
``tools/failure_frequency`` and mmreason's ``rollouts/*`` rates to ``metrics.jsonl``, so a collapse of
tool use is visible. ``environment_factory`` is experimental in TRL 1.16.

Generation: ``use_vllm: true`` with ``vllm_mode: server`` (``trl vllm-serve`` on separate GPUs) or
``colocate`` for fast rollouts on GPUs; plain transformers ``generate`` otherwise (CPU runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train.config import RunConfig

#: GRPOConfig values mmreason uses unless the config's training section sets them
GRPO_DEFAULTS: dict[str, Any] = {"report_to": "none", "logging_steps": 1, "save_strategy": "steps",
                                 "save_steps": 50, "gradient_checkpointing": False,
                                 "max_tool_calling_iterations": 4, "log_completions": False}


def ensure_response_parser(processor: Any) -> None:
    """Give the tokenizer a response template so TRL can read tool calls from completions.

    TRL knows the templates of several model families (Qwen3, Qwen3-VL ...); for any other
    Hermes-style template (Qwen2.5-VL, the tiny test models) the loop's own response template
    (`mmreason.parsing.HERMES_TEMPLATE`, the parser inference uses) is set.
    """
    from trl.chat_template_utils import add_response_schema

    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "response_template", None) is not None:
        return
    try:
        add_response_schema(processor)
    except ValueError:
        from mmreason.parsing import HERMES_TEMPLATE

        tokenizer.response_template = HERMES_TEMPLATE


def run_grpo(cfg: RunConfig) -> Path:
    """Run GRPO as configured; returns the ``final/`` checkpoint directory."""
    from trl import GRPOConfig, GRPOTrainer

    from train.data import grpo_dataset, load_cases
    from train.env import FramedBackend, VolumeCache, build_registry, environment_factory
    from train.model import load_model, load_processor, model_frame, peft_config
    from train.rewards import REWARD_FUNCS
    from train.run import MetricsCallback, phase, prepare_output_dir, train_and_save
    from train.sft import loop_config

    out = prepare_output_dir(cfg)
    phase(f"loading the processor of {cfg.model.name_or_path}")
    processor = load_processor(cfg.model)
    ensure_response_parser(processor)
    registry = build_registry(cfg.env)
    backend = FramedBackend(model_frame(cfg.model, processor), model_id=cfg.model.name_or_path)
    config = loop_config(cfg)
    config.max_turns = 64  # rollouts are bounded by TRL's max_tool_calling_iterations, not by the loop
    volumes = VolumeCache()
    dataset = grpo_dataset(load_cases(cfg.data, "train"), backend, registry, config, volumes)
    phase(f"GRPO on {len(dataset)} prompts; loading the model")
    args = GRPOConfig(**(GRPO_DEFAULTS | cfg.training), reward_weights=cfg.rewards.as_list(),
                      remove_unused_columns=False)
    trainer = GRPOTrainer(
        model=load_model(cfg.model),
        reward_funcs=list(REWARD_FUNCS),
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config(cfg.lora),
        environment_factory=environment_factory(registry, backend, config, volumes),
        callbacks=[MetricsCallback(out / "metrics.jsonl")],
    )
    return train_and_save(trainer, processor, out, merge_lora=cfg.lora.merge_on_save)
