"""Tool latency benchmark: ``crop`` and ``measure`` on 512x512 views, through the registry.

Two inputs, each giving a 512x512 view ``V1``:

* ``xray``: a 2-D single-slice image (1, 512, 512), 0.7 mm pixels, with a bright disc;
* ``ct``: the chest CT phantom (`imaging.phantoms.chest_ct`) at 5.0 x 0.664 x 0.664 mm, whose
  axial view is 512x512 px.

For each, the median (and 90th percentile) wall time over ``--runs`` calls of: ``crop`` of a
128x128 px box; ``measure`` of a 128x128 px box on the view; ``measure`` of a 2-D segment mask
(the disc / the lungs on that slice; the segmentation itself is done once, outside the timing).
Goal: median <= 50 ms for crop and measure.

Run: ``python -m benchmarks.perf_tools`` (about 20 s on 2 cores); ``--json`` prints a record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from grounding.tool import ToolContext
from grounding.tools import default_registry
from imaging.volume import Volume

GOAL_MS = 50.0


def xray_512() -> Volume:
    yy, xx = np.mgrid[0:512, 0:512]
    data = 200.0 + 20.0 * np.random.default_rng(0).standard_normal((512, 512))
    data[(yy - 260) ** 2 + (xx - 330) ** 2 <= 60**2] = 900.0
    return Volume.from_array(data.astype(np.float32), spacing=(1.0, 0.7, 0.7), modality="XR", name="xray_512")


def ct_512() -> Volume:
    from imaging.phantoms import chest_ct

    return chest_ct(seed=0, spacing=(5.0, 340 / 512, 340 / 512)).volume


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()  # warm caches and imports once
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))]}


def bench(volume: Volume, segment_target: str, runs: int) -> dict[str, dict[str, float]]:
    reg = default_registry()
    ctx = ToolContext(volumes={"0": volume})
    reg.run(ctx, "view", {"window": "auto"})
    w, h = ctx.views["V1"].size
    assert (w, h) == (512, 512), (w, h)
    box = [200, 200, 328, 328]
    seg = reg.run(ctx, "segment", {"target": segment_target, "view_id": "V1", "mode": "2d",
                                   **({"bbox_2d": [250, 180, 420, 340]} if volume.is_2d else {})})
    return {
        "crop": timed(lambda: reg.run(ctx, "crop", {"view_id": "V1", "bbox_2d": box}), runs),
        "measure_box": timed(lambda: reg.run(ctx, "measure", {"view_id": "V1", "bbox_2d": box}), runs),
        "measure_mask": timed(lambda: reg.run(ctx, "measure", {"evidence_id": seg.id}), runs),
        "mask_voxels": {"count": float(seg.data["voxels"])},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed calls per operation (default 50)")
    parser.add_argument("--json", action="store_true", help="print a JSON record")
    args = parser.parse_args(argv)
    results = {"xray": bench(xray_512(), "lesion", args.runs), "ct": bench(ct_512(), "lungs", args.runs)}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"tool latency over {args.runs} runs on 512x512 views (goal: median <= {GOAL_MS:.0f} ms)")
    for name, ops in results.items():
        for op in ("crop", "measure_box", "measure_mask"):
            r = ops[op]
            ok = "ok" if r["median_ms"] <= GOAL_MS else "SLOW"
            print(f"  {name:5s} {op:12s} median {r['median_ms']:6.1f} ms  p90 {r['p90_ms']:6.1f} ms  {ok}")
        print(f"  {name:5s} (segment mask: {int(ops['mask_voxels']['count'])} voxels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
