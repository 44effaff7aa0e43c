"""CLI start-up benchmark: what a command costs before its work starts, beside the bare interpreter.

Each figure is the wall time of a fresh process (``python -m mmreason ...``, run from the source
tree), repeated ``--repeats`` times, as median and spread (min-max). Measured in the same run:

* ``python -c pass``: the interpreter alone (site-packages, the editable-install finder);
* ``mmreason --help`` and ``mmreason --version``;
* ``mmreason inspect FILE`` of a small NIfTI (16 x 32 x 32) beside the library call it makes,
  ``python -c "from imaging.io import load; load(FILE)"``: their difference is the CLI's own
  overhead (argument parsing, command discovery, printing);
* ``mmreason infer --help`` and ``mmreason bench --help`` (commands that register many options).

Overhead = command median - ``python -c pass`` median (for ``inspect``: minus the library call).
Goal (issue 20): ``--help`` and ``inspect`` overhead well under 0.5 s. ``--importtime`` also prints
the ten slowest imports (cumulative) of ``mmreason --help`` from ``python -X importtime``.

Run: ``python -m benchmarks.perf_cli`` (``--repeats 7`` by default, about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the source tree the commands run from (so they import this checkout, not an installed copy)
ROOT = Path(__file__).resolve().parent.parent


def make_nifti(path: Path) -> Path:
    """A small int16 NIfTI (16 x 32 x 32, 1 mm) written with nibabel."""
    import nibabel as nib
    import numpy as np

    data = (np.arange(16 * 32 * 32, dtype=np.int16) % 200 - 100).reshape(32, 32, 16)
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])), path)
    return path


def wall(cmd: list[str], repeats: int, root: Path = ROOT) -> dict[str, float]:
    """Median and spread (s) of the wall time of ``cmd`` in fresh processes; one warm-up run first."""
    subprocess.run(cmd, cwd=root, capture_output=True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=root, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def slowest_imports(cmd: list[str], n: int = 10) -> list[tuple[str, float]]:
    """The ``n`` imports with the largest cumulative time (s) in ``python -X importtime`` of ``cmd``."""
    done = subprocess.run([sys.executable, "-X", "importtime", *cmd], cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[1]) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def measure(repeats: int, root: Path = ROOT) -> dict[str, dict[str, float]]:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        image = str(make_nifti(Path(tmp) / "small.nii.gz"))
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "mmreason --help": [py, "-m", "mmreason", "--help"],
            "mmreason --version": [py, "-m", "mmreason", "--version"],
            "imaging.io.load(small)": [py, "-c", f"from imaging.io import load; load({image!r})"],
            "mmreason inspect small": [py, "-m", "mmreason", "inspect", image],
            "mmreason infer --help": [py, "-m", "mmreason", "infer", "--help"],
            "mmreason bench --help": [py, "-m", "mmreason", "bench", "--help"],
        }
        return {name: wall(cmd, repeats, root) for name, cmd in commands.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports of --help")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="source tree to run the commands in (default this checkout; e.g. an older commit's "
                             "`git archive` to compare)")
    args = parser.parse_args(argv)
    figures = measure(args.repeats, args.root)
    base = figures["python -c pass"]["median_s"]
    for name, f in figures.items():
        f["overhead_s"] = round(f["median_s"] - base, 3)
    figures["mmreason inspect small"]["cli_overhead_s"] = round(
        figures["mmreason inspect small"]["median_s"] - figures["imaging.io.load(small)"]["median_s"], 3)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"{args.root}: wall time of a fresh process, median of {args.repeats} [min-max]; overhead over "
              "`python -c pass`")
        for name, f in figures.items():
            extra = f"; CLI overhead over the load call {f['cli_overhead_s']:+.3f} s" if "cli_overhead_s" in f else ""
            print(f"  {name:<24} {f['median_s']:.3f} s [{f['min_s']:.3f}-{f['max_s']:.3f}]  "
                  f"overhead {f['overhead_s']:+.3f} s{extra}")
        print("goal: --help and inspect overhead well under 0.5 s")
    if args.importtime:
        print("slowest imports of `mmreason --help` (cumulative s):")
        for name, seconds in slowest_imports(["-m", "mmreason", "--help"]):
            print(f"  {seconds:7.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
