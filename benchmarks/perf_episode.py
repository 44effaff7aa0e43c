"""Per-episode time of the reasoning loop with the ``rules`` backend, split imaging/tools/model.

Runs ``mmreason infer``'s code path (`mmreason.loop.run_episode`, loading from disk) on the
bundled example ``examples/chest_ct.nii.gz`` (built in a temporary folder with the same phantom
settings when the file is absent) with the README question, ``--runs`` times after one warm-up,
and reports the median seconds of: ``imaging`` (loading + initial views), ``tools`` (tool calls),
``model`` (the planner's turns) and ``total``; plus the chest radiograph CTR question when
``examples/chest_xray.png`` exists. The report writing is timed separately (``report``).

Run: ``python -m benchmarks.perf_episode [--runs 5] [--json]`` (about 15 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from grounding.tools import default_registry
from mmreason.backends.rules import RulesBackend
from mmreason.loop import run_episode
from mmreason.report import render_html

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CASES = (
    ("chest_ct.nii.gz", "Is there a lung nodule? Where is it and how large?"),
    ("chest_xray.png", "What is the cardiothoracic ratio?"),
)


def _example(name: str, tmp: Path) -> Path | None:
    path = EXAMPLES / name
    if path.exists():
        return path
    if name != "chest_ct.nii.gz":
        return None
    from imaging.phantoms import NoduleSpec, chest_ct

    chest_ct(seed=0, spacing=(5.0, 1.6, 1.6), noise_hu=10.0,
             nodules=[NoduleSpec(diameter_mm=12.0, side="right")]).save(tmp, format="nifti")
    return tmp / "ct.nii.gz"


def measure(path: Path, question: str, runs: int) -> dict:
    backend, registry = RulesBackend(), default_registry()
    run_episode(path, question, backend, registry=registry)  # warm-up: imports, caches of the first call
    rows = []
    for _ in range(runs):
        trace = run_episode(path, question, backend, registry=registry)
        t0 = time.perf_counter()
        render_html(trace)
        rows.append(trace.timings | {"report": time.perf_counter() - t0})
    med = {k: round(statistics.median(r[k] for r in rows), 4) for k in rows[0]}
    return {"input": path.name, "question": question, "runs": runs, "status": trace.status,
            "turns": sum(t.role == "assistant" for t in trace.turns),
            "tool_calls": [c.name for c in trace.tool_calls()], "median_seconds": med, "answer": trace.answer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        records = [measure(p, q, args.runs) for name, q in CASES if (p := _example(name, Path(tmp)))]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(f"{'input':<18} {'turns':>5} {'imaging':>8} {'tools':>8} {'model':>8} {'total':>8} {'report':>8}  (median s)")
    for r in records:
        m = r["median_seconds"]
        print(f"{r['input']:<18} {r['turns']:>5} {m['imaging']:>8.3f} {m['tools']:>8.3f} {m['model']:>8.3f} "
              f"{m['total']:>8.3f} {m['report']:>8.3f}  {' -> '.join(r['tool_calls'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
