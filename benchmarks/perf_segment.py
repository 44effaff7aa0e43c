"""Speed and memory of classical lung segmentation beside two peer pipelines, at three sizes.

Contenders, each timed ``--repeats`` times round-robin in one process (`benchmarks.core.timing`; medians
with min-max spread), on chest phantoms (`imaging.phantoms.chest_ct`, one 10 mm nodule) with the
same field of view at three resolutions:

* ``128^3``: 128 x 128 x 128 at (1.875, 2.5, 2.5) mm;
* ``150x256^2``: 150 x 256 x 256 at (1.6, 1.25, 1.25) mm;
* ``300x512^2``: 300 x 512 x 512 at (0.8, 0.625, 0.625) mm (the phantom at 1.25 mm in-plane,
  upsampled 2x in-plane: phantoms cap their size), a typical thin-slice clinical chest CT.

* ``classical``: the project's ``lung_left`` then ``lung_right`` (the second reuses the cached
  analysis, as the ``segment`` tool does within an episode), a fresh segmenter each repeat;
* ``cc3d`` and ``scipy``: the usual threshold pipeline: air below -400 HU, 6-connected components
  (connected-components-3d, or `scipy.ndimage.label`), components touching the in-plane border
  dropped (outside air), the two largest kept; when the largest holds 20-80% of its voxels on each
  side of the image's centre column (touching lungs) it is cut there (the midline split), else the
  two are sided by their centroids.

Memory: the `tracemalloc` peak of one more call of each contender (numpy and cc3d buffers
included) as a multiple of the float32 volume. Dice against the phantom's truth is printed beside
each, so a fast wrong answer shows.

``--organs`` times the classical liver, spleen and kidneys on a real-size abdominal CT phantom
(160 x 514 x 514 at (1.25, 0.7, 0.7) mm) instead. ``--adapters`` times every model adapter beside
the classical segmenter on a small chest CT (the phantom at ``--spacing`` mm, default 8: 30 x 42 x 42
voxels), on the CPU with one torch thread (TotalSegmentator sets its own), with the tiny
random checkpoints of `grounding.segmenters.tiny` in their real on-disk layouts: ``load_s`` builds
the segmenter (reads the weights), ``first_s`` is the first target (TotalSegmentator: its whole
pipeline, nnU-Net worker processes included; a label-map bundle: one pass for every class),
``next_s`` a second target of the same volume (label maps are cached; VISTA3D and SAM run again),
all wall-clock; ``cpu_s`` the CPU seconds of the three steps, worker processes included (on a busy
shared machine wall-clock is several times the CPU time).
Tiny networks make these a cost floor: the pre- and post-processing, resampling, tiling and
process overheads every real checkpoint pays before its own compute.

Usage: ``python -m benchmarks.perf_segment [--sizes 128^3 150x256^2 300x512^2] [--repeats 3]
[--plot DIR] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from benchmarks.core.timing import Timing, ratio_line, time_round_robin, traced_peak
from grounding.segmenters.agreement import dice

TARGET_MEMORY_RATIO = 3.0
#: the three sizes: name -> (phantom spacing mm, in-plane upsampling factor)
SIZES = {
    "128^3": ((1.875, 2.5, 2.5), 1),
    "150x256^2": ((1.6, 1.25, 1.25), 1),
    "300x512^2": ((0.8, 1.25, 1.25), 2),
}
CHEST_FOV_MM = (240.0, 320.0, 320.0)
HU_AIR = -400.0


def synthetic_chest(size: str = "300x512^2"):
    """A chest CT Volume of one of `SIZES` and its lung truth labels."""
    from imaging.phantoms import NoduleSpec, chest_ct
    from imaging.volume import Volume

    spacing, factor = SIZES[size]
    phantom = chest_ct(seed=0, spacing=spacing, fov_mm=CHEST_FOV_MM, nodules=[NoduleSpec(diameter_mm=10.0)])
    labels = {k: phantom.labels[k] for k in ("lung_left", "lung_right")}
    if factor == 1:
        return phantom.volume, labels
    small = phantom.volume

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a, factor, axis=1), factor, axis=2)

    fine = (spacing[0], spacing[1] / factor, spacing[2] / factor)
    x0, y0, z0 = small.voxel_to_world(np.zeros((1, 3)))[0]
    shift = (spacing[1] - fine[1]) / 2  # centre of the first fine voxel inside the first coarse one
    volume = Volume.from_array(up(small.data), spacing=fine, origin=(x0 - shift, y0 - shift, z0), modality="CT",
                               name="chest")
    return volume, {k: up(v) for k, v in labels.items()}


def classical_lungs(volume) -> tuple[np.ndarray, np.ndarray]:
    from grounding.segmenters import get_segmenter

    segmenter = get_segmenter("classical")
    return segmenter.segment(volume, "lung_left"), segmenter.segment(volume, "lung_right")


def threshold_lungs(data: np.ndarray, label: Callable[[np.ndarray], tuple[np.ndarray, int]]):
    """The peer pipeline (see the module docstring); canonical arrays put the patient's left at +x."""
    labels, n = label(data < HU_AIR)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    edges = [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]]
    counts[np.unique(np.concatenate([e.ravel() for e in edges]))] = 0
    counts[0] = 0
    first, second = np.argsort(counts)[::-1][:2]
    mid = data.shape[2] // 2
    largest = labels == first
    on_left = np.count_nonzero(largest[:, :, mid:]) / max(counts[first], 1)
    if counts[second] == 0 or 0.2 < on_left < 0.8:
        left = largest.copy()
        left[:, :, :mid] = False
        largest[:, :, mid:] = False
        return left, largest
    other = labels == second

    def centre_x(mask: np.ndarray) -> float:
        profile = np.count_nonzero(mask, axis=(0, 1))
        return float((profile * np.arange(profile.size)).sum() / max(profile.sum(), 1))

    return (largest, other) if centre_x(largest) > centre_x(other) else (other, largest)


