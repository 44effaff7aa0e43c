"""Session fixtures of the training tests (a trainable tiny model, a small synthetic set; registered
by ``tests/conftest.py``) and helpers building an env and a rollout.

The synthetic set has the first 23 cases of seed 0 (`benchmarks.core.synthetic` sets are prefixes of
each other), which include chest CTs without a nodule (``syn-0000``, ``syn-0010``) and one with a
right-lung nodule (``syn-0020`` presence, ``syn-0021`` side, ``syn-0022`` size).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from mmreason.case import Case

N_CASES = 23


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.core.synthetic import make_synthetic

    folder = tmp_path_factory.mktemp("train_synthetic")
    make_synthetic(folder, n=N_CASES, seed=0)
    return folder


@pytest.fixture(scope="session")
def cases(synthetic_dir: Path) -> dict[str, Case]:
    from benchmarks.datasets.synthetic import load

    return {c.id: c for c in load(synthetic_dir)}


@pytest.fixture(scope="session")
def trainable_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL (hidden 64, 2 layers) with room for the ~5000-token tool prompts."""
    from train.tiny import build_trainable_tiny

    return build_trainable_tiny(tmp_path_factory.mktemp("train_tiny"), hidden_size=64)


def make_env(case: Case, frame: Callable[[int, int], tuple[int, int]] = lambda w, h: (w, h)) -> Any:
    """A reset `GroundingEnv` on ``case`` with the default registry and the given image frame."""
    from grounding.tools import default_registry
    from mmreason.loop import LoopConfig

    from train.env import FramedBackend, environment_factory

    env = environment_factory(default_registry(), FramedBackend(frame), LoopConfig(max_turns=64))()
    env.reset(case=json.dumps(case.to_dict()), prompt=[], images=[])
    return env


def rollout(env: Any, calls: list[tuple[str, dict[str, Any]]], final: str,
            prose: list[str] | None = None) -> list[dict[str, Any]]:
    """Run ``calls`` through ``env``'s tool methods and return the completion messages TRL would
    hand to the rewards (assistant turns with structured tool calls, tool results, final turn);
    ``prose[i]`` is the text the model wrote with call ``i``."""
    completion: list[dict[str, Any]] = []
    for i, (name, arguments) in enumerate(calls):
        result = getattr(env, name)(**arguments)
        completion.append({"role": "assistant", "content": (prose or [""] * len(calls))[i],
                           "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]})
        completion.append({"role": "tool", "name": name, "content": result})
    completion.append({"role": "assistant", "content": final})
    return completion
