"""Load benchmark: our NIfTI loader + three rendered planes vs plain nibabel, time and peak memory.

Creates a 512x512x300 int16 CT-like .nii.gz (noisy HU blocks: air, fat, soft tissue, bone) in a
temporary folder, then in the same run:

* time, best of ``--repeats``: (a) ``nibabel.load(p).get_fdata(dtype=np.float32)``;
  (b) ``imaging.io.load(p)`` plus `imaging.views.slice_view` of the central axial, coronal and
  sagittal planes. Goal: (b) / (a) <= 1.5.
* peak memory of each, measured in a fresh subprocess after its imports: the resident-set peak
  above the resident size before the operation (Linux: ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``; elsewhere the rise of ``ru_maxrss``), which includes gzip buffers and
  the raw int16 array, and the ``tracemalloc`` peak (numpy registers its buffers with
  tracemalloc). Goal: peak <= 3x the float32 volume size.

Run: ``python -m benchmarks.perf_load`` (about a minute on 2 cores; ``--shape 256 256 100`` is quicker).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np

#: in-plane 0.7 mm, 1.0 mm slices; voxel axes point Left, Anterior, Superior (LAS, as dcm2niix writes)
AFFINE_RAS = np.array([[-0.7, 0, 0, 180.0], [0, 0.7, 0, -180.0], [0, 0, 1.0, -150.0], [0, 0, 0, 1]])


def make_ct(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Write an int16 (x, y, z) CT-like NIfTI: a body ellipse of tissue blocks inside air, plus noise."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x = np.linspace(-1, 1, nx, dtype=np.float32)[:, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :]
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1.0
    tissue = np.where(body, 40, -1000).astype(np.int16)
    tissue[body & ((x / 0.3) ** 2 + (y / 0.4) ** 2 <= 1.0) & (np.abs(x) > 0.08)] = -850  # lungs
    tissue[(x**2 + (y - 0.45) ** 2) <= 0.006] = 700  # spine
    data = np.empty(shape, dtype=np.int16, order="F")
    for k in range(nz):
        data[:, :, k] = tissue + rng.integers(-30, 30, size=(nx, ny), dtype=np.int16)
    img = nib.Nifti1Image(data, AFFINE_RAS)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(1.0, -0.0)
    nib.save(img, str(path))
    return path


def run_nibabel(path: Path) -> np.ndarray:
    return nib.load(str(path)).get_fdata(dtype=np.float32)


def run_mmreason(path: Path) -> np.ndarray:
    from imaging.io import load
    from imaging.views import slice_view

    volume = load(path)
    for plane in ("axial", "coronal", "sagittal"):
        slice_view(volume, plane)
    return volume.data


TASKS = {"nibabel": run_nibabel, "mmreason": run_mmreason}


def child(task: str, path: Path) -> None:
    """Measure one task's memory in this (fresh) process and print JSON."""
    import imaging.io  # noqa: F401  (imports are not part of the measured peak)
    import imaging.views  # noqa: F401

    baseline_kb = _status_kb("VmRSS")
    hwm_reset = _reset_peak_rss()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    out = TASKS[task](path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if hwm_reset and baseline_kb is not None:
        rise_kb, how = _status_kb("VmHWM") - baseline_kb, "VmHWM after /proc/self/clear_refs reset - VmRSS before"
    else:
        rise_kb, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, "ru_maxrss rise"
    print(json.dumps({"rss_rise_mb": rise_kb / 1024, "rss_method": how, "tracemalloc_peak_mb": peak / 2**20,
                      "result_mb": out.nbytes / 2**20}))


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in kB (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set peak (VmHWM) so it measures only what follows (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def best_time(task: str, path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        TASKS[task](path)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300), metavar=("X", "Y", "Z"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = make_ct(Path(tmp) / "ct.nii.gz", tuple(args.shape))
        print(f"created {path.name} {tuple(args.shape)} int16, {path.stat().st_size / 2**20:.1f} MB gzip "
              f"in {time.perf_counter() - t0:.1f} s")
        run_mmreason(path)  # warm the page cache and imports once for both
        times = {task: best_time(task, path, args.repeats) for task in ("nibabel", "mmreason")}
        memory = {}
        for task in TASKS:
            done = subprocess.run([sys.executable, "-m", "benchmarks.perf_load", "--child", task, str(path)],
                                  capture_output=True, text=True, check=True)
            memory[task] = json.loads(done.stdout.strip().splitlines()[-1])
    volume_mb = float(np.prod(args.shape)) * 4 / 2**20
    ratio = times["mmreason"] / times["nibabel"]
    print(f"time, best of {args.repeats}: nibabel get_fdata(float32) {times['nibabel']:.3f} s; "
          f"mmreason load + 3 central views {times['mmreason']:.3f} s; ratio {ratio:.2f} (goal <= 1.5)")
    for task, m in memory.items():
        print(f"peak memory {task}: resident rise {m['rss_rise_mb']:.0f} MB "
              f"({m['rss_rise_mb'] / volume_mb:.2f}x; {m['rss_method']}), "
              f"tracemalloc peak {m['tracemalloc_peak_mb']:.0f} MB "
              f"({m['tracemalloc_peak_mb'] / volume_mb:.2f}x) vs float32 volume {volume_mb:.0f} MB (goal <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
