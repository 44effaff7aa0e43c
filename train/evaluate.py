"""Held-out evaluation of a checkpoint with the training rewards (``mmreason train eval``).

Episodes run through the reasoning loop with the ``hf`` backend (greedy decoding), the same path as
``mmreason infer``; the only difference is that the chat template is given the tool schemas exactly
as TRL renders them for the GRPO environment (`train.env.tool_schemas`), so the prompts match the
ones the model was trained on. Each trace is scored by `train.rewards.assess`, the code that
produces the GRPO reward, so held-out figures and the training signal cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from imaging.errors import MMReasonError
from train.config import RunConfig


class TrainingToolsBackend:
    """A backend whose chat template always gets the training tool schemas (see the module doc)."""

    def __init__(self, inner: Any, schemas: list[dict[str, Any]]) -> None:
        self.inner, self.schemas = inner, schemas
        self.name, self.model_id, self.native_tools = inner.name, inner.model_id, inner.native_tools

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return self.inner.model_image_size(width, height)

    def generate(self, conversations: list[list[dict]], *, tools: list[dict] | None = None, **kwargs: Any) -> list[str]:
        return self.inner.generate(conversations, tools=self.schemas if tools is not None else None, **kwargs)


def chance_accuracy(case: Any) -> float:
    """Expected accuracy of a uniform guess: 1/2 for yes/no, 1/k for k options, 0 otherwise."""
    if case.answer_type == "closed":
        return 0.5
    if case.answer_type == "choice" and case.options:
        return 1.0 / len(case.options)
    return 0.0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-case rows (from `evaluate`) into the headline figures."""
    n = len(rows)
    calls = sum(r["calls"] for r in rows)
    ious = [r["iou"] for r in rows if r["iou"] is not None]

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "cases": n,
        "accuracy": mean("accuracy"),
        "chance_accuracy": mean("chance"),
        "tool_call_rate": sum(r["calls"] > 0 for r in rows) / n if n else None,
        "valid_tool_call_rate": sum(r["valid_calls"] for r in rows) / calls if calls else None,
        "calls_per_case": calls / n if n else None,
        "answered_rate": sum(r["answered"] for r in rows) / n if n else None,
        "mean_grounding_iou": sum(ious) / len(ious) if ious else None,
        "grounding_cases": len(ious),
        "mean_reward": mean("reward"),
        "components": {k: mean(k) for k in ("format", "grounding", "evidence", "tool_economy")},
    }


class EvaluationError(MMReasonError, ValueError):
    """The evaluation settings contradict each other (e.g. several samples of a greedy policy)."""


def evaluate(cfg: RunConfig, checkpoint: str | Path, out: str | Path | None = None, seed: int = 0,
             batch_size: int = 8, temperature: float = 0.0, samples: int = 1) -> dict[str, Any]:
    """Run the held-out cases of ``cfg.data`` with ``checkpoint``; returns (and writes) the results.

    ``temperature`` 0 decodes greedily (the deployed policy); above 0 each case is answered
    ``samples`` times by sampling, which scores the stochastic policy GRPO optimises (its rollouts
    sample at ``training.temperature``), so an RL gain that greedy decoding hides is visible.

    Returns ``{"checkpoint", "temperature", "samples", "summary", "cases": [per-episode rows]}``;
    with ``out`` the same is written as JSON and the traces next to it (``<out stem>_traces/``).
    """
    from mmreason.backends.hf import HFBackend
    from mmreason.loop import EpisodeRequest, run_episodes

    from train.data import load_cases
    from train.env import VolumeCache, build_registry, tool_schemas
    from train.rewards import assess
    from train.sft import loop_config

    if samples < 1 or (samples > 1 and temperature <= 0):
        raise EvaluationError(f"samples={samples} at temperature={temperature}: greedy decoding gives one "
                              "answer per case; pass a temperature above 0 to draw several samples")
    registry = build_registry(cfg.env)
    inner = HFBackend(str(checkpoint), device="auto", dtype=cfg.model.dtype, min_pixels=cfg.model.min_pixels,
                      max_pixels=cfg.model.max_pixels, batch_size=batch_size, box_format=cfg.model.box_format)
    backend = TrainingToolsBackend(inner, tool_schemas(registry))
    cases = [c for c in load_cases(cfg.data, "eval") for _ in range(samples)]
    volumes = VolumeCache()
    requests = [EpisodeRequest(inputs=volumes.get(c.images), question=c.question, options=c.options,
                               meta={"case_id": c.id}) for c in cases]
    config = dataclasses.replace(loop_config(cfg), temperature=temperature)
    traces = run_episodes(requests, backend, config=config, registry=registry, seed=seed)
    weights = cfg.rewards.as_list()
    rows = []
    for case, trace in zip(cases, traces, strict=True):
        o = assess(case, trace, registry)
        rows.append({"case_id": case.id, "family": case.subgroups.get("family"), "status": trace.status,
                     "answer": trace.answer, "reference": case.answer, "chance": chance_accuracy(case),
                     "reward": o.total(weights), **o.to_dict()})
    result = {"checkpoint": str(checkpoint), "temperature": temperature, "samples": samples,
              "summary": summarize(rows), "cases": rows}
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        folder = out.with_name(out.stem + "_traces")
        for i, (case, trace) in enumerate(zip(cases, traces, strict=True)):
            name = case.id if samples == 1 else f"{case.id}_s{i % samples}"
            trace.save(folder / f"{name}.json", with_images=False)
    return result
