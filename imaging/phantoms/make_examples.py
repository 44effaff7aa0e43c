"""Regenerate the committed example scans in ``examples/``.

    python -m imaging.phantoms.make_examples [--out examples]

Writes ``chest_ct.nii.gz`` (chest CT, 5 mm slices, 1.6 mm pixels, one 12 mm nodule in the right
lung, int16 HU) with ``chest_ct_truth.json``, and ``chest_xray.png`` (PA radiograph, 1 mm pixels)
with ``chest_xray_truth.json``. The output is deterministic: the same files every run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imaging.phantoms.chest import NoduleSpec, chest_ct
from imaging.phantoms.xray import chest_xray

EXAMPLE_SEED = 0
CHEST_SPACING = (5.0, 1.6, 1.6)
CHEST_NOISE_HU = 10.0
NODULE = NoduleSpec(diameter_mm=12.0, side="right")
#: the examples show the reference heart (cardiothoracic ratio 0.48), whatever the seed draws
EXAMPLE_HEART_SCALE = 1.0


def make_examples(out: Path) -> list[Path]:
    """Write the example files into ``out``; return their paths."""
    from imaging.writers import write_nifti, write_png

    out.mkdir(parents=True, exist_ok=True)
    ct = chest_ct(EXAMPLE_SEED, CHEST_SPACING, [NODULE], noise_hu=CHEST_NOISE_HU, heart_scale=EXAMPLE_HEART_SCALE)
    xr = chest_xray(EXAMPLE_SEED, heart_scale=EXAMPLE_HEART_SCALE)
    paths = [
        write_nifti(ct.volume, out / "chest_ct.nii.gz"),
        write_png(xr.volume, out / "chest_xray.png"),
    ]
    for name, phantom in (("chest_ct", ct), ("chest_xray", xr)):
        path = out / f"{name}_truth.json"
        path.write_text(json.dumps(phantom.truth, indent=2) + "\n")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"), help="output folder (default: examples)")
    args = parser.parse_args(argv)
    for path in make_examples(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
