"""Load benchmark: the project's loader beside its peers, NIfTI and DICOM, time and peak memory.

For each size (``--nifti-shapes``, ``--dicom-shapes``) a CT-like file or series is written to a
temporary folder, then in the same run each contender loads it ``--repeats`` times, round-robin
(`benchmarks.core.timing`: medians with min-max spread), each producing a float32 array:

* NIfTI (int16 ``.nii.gz``): ``mmreason`` (`imaging.io.load`: canonical LPS float32, plus the three
  central views the tools render first), ``nibabel`` (``get_fdata(dtype=float32)``), ``SimpleITK``
  (``ReadImage`` as float32, array view), ``MONAI`` (``LoadImage`` + ``Orientation`` to LPS);
* DICOM (a series of int16 slices, shuffled file names): ``mmreason`` (`imaging.io.load` of the
  folder), ``SimpleITK`` (``ImageSeriesReader`` on the GDCM-sorted file names, float32 output, array
  view), ``pydicom`` (a plain stack: ``dcmread`` every file, sort by position, ``pixel_array`` with
  the rescale, as float32).

Peak memory of each contender is measured once, in a fresh subprocess after its imports: the
resident-set peak above the resident size before the load (Linux: ``VmHWM`` after resetting it
through ``/proc/self/clear_refs``; elsewhere the rise of ``ru_maxrss``), and the ``tracemalloc``
peak (numpy buffers; SimpleITK's own are not seen by it), both as multiples of the float32 volume.

``--plot DIR`` writes ``load_nifti_scaling.png`` and ``load_dicom_scaling.png`` (time against
voxels per contender). Goals: DICOM mmreason / SimpleITK <= 1.0; NIfTI mmreason / nibabel <= 1.5;
memory <= 3x the volume.

Run: ``python -m benchmarks.perf_load`` (a few minutes on 2 cores).
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
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.core.timing import ratio_line, time_round_robin

#: in-plane 0.7 mm, 1.0 mm slices; voxel axes point Left, Anterior, Superior (LAS, as dcm2niix writes)
AFFINE_RAS = np.array([[-0.7, 0, 0, 180.0], [0, 0.7, 0, -180.0], [0, 0, 1.0, -150.0], [0, 0, 0, 1]])


def _ct_slice(nx: int, ny: int) -> np.ndarray:
    """An int16 (x, y) CT-like slice: a body ellipse with lungs and a spine inside air."""
    x = np.linspace(-1, 1, nx, dtype=np.float32)[:, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :]
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1.0
    tissue = np.where(body, 40, -1000).astype(np.int16)
    tissue[body & ((x / 0.3) ** 2 + (y / 0.4) ** 2 <= 1.0) & (np.abs(x) > 0.08)] = -850  # lungs
    tissue[(x**2 + (y - 0.45) ** 2) <= 0.006] = 700  # spine
    return tissue


def make_ct(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Write an int16 (x, y, z) CT-like NIfTI: a body ellipse of tissue blocks inside air, plus noise."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    tissue = _ct_slice(nx, ny)
    data = np.empty(shape, dtype=np.int16, order="F")
    for k in range(nz):
        data[:, :, k] = tissue + rng.integers(-30, 30, size=(nx, ny), dtype=np.int16)
    img = nib.Nifti1Image(data, AFFINE_RAS)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(1.0, -0.0)
    nib.save(img, str(path))
    return path


def make_dicom_series(folder: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Write a (z, y, x) CT-like series, one int16 file per slice, under shuffled file names."""
    from imaging.volume import Volume
    from imaging.writers import write_dicom_series

    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    tissue = _ct_slice(nx, ny).T.astype(np.float32)
    data = np.empty(shape, dtype=np.float32)
    for k in range(nz):
        data[k] = tissue + rng.integers(-30, 30, size=(ny, nx))
    volume = Volume.from_array(data, spacing=(1.0, 0.7, 0.7), modality="CT", name="ct")
    write_dicom_series(volume, folder, rescale=(1.0, -1024.0), shuffle=True)
    return folder


def run_nibabel(path: Path) -> np.ndarray:
    return nib.load(str(path)).get_fdata(dtype=np.float32)


def run_mmreason(path: Path) -> np.ndarray:
    from imaging.io import load
    from imaging.views import slice_view

    volume = load(path)
    if path.is_file():
        for plane in ("axial", "coronal", "sagittal"):
            slice_view(volume, plane)
    return volume.data


def run_sitk_nifti(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(sitk.ReadImage(str(path), sitk.sitkFloat32))


def run_monai(path: Path) -> np.ndarray:
    from monai.transforms import LoadImage, Orientation

    image = LoadImage(image_only=True, dtype=np.float32, ensure_channel_first=True)(str(path))
    return np.asarray(Orientation(axcodes="LPS")(image))


def run_sitk_series(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayViewFromImage(reader.Execute())


def run_pydicom_stack(path: Path) -> np.ndarray:
    import pydicom

    datasets = [pydicom.dcmread(str(p)) for p in sorted(path.iterdir())]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                     for ds in datasets])


