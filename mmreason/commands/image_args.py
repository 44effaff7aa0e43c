"""The image argument every command that reads one study shares: a path plus `imaging.io.load` options.

Load errors name the option that fixes them (``--series``, ``--frame``, ``--allow-uneven`` ...),
so each command that loads an image offers the same options under the same names.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from imaging.io import DEFAULT_MAX_VOXELS, NONFINITE_POLICIES, load
from imaging.volume import MODALITIES, Volume

#: what outputs call the input when ``--show-paths`` is not given (a file or folder name is often
#: the patient's name)
HIDDEN_NAME = "input"


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
    add_trust_arguments(loading)
    parser.add_argument("--show-paths", action="store_true",
                        help="show file and folder names in the output (hidden by default: they often hold "
                             "a patient's name)")


def add_trust_arguments(group: argparse._ActionsContainer) -> None:
    """``--pixel-spacing`` and ``--assume-orientation``: facts the file lacks, stated by the user."""
    group.add_argument("--pixel-spacing", type=float, nargs=2, metavar=("ROW_MM", "COL_MM"), default=None,
                       help="pixel size for images that lack one (PNG/JPEG/TIFF, DICOM without PixelSpacing); "
                            "without it 1.0 mm is assumed and every size is flagged as assumed")
    group.add_argument("--assume-orientation", action="store_true",
                       help="accept an orientation the file does not state (NIfTI with sform/qform codes 0, "
                            "images without patient axes) and report left/right from it; you take responsibility")


def load_options(args: argparse.Namespace) -> dict[str, object]:
    """The `imaging.io.load` keywords of `add_trust_arguments`."""
    spacing = tuple(args.pixel_spacing) if getattr(args, "pixel_spacing", None) else None
    return {"spacing": spacing, "assume_orientation": bool(getattr(args, "assume_orientation", False))}


def load_image(args: argparse.Namespace) -> Volume:
    """`imaging.io.load` of ``args.path`` with the options `add_image_arguments` added."""
    return load(args.path, series=args.series, frame=args.frame, modality=args.modality,
                max_voxels=args.max_voxels, nonfinite=args.nonfinite, allow_uneven=args.allow_uneven,
                **load_options(args))  # type: ignore[arg-type]


def hide_input_names(text: str, args: argparse.Namespace) -> str:
    """``text`` (an error message) with the names of the inputs in ``args`` replaced by `HIDDEN_NAME`,
    unless ``--show-paths``: loaders name the file or folder they fail on, which may be a patient's name."""
    if getattr(args, "show_paths", False):
        return text
    paths = [getattr(args, "path", None), getattr(args, "mask", None), *(getattr(args, "image", None) or [])]
    names: set[str] = set()
    for value in paths:
        if value:
            path = Path(value)
            names |= {str(value), str(path.expanduser()), path.name, path.name.split(".")[0]}
    for name in sorted((n for n in names if len(n) > 2), key=len, reverse=True):  # longest first
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", HIDDEN_NAME, text)
    return text


def shown_name(args: argparse.Namespace, name: str | None = None) -> str:
    """``name`` (default: the input path's last part) with ``--show-paths``, else `HIDDEN_NAME`."""
    if getattr(args, "show_paths", False):
        return name if name is not None else Path(args.path).name
    return HIDDEN_NAME