def cc3d_lungs(volume) -> tuple[np.ndarray, np.ndarray]:
    import cc3d

    return threshold_lungs(volume.data, lambda m: cc3d.connected_components(m, connectivity=6, return_N=True))


def scipy_lungs(volume) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    return threshold_lungs(volume.data, ndimage.label)


CONTENDERS = {"classical": classical_lungs, "cc3d": cc3d_lungs, "scipy": scipy_lungs}


def measure_size(size: str, repeats: int) -> dict:
    """Time, trace and score every contender on one size."""
    volume, truth = synthetic_chest(size)
    timings = time_round_robin({name: (lambda f=f: f(volume)) for name, f in CONTENDERS.items()}, repeats)
    volume_bytes = volume.data.nbytes
    rows = {}
    for name, f in CONTENDERS.items():
        (left, right), peak = traced_peak(lambda f=f: f(volume))
        rows[name] = {**timings[name].to_dict(), "peak_traced_ratio": round(peak / volume_bytes, 2),
                      "dice_lung_left": round(dice(left, truth["lung_left"]), 4),
                      "dice_lung_right": round(dice(right, truth["lung_right"]), 4)}
    return {"size": size, "shape_zyx": list(volume.shape), "spacing_mm_zyx": [round(s, 4) for s in volume.spacing],
            "voxels": int(volume.data.size), "volume_mb": round(volume_bytes / 2**20, 1), "contenders": rows,
            "timings": timings}


