"""Batching and image-token benchmark of the ``hf`` backend on a tiny Qwen2.5-VL (no weights needed).

Two measurements in one run:

* throughput: the same ``--samples`` conversations (one image each, sizes varying so the batch is
  really left-padded) generated greedily with ``--new-tokens`` tokens and no stop strings, at
  batch sizes 1, 4 and 16; samples/s is the best of ``--repeats`` after one warm-up batch.
  Goal: batch 16 >= 3x batch 1.
* image tokens per episode, counted from the processor's ``image_grid_thw`` (tokens =
  t*h*w / merge_size**2) under the published Qwen2.5-VL pixel budget (3136..12845056 pixels):
  (a) the full 512x512 image sent at native detail; (b) an overview at the tiny model's default
  budget plus a 128x128 crop sent at native detail, i.e. the same pixels per mm where it matters.

Run: ``python -m benchmarks.perf_batch`` (about half a minute on 2 cores; pass ``--model DIR`` to
time another checkpoint, ``--json PATH`` to keep the figures).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mmreason.backends import get_backend
from mmreason.tiny_models import build_tiny_qwen_vl

#: the published Qwen2.5-VL preprocessor budget, so the token counts are those of the real model
QWEN25_PIXELS = {"min_pixels": 4 * 28 * 28, "max_pixels": 16384 * 28 * 28}


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


def throughput(backend, convs: list[list[dict]], batch_size: int, new_tokens: int, repeats: int) -> float:
    """Best samples/s over ``repeats`` runs of all ``convs`` at this batch size."""
    backend.batch_size = batch_size
    backend.generate(convs[:batch_size], max_new_tokens=new_tokens, stop=())  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        backend.generate(convs, max_new_tokens=new_tokens, stop=())
        best = min(best, time.perf_counter() - start)
    return len(convs) / best


def image_tokens(backend, images: list[Image.Image]) -> int:
    """Image tokens of one episode showing ``images``, as the processor counts them."""
    conversation = [{"role": "user", "content": [{"type": "image", "image": im} for im in images]}]
    grid = backend.prepare_inputs([conversation])["image_grid_thw"]
    merge = backend.processor.image_processor.merge_size
    return int(grid.prod(dim=1).sum()) // merge**2


def run(model: str, samples: int, new_tokens: int, repeats: int) -> dict:
    backend = get_backend("hf", model=model, device="cpu")
    convs = conversations(samples)
    rates = {b: throughput(backend, convs, b, new_tokens, repeats) for b in (1, 4, 16)}

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
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_qwen_vl(Path(tmp) / "tiny", arch="qwen2_5_vl"))
        result = run(model, args.samples, args.new_tokens, args.repeats)
    if args.model is None:
        result["model"] = "tiny qwen2_5_vl (built in a temporary directory)"
    rates, tokens = result["samples_per_s"], result["image_tokens"]
    print(f"| batch size | samples/s | ({result['samples']} conversations, {result['new_tokens']} new tokens)")
    print("|---|---|")
    for b, r in rates.items():
        print(f"| {b} | {r} |")
    verdict = "meets" if result["speedup_16_vs_1"] >= 3 else "misses"
    print(f"batch 16 / batch 1 = {result['speedup_16_vs_1']}x ({verdict} the 3x goal)")
    print(
        f"image tokens per episode: full 512x512 at native detail {tokens['full_512_native']} "
        f"(frame {tokens['model_frame_full']}); overview {tokens['overview']} + 128x128 crop "
        f"{tokens['crop_128_native']} (frame {tokens['model_frame_crop']}) = "
        f"{tokens['overview_plus_crop_128_native']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