NIFTI: dict[str, Callable[[Path], np.ndarray]] = {
    "mmreason": run_mmreason, "nibabel": run_nibabel, "SimpleITK": run_sitk_nifti, "MONAI": run_monai,
}
DICOM: dict[str, Callable[[Path], np.ndarray]] = {
    "mmreason": run_mmreason, "SimpleITK": run_sitk_series, "pydicom": run_pydicom_stack,
}
TASKS = {f"nifti:{k}": v for k, v in NIFTI.items()} | {f"dicom:{k}": v for k, v in DICOM.items()}


def child(task: str, path: Path) -> None:
    """Measure one task's memory in this (fresh) process and print JSON."""
    import imaging.io  # noqa: F401  (imports are not part of the measured peak)
    import imaging.views  # noqa: F401

    if task.endswith("SimpleITK"):
        import SimpleITK  # noqa: F401
    if task.endswith("MONAI"):
        import monai.transforms  # noqa: F401

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
                      "result_mb": np.asarray(out).nbytes / 2**20}))


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


def measure(kind: str, path: Path, voxels: int, repeats: int) -> dict:
    """Time (round-robin repeats) and memory (one fresh subprocess each) of every contender."""
    contenders = NIFTI if kind == "nifti" else DICOM
    timings = time_round_robin({name: (lambda f=f: f(path)) for name, f in contenders.items()}, repeats)
    volume_mb = voxels * 4 / 2**20
    rows = {}
    for name in contenders:
        done = subprocess.run([sys.executable, "-m", "benchmarks.perf_load", "--child", f"{kind}:{name}", str(path)],
                              capture_output=True, text=True, check=True)
        memory = json.loads(done.stdout.strip().splitlines()[-1])
        rows[name] = {**timings[name].to_dict(), "rss_ratio": round(memory["rss_rise_mb"] / volume_mb, 2),
                      "traced_ratio": round(memory["tracemalloc_peak_mb"] / volume_mb, 2),
                      "rss_method": memory["rss_method"]}
    return {"timings": timings, "rows": rows, "volume_mb": round(volume_mb, 1)}


def report(kind: str, shape: tuple[int, ...], result: dict, peer: str) -> None:
    timings = result["timings"]
    print(f"{kind} {shape}, float32 volume {result['volume_mb']} MB:", flush=True)
    for name, row in result["rows"].items():
        print(f"  {name:<10} {timings[name].describe()}; peak memory: resident rise {row['rss_ratio']:.2f}x, "
              f"tracemalloc {row['traced_ratio']:.2f}x the volume", flush=True)
    print("  " + "; ".join(ratio_line(timings, "mmreason", other) for other in timings if other != "mmreason"),
          f"(goal vs {peer}: <= {1.0 if kind == 'DICOM' else 1.5})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nifti-shapes", type=int, nargs="+", default=[256, 256, 100, 512, 512, 300],
                        metavar="X Y Z", help="NIfTI sizes, three numbers each (default 256 256 100 512 512 300)")
    parser.add_argument("--dicom-shapes", type=int, nargs="*", default=[50, 512, 512, 200, 512, 512],
                        metavar="Z Y X", help="DICOM series sizes, three numbers each (default 50 512 512 200 512 512)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plot", type=Path, help="write the time-against-voxels plots into this folder")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    figures: dict[str, list] = {"nifti": [], "dicom": []}
    points: dict[str, dict[str, list]] = {"nifti": {k: [] for k in NIFTI}, "dicom": {k: [] for k in DICOM}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, flat in (("nifti", args.nifti_shapes), ("dicom", args.dicom_shapes)):
            for i in range(0, len(flat) - 2, 3):
                shape = tuple(flat[i:i + 3])
                t0 = time.perf_counter()
                if kind == "nifti":
                    path = make_ct(Path(tmp) / f"ct_{i}.nii.gz", shape)
                else:
                    path = make_dicom_series(Path(tmp) / f"series_{i}", shape)
                print(f"wrote {kind} {shape} in {time.perf_counter() - t0:.1f} s", flush=True)
                voxels = int(np.prod(shape))
                result = measure(kind, path, voxels, args.repeats)
                report(kind.upper() if kind == "dicom" else "NIfTI", shape, result,
                       "SimpleITK" if kind == "dicom" else "nibabel")
                for name, row in result["rows"].items():
                    points[kind][name].append((voxels, row["median_s"], row["min_s"], row["max_s"]))
                figures[kind].append({"shape": list(shape), "volume_mb": result["volume_mb"], "contenders": result["rows"]})
    if args.plot:
        from benchmarks.core.plots import scaling_plot

        for kind, title in (("nifti", "NIfTI int16 .nii.gz -> float32"), ("dicom", "DICOM series -> float32")):
            if any(points[kind].values()):
                path = scaling_plot(points[kind], args.plot / f"load_{kind}_scaling.png",
                                    f"{title}: time against voxels (median of {args.repeats}, min-max bars)")
                print(f"plot: {path}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