def measure_organs(repeats: int) -> dict:
    """The classical abdominal organs on a real-size abdominal CT phantom (fresh segmenter per repeat)."""
    from grounding.segmenters import get_segmenter
    from grounding.segmenters.organs import ABDOMEN_TARGETS
    from imaging.phantoms import abdomen_ct

    phantom = abdomen_ct(seed=0, spacing=(1.25, 0.7, 0.7))
    volume = phantom.volume

    def run() -> dict[str, np.ndarray]:
        segmenter = get_segmenter("classical")
        return {t: segmenter.segment(volume, t) for t in ABDOMEN_TARGETS}

    timing = time_round_robin({"classical organs": run}, repeats, warmup=False)["classical organs"]
    masks, peak = traced_peak(run)
    return {"shape_zyx": list(volume.shape), "spacing_mm_zyx": list(volume.spacing), **timing.to_dict(),
            "peak_traced_ratio": round(peak / volume.data.nbytes, 2),
            "dice": {t: round(dice(m, phantom.labels[t]), 3) for t, m in masks.items() if t in phantom.labels}}


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (nnU-Net's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_adapters(spacing: float = 8.0) -> Iterator[dict]:
    """CPU seconds of each segmenter on the chest phantom at ``spacing`` mm, one row per segmenter as it
    finishes (see the module docstring)."""
    import tempfile
    from pathlib import Path

    import torch

    from grounding.segmenters import Prompt, get_segmenter
    from grounding.segmenters.tiny import build_tiny_bundle, build_tiny_totalseg, save_tiny_sam
    from imaging.phantoms import chest_ct

    volume = chest_ct(seed=0, spacing=(spacing,) * 3, vessels=False).volume
    z, y, x = volume.shape
    box = Prompt(box_zyx=(slice(z // 2, z // 2 + 1), slice(y // 4, y // 2), slice(x // 4, x // 2)))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="perf_segment_") as tmp:
        root = Path(tmp)
        runs = [
            ("classical", {}, ("lungs", None), ("bone", None)),
            ("totalseg", {"weights": str(build_tiny_totalseg(root / "totalseg"))}, ("lungs", None), ("liver", None)),
            ("monai", {"weights": str(build_tiny_bundle(root / "labelmap"))}, ("liver", None), ("spleen", None)),
            ("monai", {"weights": str(build_tiny_bundle(root / "vista", kind="vista"))}, ("liver", None),
             ("spleen", None)),
            ("sam", {"weights": str(save_tiny_sam(root / "sam_tiny.pth"))}, (None, box), (None, box)),
            ("medsam", {"weights": str(save_tiny_sam(root / "medsam_tiny.pth"))}, (None, box), (None, box)),
        ]
        for name, options, first, second in runs:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            segmenter = get_segmenter(name, device="cpu", **options)
            t1 = time.perf_counter()
            segmenter.segment(volume, first[0], first[1])
            t2 = time.perf_counter()
            segmenter.segment(volume, second[0], second[1])
            t3, c3 = time.perf_counter(), _cpu_seconds()
            label = name if name != "monai" else f"monai ({'vista' if segmenter.promptable else 'label map'})"
            yield {"segmenter": label, "shape_zyx": list(volume.shape), "load_s": round(t1 - t0, 3),
                   "first_s": round(t2 - t1, 3), "next_s": round(t3 - t2, 3), "cpu_s": round(c3 - c0, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each contender (default 3)")
    parser.add_argument("--plot", type=Path, help="write segment_scaling.png (time against voxels) here")
    parser.add_argument("--organs", action="store_true",
                        help="time the classical abdominal organs on a real-size abdominal CT instead")
    parser.add_argument("--adapters", action="store_true",
                        help="time the model adapters (tiny checkpoints) beside the classical segmenter")
    parser.add_argument("--spacing", type=float, default=8.0, help="--adapters: phantom spacing in mm (default 8)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.adapters:
        rows = []
        print(f"{'segmenter':<20} {'shape (z, y, x)':<16} {'load s':>8} {'first s':>8} {'next s':>8} {'cpu s':>8}",
              flush=True)
        for r in measure_adapters(args.spacing):
            rows.append(r)
            print(f"{r['segmenter']:<20} {str(tuple(r['shape_zyx'])):<16} {r['load_s']:>8.2f} {r['first_s']:>8.2f} "
                  f"{r['next_s']:>8.2f} {r['cpu_s']:>8.2f}", flush=True)
        _write_json(args.json, rows)
        return 0
    if args.organs:
        result = measure_organs(args.repeats)
        print(f"classical liver, spleen, kidneys on {tuple(result['shape_zyx'])} at {result['spacing_mm_zyx']} mm: "
              f"{result['median_s']:.3f} s (min {result['min_s']:.3f}, max {result['max_s']:.3f}, "
              f"n={len(result['seconds'])}); traced peak {result['peak_traced_ratio']:.2f}x the volume; "
              f"Dice {result['dice']}")
        _write_json(args.json, result)
        return 0
    results, points = [], {name: [] for name in CONTENDERS}
    for size in args.sizes:
        r = measure_size(size, args.repeats)
        timings: dict[str, Timing] = r.pop("timings")
        print(f"{size}: {tuple(r['shape_zyx'])} at {r['spacing_mm_zyx']} mm, float32 volume {r['volume_mb']} MB",
              flush=True)
        for name, row in r["contenders"].items():
            print(f"  {name:<10} {timings[name].describe()}; traced peak {row['peak_traced_ratio']:.2f}x the "
                  f"volume; Dice left {row['dice_lung_left']:.4f} right {row['dice_lung_right']:.4f}", flush=True)
            points[name].append((r["voxels"], row["median_s"], row["min_s"], row["max_s"]))
        print(f"  {ratio_line(timings, 'classical', 'cc3d')}; {ratio_line(timings, 'classical', 'scipy')}", flush=True)
        results.append(r)
    if args.plot:
        from benchmarks.core.plots import scaling_plot

        path = scaling_plot(points, args.plot / "segment_scaling.png",
                            f"lungs: time against voxels (median of {args.repeats}, min-max bars)")
        print(f"plot: {path}")
    _write_json(args.json, results)
    return 0


def _write_json(path: str | None, value: object) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(value, f, indent=2)


if __name__ == "__main__":
    raise SystemExit(main())
