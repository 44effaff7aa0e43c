"""The image argument every command that reads one study shares: a path plus `imaging.io.load` options.

Load errors name the option that fixes them (``--series``, ``--frame``, ``--allow-uneven`` ...),
so each command that loads an image offers the same options under the same names.
"""

from __future__ import annotations

import argparse

from imaging.io import DEFAULT_MAX_VOXELS, NONFINITE_POLICIES, load
from imaging.volume import MODALITIES, Volume


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``path`` and the loader options (defaults as in `imaging.io.load`)."""
    parser.add_argument("path", help="a .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd, .mgz/.mgh, .dcm, .png/.jpg/.tif file or a folder of DICOM files")
    loading = parser.add_argument_group("image loading")
    loading.add_argument("--series", default=None, help="series index or SeriesInstanceUID (DICOM folders)")
    loading.add_argument("--frame", type=int, default=None, help="frame of a 4-D NIfTI or multi-frame file")
    loading.add_argument("--modality", default=None, choices=MODALITIES, help="override the detected modality")
    loading.add_argument("--max-voxels", type=int, default=DEFAULT_MAX_VOXELS,
                         help=f"refuse larger images (default {DEFAULT_MAX_VOXELS:.2g})")
    loading.add_argument("--nonfinite", default="error", choices=NONFINITE_POLICIES, help="NaN/inf voxels policy")
    loading.add_argument("--allow-uneven", action="store_true",
                         help="resample a DICOM series with uneven slice spacing instead of failing")

def load_image(args: argparse.Namespace) -> Volume:
    """`imaging.io.load` of ``args.path`` with the options `add_image_arguments` added."""
    return load(args.path, series=args.series, frame=args.frame, modality=args.modality,
                max_voxels=args.max_voxels, nonfinite=args.nonfinite, allow_uneven=args.allow_uneven)
