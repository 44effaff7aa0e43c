"""A full episode with a tiny random Qwen-VL checkpoint through the hf backend: structure only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from grounding.tools import default_registry
from imaging.phantoms import chest_ct
from mmreason.backends import get_backend
from mmreason.loop import EpisodeRequest, LoopConfig, run_episodes


@pytest.fixture(scope="module")
def volume():
    return chest_ct(seed=0, spacing=(12.0, 8.0, 8.0), nodules=[]).volume


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_tiny_model_episode_terminates_with_bounded_turns(tiny_model_dir, volume, arch):  # noqa: F811
    backend = get_backend("hf", model=str(tiny_model_dir(arch)), max_pixels=128 * 128)
    config = LoopConfig(max_turns=3, max_new_tokens=24, max_initial_images=2)
    reqs = [EpisodeRequest([volume], "Is there a lung nodule?"), EpisodeRequest([volume], "Which lung is larger?")]
    traces = run_episodes(reqs, backend, config=config, registry=default_registry(), seed=0)
    for trace in traces:
        assert trace.status in ("answered", "abstained", "max_turns")
        assert sum(t.role == "assistant" for t in trace.turns) <= 3
        assert trace.backend == "hf" and trace.model == str(tiny_model_dir(arch))
        # every image has the frame of the model's boxes recorded: the processor's resize (multiples
        # of the merged patch) for Qwen2.5-VL, the relative 0..1000 square for Qwen3-VL
        refs = [r for t in trace.turns for r in t.images]
        frames = [r.model_size for r in refs]
        if arch == "qwen3_vl":
            assert refs and all(f == (1000, 1000) for f in frames)
        else:
            assert refs and all(w % 28 == 0 and h % 28 == 0 for w, h in frames)
        # token counts of every model turn reach the trace, and their sums reach meta["usage"]
        turns = [t for t in trace.turns if t.role == "assistant"]
        assert all(t.prompt_tokens > 100 and 1 <= t.completion_tokens <= 24 for t in turns)
        usage = trace.meta["usage"]
        assert usage["prompt_tokens"] == sum(t.prompt_tokens for t in turns)
        assert usage["completion_tokens"] == sum(t.completion_tokens for t in turns)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        # a later turn reads the earlier one's prompt, its answer and the tool results
        assert all(b.prompt_tokens > a.prompt_tokens + a.completion_tokens for a, b in zip(turns, turns[1:]))
        json.dumps(trace.to_dict(with_images=False))
    # same seed, same texts: the episode is reproducible
    again = run_episodes(reqs[:1], backend, config=config, registry=default_registry(), seed=0)[0]
    assert [t.text for t in again.turns] == [t.text for t in traces[0].turns]


def test_tiny_model_errors_are_fed_back(tiny_model_dir, volume, monkeypatch):  # noqa: F811
    """A model whose calls fail sees the error in a tool message on its next turn."""
    backend = get_backend("hf", model=str(tiny_model_dir("qwen2_5_vl")), max_pixels=128 * 128)
    real = backend.generate_detailed
    seen = []
    bad = '<tool_call>{"name": "crop", "arguments": {"view_id": "V7", "bbox_2d": [0, 0, 9, 9]}}</tool_call>'

    def generate_detailed(conversations, **kw):
        generations = real(conversations, **kw)  # the real model runs; its output is replaced by a bad call
        seen.append(conversations[0][-1])
        return [dataclasses.replace(g, text=bad) for g in generations]

    monkeypatch.setattr(backend, "generate_detailed", generate_detailed)
    trace = run_episodes([EpisodeRequest([volume], "q")], backend,
                         config=LoopConfig(max_turns=2, max_new_tokens=4, max_initial_images=1),
                         registry=default_registry())[0]
    assert trace.status == "max_turns"
    assert seen[1]["role"] == "tool" and "unknown view_id 'V7'" in seen[1]["content"][0]["text"]
    assert np.all([c.error for c in trace.tool_calls()])
