"""``mmreason segment PATH --target NAME``: segment a structure, summarise it, optionally save the mask.

Runs the same ``segment`` and ``measure`` tools a model calls (`grounding.tools`), on the image
loaded by `imaging.io.load`; ``--overlay PNG`` saves the overlay image the summary describes. The mask is written as NIfTI on the image's own grid, so
``mmreason measure PATH --mask OUT`` reads it back voxel for voxel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from mmreason.commands.run_args import add_image_arguments, add_segmenter_arguments, load_image, segmenter_spec, shown_name

if TYPE_CHECKING:
    import numpy as np

    from imaging.volume import Volume

SUMMARY = "segment a structure in an image and summarise it"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("segment", help=SUMMARY,
                              description="Segment a structure in an image, summarise its size and side, "
                                          "and optionally save the mask as NIfTI.")
    add_image_arguments(p)
    p.add_argument("--target", required=True, help="structure to segment, e.g. lungs, lung_left, body, bone, nodule; with a model "
                                                          "segmenter also liver, spleen, aorta, vertebrae, lung lobes ...")
    p.add_argument("--out", help="write the mask here as NIfTI (.nii or .nii.gz)")
    p.add_argument("--overlay", metavar="PNG", help="write the overlay image (the mask in red on the slice the "
                                                    "summary names) here as PNG")
    p.add_argument("--json", action="store_true", help="print a JSON record instead of a summary")
    add_segmenter_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    volume = load_image(args)
    spec = segmenter_spec(args)
    record = segment_and_measure(volume, args.target, spec.name, spec.options())
    record["image"] = shown_name(args, volume.name)
    if args.out:
        write_mask(record.pop("_mask"), volume, args.out)
        record["out"] = str(args.out)
    record.pop("_mask", None)
    overlay = record.pop("_overlay", None)
    if args.overlay and overlay is not None:
        Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
        overlay.image.save(args.overlay)
        record["overlay"] = str(args.overlay)
    # the overlay exists here only when saved: the tool's summary leaves it out, the description says what it shows
    if record.get("overlay"):
        record["segment"] += f" Overlay: {overlay.description}."
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(record["segment"])
        if record.get("measure"):
            print(record["measure"])
        if args.out:
            print(f"Mask written to {args.out}")
        if record.get("overlay"):
            print(f"Overlay written to {record['overlay']}")
    return 0


def segment_and_measure(volume: Volume, target: str, segmenter: str = "classical",
                        segmenter_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the ``segment`` tool (3-D, or 2-D for a 2-D image) and ``measure`` its mask.

    ``target`` may be any name or alias the chosen segmenter knows (e.g. ``left lung``).

    Returns:
        A JSON-ready record (``segment`` and ``measure`` summaries without evidence or view ids,
        ``measurements``, ``laterality``, ``centroid_mm``) plus the boolean mask under ``_mask`` and
        the overlay `View` under ``_overlay``. An empty mask is reported, not measured.

    Raises:
        SegmentationError: unknown backend or target (the message lists the known ones).
    """
    from grounding.segmenters import TARGET_DESCRIPTIONS, resolve_target
    from grounding.tool import ToolContext
    from grounding.tools import default_registry
    from grounding.tools.segment import segmenter_for

    context = ToolContext(volumes={"0": volume}, segmenter=segmenter,
                          options={"segmenter_options": segmenter_options or {}})
    known = segmenter_for(context).targets
    target = resolve_target(target, tuple(known))
    registry = default_registry({t: TARGET_DESCRIPTIONS.get(t, t) for t in known})
    seg = registry.run(context, "segment", {"target": target})
    record: dict[str, Any] = {"image": volume.name, "modality": volume.modality, "target": target,
                              "segmenter": seg.data.get("segmenter", segmenter), "shape_zyx": list(volume.shape),
                              "spacing_mm_zyx": list(volume.spacing), "segment": seg.summary,
                              "voxels": int(seg.data["voxels"]), "measure": None, "measurements": {},
                              "quality": seg.quality.to_dict(), "_mask": seg.mask,
                              "_overlay": seg.views[0] if seg.views else None}
    for key in ("segmenter_requested", "segmenter_reason", "agreement"):
        if key in seg.data:
            record[key] = seg.data[key]
    if seg.data["voxels"]:
        meas = registry.run(context, "measure", {"evidence_id": seg.id})
        # standalone output: no evidence ids, which only mean something inside an episode
        record["measure"] = f"Measured {target}: {meas.summary}"
        record["measurements"] = {k: m.to_dict() for k, m in meas.measurements.items()}
        record["laterality"] = meas.data["laterality"]
        record["centroid_mm"] = list(meas.data["centroid_mm"])
    return record


def write_mask(mask: np.ndarray, volume: Volume, path: str | Path) -> Path:
    """Write a boolean (z, y, x) mask on ``volume``'s grid as NIfTI (1 inside, 0 outside)."""
    import numpy as np

    from imaging.volume import Volume
    from imaging.writers import write_nifti

    return write_nifti(Volume(data=mask.astype(np.float32), spacing=volume.spacing, affine=volume.affine,
                              modality="OT", name=f"{volume.name}_mask"), path)
