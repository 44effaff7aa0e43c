"""Batching and image-token benchmark of the ``hf`` backend on a tiny Qwen2.5-VL (no weights needed).

Full episodes (issue 4's figures), through `mmreason.loop.run_episodes` as the benchmark runner
calls it, on the first ``--episodes`` cases of the synthetic benchmark (loaded from disk):

* samples/s at batch sizes 1, 4 and 16 (``run_episodes`` on chunks of that size, the backend's
  ``batch_size`` the same), after one warm-up chunk. Every episode has exactly two model turns
  so all batch sizes do the same work with a random model: turn 1 really runs the model (same
  ``--new-tokens``), but its text is replaced by a scripted ``crop`` of the centre of view V1;
  turn 2 is the model's own, and ``max_turns=2`` ends the episode there. Goal: batch 16 >= 3x
  batch 1. The model's share of the time is printed too (``trace.timings["model"]``): loading
  the study and rendering its views is per-case work that batching cannot share.
* image tokens per episode, from the frames recorded in the traces (``ImageRef.model_size`` /
  the 28 px merged patch): with the crop (initial views + crop) against sending V1 whole at the
  crop's detail (V1's size scaled by the crop's model pixels per V1 pixel, rounded to the patch
  grid) instead of cropping. Goal: the crop needs at most a quarter of those tokens.

Backend alone, on conversations of noise images (``--samples``):

* throughput: the same ``--samples`` conversations (one image each, sizes varying so the batch is
  really left-padded) generated greedily with ``--new-tokens`` tokens and no stop strings, at
  batch sizes 1, 4 and 16, timed round-robin ``--repeats`` times after one warm-up batch each;
  samples/s from the median, with the spread of the batch 16 / batch 1 ratio (one run per figure
  on a shared machine did not reproduce: 0.66x and 1.41x).
  Goal: batch 16 >= 3x batch 1.
* image tokens per episode, counted from the processor's ``image_grid_thw`` (tokens =
  t*h*w / merge_size**2) under the published Qwen2.5-VL pixel budget (3136..12845056 pixels):
  (a) the full 512x512 image sent at native detail; (b) an overview at the tiny model's default
  budget plus a 128x128 crop sent at native detail, i.e. the same pixels per mm where it matters.

Run: ``python -m benchmarks.perf_batch`` (about two minutes on 2 cores; pass ``--model DIR`` to
time another checkpoint, ``--threads N`` to pin torch's threads on a shared machine, ``--json
PATH`` to keep the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.core.synthetic import make_synthetic
from benchmarks.core.timing import Timing, time_round_robin
from benchmarks.core.tasks import load_task
from grounding.tools import default_registry
from mmreason.backends import get_backend
from mmreason.backends.base import Generation
from mmreason.loop import EpisodeRequest, LoopConfig, run_episodes
from mmreason.tiny_models import build_tiny_qwen_vl
from mmreason.trace import Trace

#: the published Qwen2.5-VL preprocessor budget, so the token counts are those of the real model
QWEN25_PIXELS = {"min_pixels": 4 * 28 * 28, "max_pixels": 16384 * 28 * 28}
BATCH_SIZES = (1, 4, 16)


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def conversations(n: int) -> list[list[dict]]:
    """n one-image questions; image sizes cycle through four shapes."""
    sizes = [(224, 224), (192, 256), (256, 160), (160, 160)]
    return [
        [{"role": "user", "content": [
            {"type": "image", "image": noise_image(*sizes[i % len(sizes)], seed=i)},
            {"type": "text", "text": f"Case {i}: is there a nodule in the right upper lobe?"},
        ]}]
        for i in range(n)
    ]


def throughput(backend, convs: list[list[dict]], new_tokens: int, repeats: int) -> dict[int, Timing]:
    """Seconds to generate all ``convs`` at each of `BATCH_SIZES`, timed round-robin ``repeats`` times
    after one warm-up batch at each size."""
    def at(batch_size: int) -> Callable[[], Any]:
        def generate() -> None:
            backend.batch_size = batch_size
            backend.generate(convs, max_new_tokens=new_tokens, stop=())
        return generate

    for batch_size in BATCH_SIZES:
        backend.batch_size = batch_size
        backend.generate(convs[:batch_size], max_new_tokens=new_tokens, stop=())
    timings = time_round_robin({str(b): at(b) for b in BATCH_SIZES}, repeats, warmup=False)
    return {b: timings[str(b)] for b in BATCH_SIZES}


def image_tokens(backend, images: list[Image.Image]) -> int:
    """Image tokens of one episode showing ``images``, as the processor counts them."""
    conversation = [{"role": "user", "content": [{"type": "image", "image": im} for im in images]}]
    grid = backend.prepare_inputs([conversation])["image_grid_thw"]
    merge = backend.processor.image_processor.merge_size
    return int(grid.prod(dim=1).sum()) // merge**2


class ScriptedFirstTurn:
    """The hf backend, with the text of each episode's first turn replaced by a crop of V1's middle.

    The model still runs on turn 1 (same prompt, same ``max_new_tokens``), so the time is real;
    only its random text is swapped for a call every batch size then executes identically.
    """

    def __init__(self, backend: Any) -> None:
        self.inner = backend
        self.name, self.model_id, self.native_tools = backend.name, backend.model_id, backend.native_tools

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return self.inner.model_image_size(width, height)

    def generate_detailed(self, conversations: list[list[dict]], **options: Any) -> list[Generation]:
        generations = self.inner.generate_detailed(conversations, **options)
        return [g if any(m["role"] == "assistant" for m in c) else dataclasses.replace(g, text=_middle_crop(c))
                for c, g in zip(conversations, generations, strict=True)]


def _middle_crop(conversation: list[dict]) -> str:
    """A crop of the first image's centre, in the model's frame (read from its caption).

    The box is the middle half of the central third, so it lies inside the centre panel of a
    3x3 montage (the initial view of a volume) as the crop tool requires.
    """
    caption = next(p["text"] for p in conversation[1]["content"] if p.get("text", "").startswith("Image 1 ("))
    w, h = (int(v) for v in caption.split("(", 1)[1].split(")", 1)[0].split("x"))
    box = [5 * w // 12, 5 * h // 12, 7 * w // 12, 7 * h // 12]
    return f'<tool_call>{{"name": "crop", "arguments": {{"view_id": "V1", "bbox_2d": {box}, "margin": 0}}}}</tool_call>'


def episode_image_tokens(trace: Trace, factor: int) -> dict[str, int]:
    """Image tokens of one episode with its crop, and of sending V1 whole at the crop's detail."""
    refs = [r for t in trace.turns for r in t.images]
    tokens = sum((w // factor) * (h // factor) for w, h in (r.model_size for r in refs))
    crop_ev = next(e for e in trace.evidence if e.tool == "crop")
    crop_ref = next(r for r in refs if r.view_id == crop_ev.data["view_id"])
    v1 = next(r for r in refs if r.view_id == "V1")
    x1, y1, x2, y2 = crop_ev.data["shown_pixels"]  # the crop's extent in V1 pixels
    detail = crop_ref.model_size[0] / (x2 - x1)  # model pixels per V1 pixel
    full_w, full_h = (max(factor, round(v * detail / factor) * factor) for v in v1.size)
    crop_tokens = (crop_ref.model_size[0] // factor) * (crop_ref.model_size[1] // factor)
    return {"with_crop": tokens, "crop": crop_tokens,
            "full_v1_at_crop_detail": (full_w // factor) * (full_h // factor)}


def episodes(model: str, work: Path, cases: int, new_tokens: int, max_pixels: int | None,
             prefix_cache: bool = True) -> dict:
    """Full two-turn episodes at batch sizes 1, 4 and 16 (see the module doc)."""
    data = work / "synthetic"
    make_synthetic(data, n=cases, seed=0)
    loaded = load_task("synthetic", {"synthetic": str(data)})
    requests = [EpisodeRequest(inputs=c.images, question=loaded.spec.format_prompt(c),
                               options=None if loaded.spec.options_in_question else c.options)
                for c in loaded.cases[:cases]]
    config = LoopConfig(max_turns=2, max_new_tokens=new_tokens)
    registry = default_registry()
    pixels = {"max_pixels": max_pixels} if max_pixels else {}
    out: dict[str, Any] = {"episodes": len(requests), "max_turns": 2, "new_tokens": new_tokens,
                           "prefix_cache": prefix_cache, **pixels}
    traces: list[Trace] = []
    for bs in BATCH_SIZES:
        backend = ScriptedFirstTurn(get_backend("hf", model=model, device="cpu", batch_size=bs,
                                                prefix_cache=prefix_cache, **pixels))
        run_episodes(requests[:bs], backend, config=config, registry=registry, seed=0)  # warm-up
        start = time.perf_counter()
        traces = [t for i in range(0, len(requests), bs)
                  for t in run_episodes(requests[i:i + bs], backend, config=config, registry=registry, seed=i)]
        seconds = time.perf_counter() - start
        turns = {sum(t.role == "assistant" for t in trace.turns) for trace in traces}
        assert turns == {2}, f"every episode must have two model turns, got {turns}"
        out[f"batch_{bs}"] = {
            "samples_per_s": round(len(traces) / seconds, 3),
            "model_s_per_sample": round(statistics.mean(t.timings["model"] for t in traces), 4),
            "imaging_tools_s_per_sample": round(statistics.mean(t.timings["imaging"] + t.timings["tools"]
                                                                for t in traces), 4),
            "prompt_tokens_per_sample": round(statistics.mean(t.meta["usage"]["prompt_tokens"] for t in traces)),
        }
    out["speedup_16_vs_1"] = round(out["batch_16"]["samples_per_s"] / out["batch_1"]["samples_per_s"], 2)
    model_rate = {bs: 1 / out[f"batch_{bs}"]["model_s_per_sample"] for bs in (1, 16)}
    out["model_speedup_16_vs_1"] = round(model_rate[16] / model_rate[1], 2)
    factor = backend.inner.processor.image_processor.patch_size * backend.inner.processor.image_processor.merge_size
    per = [episode_image_tokens(t, factor) for t in traces]
    out["image_tokens_per_episode"] = {k: round(statistics.mean(p[k] for p in per), 1) for k in per[0]}
    out["crop_fraction_of_full"] = round(max(p["crop"] / p["full_v1_at_crop_detail"] for p in per), 3)
    return out


def run(model: str, samples: int, new_tokens: int, repeats: int) -> dict:
    backend = get_backend("hf", model=model, device="cpu")
    convs = conversations(samples)
    timings = throughput(backend, convs, new_tokens, repeats)
    rates = {b: len(convs) / t.median for b, t in timings.items()}

    full = noise_image(512, 512, seed=0)
    crop = full.crop((192, 192, 320, 320))
    native = get_backend("hf", model=model, device="cpu", **QWEN25_PIXELS)
    tokens_full = image_tokens(native, [full])
    tokens_overview = image_tokens(backend, [full])  # the checkpoint's own (small) budget
    tokens_crop = image_tokens(native, [crop])
    return {
        "model": model,
        "samples": samples,
        "new_tokens": new_tokens,
        "samples_per_s": {str(b): round(r, 2) for b, r in rates.items()},
        "speedup_16_vs_1": round(rates[16] / rates[1], 2),
        # the ratio's range over the spread of both sizes' repeats
        "speedup_16_vs_1_range": [round(timings[1].low / timings[16].high, 2),
                                  round(timings[1].high / timings[16].low, 2)],
        "repeats": repeats,
        "seconds": {str(b): t.to_dict() for b, t in timings.items()},
        "image_tokens": {
            "full_512_native": tokens_full,
            "overview_plus_crop_128_native": tokens_overview + tokens_crop,
            "overview": tokens_overview,
            "crop_128_native": tokens_crop,
            "model_frame_full": list(native.model_image_size(512, 512)),
            "model_frame_crop": list(native.model_image_size(128, 128)),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_batch", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint directory; default: build a tiny Qwen2.5-VL")
    parser.add_argument("--episodes", type=int, default=32, help="synthetic cases for the full episodes")
    parser.add_argument("--episode-max-pixels", type=int, default=128 * 28 * 28,
                        help="per-image pixel budget in the episodes (default 128 tokens' worth)")
    parser.add_argument("--samples", type=int, default=32, help="conversations for the backend-alone figures")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per batch size (median and spread)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-prefix-cache", action="store_true",
                        help="prefill every prompt in full (the hf backend's behaviour before its prefix cache)")
    parser.add_argument("--skip-backend", action="store_true", help="only the full-episode figures")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_qwen_vl(Path(tmp) / "tiny", arch="qwen2_5_vl"))
        result["episodes"] = episodes(model, Path(tmp), args.episodes, args.new_tokens, args.episode_max_pixels,
                                      prefix_cache=not args.no_prefix_cache)
        if not args.skip_backend:
            result["backend"] = run(model, args.samples, args.new_tokens, args.repeats)
    result["model"] = args.model or "tiny qwen2_5_vl (built in a temporary directory)"

    ep = result["episodes"]
    print(f"Full episodes ({ep['episodes']} synthetic cases, 2 model turns each: a scripted crop, then the "
          f"model; {ep['new_tokens']} new tokens per turn; prefix cache {'on' if ep['prefix_cache'] else 'off'}; "
          f"torch threads {result['torch_threads']})")
    print("| batch size | samples/s | model s/sample | imaging+tools s/sample | prompt tokens/sample |")
    print("|---|---|---|---|---|")
    for bs in BATCH_SIZES:
        b = ep[f"batch_{bs}"]
        print(f"| {bs} | {b['samples_per_s']} | {b['model_s_per_sample']} | {b['imaging_tools_s_per_sample']} "
              f"| {b['prompt_tokens_per_sample']} |")
    verdict = "meets" if ep["speedup_16_vs_1"] >= 3 else "misses"
    print(f"batch 16 / batch 1 = {ep['speedup_16_vs_1']}x samples/s ({verdict} the 3x goal); "
          f"model time alone {ep['model_speedup_16_vs_1']}x")
    it = ep["image_tokens_per_episode"]
    verdict = "meets" if ep["crop_fraction_of_full"] <= 0.25 else "misses"
    print(f"image tokens per episode: {it['with_crop']} with the crop (of which the crop {it['crop']}); "
          f"V1 whole at the crop's detail {it['full_v1_at_crop_detail']}; crop / whole at most "
          f"{ep['crop_fraction_of_full']} ({verdict} the 1/4 goal)")
    if "backend" in result:
        be = result["backend"]
        rates, tokens = be["samples_per_s"], be["image_tokens"]
        print(f"Backend alone ({be['samples']} one-image conversations, {be['new_tokens']} new tokens): "
              + ", ".join(f"batch {b} {r} samples/s" for b, r in rates.items())
              + f" (medians of {be['repeats']}); batch 16 / batch 1 = {be['speedup_16_vs_1']}x (range "
              f"{be['speedup_16_vs_1_range'][0]}-{be['speedup_16_vs_1_range'][1]})")
        print(f"image tokens, published Qwen2.5-VL budget: full 512x512 {tokens['full_512_native']} "
              f"(frame {tokens['model_frame_full']}); overview {tokens['overview']} + 128x128 crop "
              f"{tokens['crop_128_native']} (frame {tokens['model_frame_crop']}) = "
              f"{tokens['overview_plus_crop_128_native']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
