"""The segmenter options shared by ``segment``, ``infer`` and ``bench`` (-> `SegmenterSpec`)."""

from __future__ import annotations

import argparse
from typing import Any

from grounding.segmenters import SEGMENTERS
from grounding.segmenters.device import DEVICES
from grounding.segmenters.spec import SegmenterSpec

HELP = (
    "segmentation backend of the segment tool: auto (per target, the best one whose weights are present, "
    "saying which and why; classical when none), classical (no weights; the offline default), totalseg "
    "(TotalSegmentator), monai (a MONAI bundle, e.g. wholeBody_ct_segmentation or VISTA3D), sam, medsam, "
    "reference (the oracle: a benchmark case's reference masks, or --weights <folder of <target>.nii.gz>)"
)


def add_segmenter_arguments(p: argparse.ArgumentParser, default: str = "classical") -> None:
    """Add ``--segmenter``, ``--weights``, ``--segmenter-device`` and the precision / sliding-window options."""
    g = p.add_argument_group("segmenter")
    g.add_argument("--segmenter", default=default, choices=SEGMENTERS, help=f"{HELP} (default: {default})")
    g.add_argument("--weights", action="append", default=[], metavar="PATH",
                   help="model weights: a TotalSegmentator folder (holding nnunet/results), a MONAI bundle folder, "
                        "or a SAM/MedSAM .pth; repeat for --segmenter auto (default for totalseg: "
                        "TOTALSEG_HOME_DIR or ~/.totalsegmentator)")
    g.add_argument("--checkpoint", help=argparse.SUPPRESS)  # the older spelling of --weights for sam/medsam
    g.add_argument("--segmenter-device", default="auto", metavar="DEVICE",
                   help=f"where model segmenters run: {', '.join(DEVICES)} or cuda:N (default auto: the GPU when "
                        "present, else the CPU)")
    g.add_argument("--no-half", action="store_true", help="full precision on the GPU (default: float16 autocast)")
    g.add_argument("--sw-batch-size", type=int, help="sliding-window batch of MONAI bundles (default: the bundle's)")
    g.add_argument("--sw-overlap", type=float, help="sliding-window overlap of MONAI bundles, 0-1 (default: the bundle's)")
    g.add_argument("--fast", action="store_true", default=None,
                   help="TotalSegmentator's 3 mm model (default: full resolution when its weights are present)")


def segmenter_spec(args: argparse.Namespace) -> SegmenterSpec:
    """The `SegmenterSpec` the parsed arguments describe."""
    weights: list[Any] = list(args.weights) + ([args.checkpoint] if args.checkpoint else [])
    return SegmenterSpec(name=args.segmenter, weights=weights, device=args.segmenter_device, half=not args.no_half,
                         sw_batch_size=args.sw_batch_size, sw_overlap=args.sw_overlap, fast=args.fast)
