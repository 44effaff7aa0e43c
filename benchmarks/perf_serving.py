"""Throughput of the ``openai`` backend spread over 1, 2 and 4 local ``mmreason serve`` endpoints (a script,
not a timed test).

Each endpoint is a ``mmreason serve`` process serving the tiny Qwen2.5-VL
(`mmreason.tiny_models.build_tiny_qwen_vl`, random weights: only the speed means anything) with
``OMP_NUM_THREADS=--threads``, so adding endpoints adds processes, not threads inside one. The
client sends ``--requests`` image questions (``--max-new-tokens`` tokens each, images of
``--image-size`` pixels, a new image per request) with ``concurrency`` = 2 x endpoints through one
`OpenAIBackend` given every endpoint's URL. Printed: requests/s per endpoint count and the ratio to
one endpoint. The ratio is bounded by the machine's free cores; on a machine with fewer cores
than endpoints it measures contention, not the spreading.

    python -m benchmarks.perf_serving [--endpoints 1,2,4] [--requests 48] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def start_endpoint(model_dir: Path, threads: int, max_pixels: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    process = subprocess.Popen([sys.executable, "-m", "mmreason", "serve", "--model", str(model_dir), "--port", "0",
                                "--max-pixels", str(max_pixels)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise RuntimeError(f"the endpoint did not start: {line!r}")
    return process, line.split(" at ")[1].strip()


def conversations(n: int, size: int, seed: int) -> list[list[dict]]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [[{"role": "user", "content": [
        {"type": "image", "image": Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))},
        {"type": "text", "text": f"Question {i}: where is the lesion?"}]}] for i in range(n)]


def measure(urls: list[str], model: str, requests: int, size: int, max_new_tokens: int) -> dict[str, Any]:
    from mmreason.backends import get_backend

    client = get_backend("openai", base_url=urls, model=model, concurrency=2 * len(urls), timeout=600)
    client.generate(conversations(len(urls) * 2, size, seed=1), max_new_tokens=2, stop=())  # warm every endpoint
    convs = conversations(requests, size, seed=2)
    t0 = time.perf_counter()
    generations = client.generate_detailed(convs, max_new_tokens=max_new_tokens, stop=())
    seconds = time.perf_counter() - t0
    tokens = sum(g.completion_tokens or 0 for g in generations)
    return {"endpoints": len(urls), "requests": requests, "seconds": round(seconds, 3),
            "requests_per_s": round(requests / seconds, 3), "completion_tokens_per_s": round(tokens / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoints", default="1,2,4", help="endpoint counts to measure (default 1,2,4)")
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--max-pixels", type=int, default=128 * 28 * 28)
    p.add_argument("--threads", type=int, default=1, help="torch threads per endpoint process (default 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.endpoints.split(",")]
    from mmreason.tiny_models import build_tiny_qwen_vl

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_qwen_vl(Path(tmp) / "tiny-qwen2_5_vl", arch="qwen2_5_vl", seed=0)
        running: list[tuple[subprocess.Popen, str]] = []
        try:
            for count in counts:
                while len(running) < count:
                    running.append(start_endpoint(model_dir, args.threads, args.max_pixels))
                rows.append(measure([url for _, url in running[:count]], str(model_dir), args.requests,
                                    args.image_size, args.max_new_tokens))
        finally:
            for process, _ in running:
                process.terminate()
                process.wait(timeout=30)
    base = rows[0]["requests_per_s"]
    for row in rows:
        row["ratio_to_first"] = round(row["requests_per_s"] / base, 2)
    report = {"cpu_count": os.cpu_count(), "threads_per_endpoint": args.threads, "max_new_tokens": args.max_new_tokens,
              "image_size": args.image_size, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"tiny Qwen2.5-VL behind mmreason serve; {args.requests} requests, {args.max_new_tokens} new tokens, "
              f"{args.image_size}px images, {args.threads} thread(s) per endpoint, {os.cpu_count()} CPUs")
        for row in rows:
            print(f"{row['endpoints']} endpoint(s): {row['requests_per_s']:.2f} requests/s "
                  f"({row['completion_tokens_per_s']:.0f} tokens/s), x{row['ratio_to_first']:.2f} vs {counts[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
