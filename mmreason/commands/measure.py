"""``mmreason measure PATH --mask MASK``: size, diameters, intensity, centroid and side of a mask.

Both files are read with `imaging.io.load`, so both are brought to the canonical grid the same
way; the mask must then match the image voxel for voxel (same shape and affine).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mmreason.commands.run_args import add_image_arguments, load_image, loader_options, shown_name

if TYPE_CHECKING:
    import numpy as np

    from imaging.volume import Volume

SUMMARY = "measure a mask on an image (mm, mL, HU, side)"

#: largest difference (mm) between the two affines still treated as the same grid
GRID_TOLERANCE_MM = 1e-3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("measure", help=SUMMARY,
                              description="Measure a mask on an image: area or volume, diameters, intensity, "
                                          "centroid and side, in mm and HU.")
    add_image_arguments(p)
    p.add_argument("--mask", required=True, help="mask on the same grid (e.g. from mmreason segment --out)")
    p.add_argument("--json", action="store_true", help="print a JSON record instead of a summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imaging.io import load

    volume = load_image(args)
    # the mask shares the image's stated facts, not its series/frame choice
    facts = {k: v for k, v in loader_options(args).items() if k in ("spacing", "assume_orientation")}
    record = measure_mask(volume, mask_on_grid(volume, load(args.mask, **facts)))
    record["image"] = shown_name(args, volume.name)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"{record['image']} ({volume.modality}), {record['voxels']} mask voxels: {record['summary']}")
    return 0


def mask_on_grid(volume: Volume, mask_volume: Volume) -> np.ndarray:
    """The mask (non-zero voxels) of ``mask_volume``, checked to lie on ``volume``'s grid.

    Raises:
        MeasurementError: shapes or affines differ; the message gives both grids.
    """
    import numpy as np

    from grounding.measurements import MeasurementError
    same = mask_volume.shape == volume.shape and np.allclose(
        mask_volume.affine, volume.affine, atol=GRID_TOLERANCE_MM)
    if not same:
        def grid(v: Volume) -> str:
            origin = np.round(v.affine[:3, 3], 2).tolist()
            return f"shape {v.shape} (z, y, x), spacing {tuple(round(s, 3) for s in v.spacing)} mm, origin {origin}"

        raise MeasurementError(
            f"the mask is not on the image's grid: image {grid(volume)}, mask {grid(mask_volume)}; resample the "
            f"mask onto the image (or segment this image with `mmreason segment --out`)")
    return mask_volume.data > 0.5


def measure_mask(volume: Volume, mask: np.ndarray) -> dict[str, Any]:
    """Measure ``mask`` on ``volume`` (2-D for a 2-D image, else 3-D) as a JSON-ready record."""
    from grounding.measurements import measure_region

    result = measure_region(volume, mask)
    return {"image": volume.name, "modality": volume.modality, "voxels": result.voxels,
            "measurements": {k: {"value": v, "unit": u} for k, (v, u) in result.numbers().items()},
            "laterality": result.laterality, "centroid_mm": list(result.centroid_mm),
            "spacing_mm_zyx": list(result.spacing_mm), "summary": result.summary(), "details": result.as_dict()}

