"""Speed of the benchmark runner on the synthetic benchmark (a script, not a timed test).

1. Runner overhead: the 200-case synthetic benchmark with `InstantBackend`, a backend that
   answers at once without calling a tool. Per sample, the runner's own overhead is the wall time
   of the run divided by the cases, minus the time spent inside the loop's episode
   (``trace.timings["total"]``: loading the images, rendering the initial views, the model call).
   What is left is the runner: prompt, scoring, trace JSON, the fsynced samples line, progress.
   Goal: <= 5 ms per sample.
2. Throughput with the tiny hf model (`mmreason.tiny_models.build_tiny_qwen_vl`), batch 1 vs
   batch 16, on the first ``--hf-limit`` cases, one model turn of ``--max-new-tokens`` tokens and
   ``--max-pixels`` per image (random weights: only the speed means anything).

    python -m benchmarks.perf_runner [--data DIR] [--n 200] [--hf-limit 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.core import runner
from benchmarks.datasets.synthetic import ANNOTATION
from benchmarks.core.synthetic import make_synthetic
from mmreason.loop import LoopConfig
from mmreason.run_spec import BackendSpec, RunSpec


class InstantBackend:
    """Answers every conversation at once with ``<answer>no</answer>``; calls no tool."""

    name = "instant"
    native_tools = False

    def __init__(self, model: str | None = None, **_: Any) -> None:
        self.model_id = model or "instant"

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], **_: Any) -> list[str]:
        return ["<answer>no</answer>"] * len(conversations)


def _samples(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "samples_synthetic.jsonl").read_text().splitlines()]


def runner_overhead(data: Path, work: Path, n: int) -> dict[str, Any]:
    out = work / "instant"
    config = runner.BenchConfig(tasks=["synthetic"], out=out, run=RunSpec(backend=BackendSpec(
        "benchmarks.perf_runner:InstantBackend")), limit=n, data={"synthetic": str(data)}, progress=False)
    t0 = time.perf_counter()
    results = runner.run(config, log=lambda m: None)
    wall = time.perf_counter() - t0
    rows = _samples(out)
    episode = sum(r["timings"]["total"] for r in rows)
    # the task loop's own clock (excludes loading the task and writing results/plots once)
    loop_s = results["tasks"]["synthetic"]["throughput"]["seconds"]
    return {
        "cases": len(rows),
        "wall_s_incl_setup_and_report": round(wall, 3),
        "task_loop_s": loop_s,
        "episode_mean_ms": round(1000 * episode / len(rows), 2),
        "episode_imaging_mean_ms": round(1000 * statistics.mean(r["timings"]["imaging"] for r in rows), 2),
        "runner_overhead_ms_per_sample": round(1000 * (loop_s - episode) / len(rows), 3),
        "goal_ms": 5.0,
    }


def hf_throughput(data: Path, work: Path, limit: int, batch_sizes: list[int], max_new_tokens: int,
                  max_pixels: int) -> dict[str, Any]:
    from mmreason.tiny_models import build_tiny_qwen_vl

    model_dir = build_tiny_qwen_vl(work / "tiny-qwen2_5_vl", arch="qwen2_5_vl", seed=0)
    out: dict[str, Any] = {"cases": limit, "max_new_tokens": max_new_tokens, "max_pixels": max_pixels,
                           "max_turns": 1}
    for bs in batch_sizes:
        run = RunSpec(backend=BackendSpec("hf", model=str(model_dir), max_pixels=max_pixels, options={"batch_size": bs}),
                      loop=LoopConfig(max_turns=1, max_new_tokens=max_new_tokens))
        config = runner.BenchConfig(tasks=["synthetic"], out=work / f"hf_b{bs}", run=run, limit=limit, batch_size=bs,
                                    data={"synthetic": str(data)}, progress=False)
        results = runner.run(config, log=lambda m: None)
        tp = results["tasks"]["synthetic"]["throughput"]
        rows = _samples(work / f"hf_b{bs}")
        out[f"batch_{bs}"] = {"samples_per_s": tp["samples_per_s"], "seconds": tp["seconds"],
                              "model_s_per_sample": round(statistics.mean(r["timings"]["model"] for r in rows), 4),
                              "imaging_s_per_sample": round(statistics.mean(r["timings"]["imaging"] for r in rows), 4)}
    first, last = out[f"batch_{batch_sizes[0]}"], out[f"batch_{batch_sizes[-1]}"]
    out["speedup"] = round(last["samples_per_s"] / first["samples_per_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="synthetic benchmark folder (made here when missing)")
    p.add_argument("--n", type=int, default=200, help="cases for the overhead measurement (default 200)")
    p.add_argument("--hf-limit", type=int, default=64, help="cases for the tiny hf model runs (default 64)")
    p.add_argument("--batch-sizes", default="1,16")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--max-pixels", type=int, default=128 * 28 * 28)
    p.add_argument("--skip-hf", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data or work / "synthetic"
        if not (data / ANNOTATION).exists():
            t0 = time.perf_counter()
            make_synthetic(data, n=args.n, seed=0)
            print(f"made {args.n} synthetic cases in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        report: dict[str, Any] = {"runner_overhead": runner_overhead(data, work, args.n)}
        if not args.skip_hf:
            sizes = [int(b) for b in args.batch_sizes.split(",")]
            report["tiny_hf"] = hf_throughput(data, work, args.hf_limit, sizes, args.max_new_tokens, args.max_pixels)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        ro = report["runner_overhead"]
        print(f"runner overhead: {ro['runner_overhead_ms_per_sample']:.2f} ms/sample over {ro['cases']} cases "
              f"(goal <= {ro['goal_ms']} ms); episode (imaging + instant model) {ro['episode_mean_ms']:.1f} ms")
        if "tiny_hf" in report:
            hf = report["tiny_hf"]
            for key, v in hf.items():
                if key.startswith("batch_"):
                    print(f"tiny hf {key}: {v['samples_per_s']:.3f} samples/s (model {v['model_s_per_sample']:.3f} s, "
                          f"imaging {v['imaging_s_per_sample']:.3f} s per sample)")
            print(f"tiny hf speedup batch {sizes[-1]} vs {sizes[0]}: {hf['speedup']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
