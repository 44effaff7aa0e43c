"""``mmreason inspect PATH``: what a loader makes of a file or DICOM folder.

Prints the shape, spacing, orientation, modality, value range and allow-listed metadata of the
loaded `Volume`, and for a DICOM folder the series it holds. A folder with several series and no
``--series`` lists them and exits 0 (nothing is loaded). ``--json`` prints one JSON object.
File and folder names are shown only with ``--show-paths`` (they often hold a patient's name);
series UIDs only as short salted tokens, which ``--series`` accepts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmreason.commands import plain
from mmreason.commands.run_args import add_image_arguments, load_image, shown_name

if TYPE_CHECKING:
    from imaging.io import SeriesInfo
    from imaging.volume import Volume

SUMMARY = "show what mmreason loads from an image file or DICOM folder"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inspect", help=SUMMARY,
                              description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def describe(volume: Volume) -> dict[str, Any]:
    """The JSON-friendly description printed by the command (geometry, values, metadata)."""
    import numpy as np

    out = volume.summary()
    out["orientation_codes_zyx"] = volume.metadata.get("orientation_codes", "")
    out["origin_lps_mm"] = [round(float(v), 4) for v in volume.affine[:3, 3]]
    out["affine_zyx_to_lps"] = np.round(volume.affine, 6).tolist()
    out["metadata"] = volume.metadata
    return out


def _series_lines(series: list[SeriesInfo], chosen: int | None) -> list[str]:
    return [("* " if s.index == chosen else "  ") + s.label() + f", {s.size[0]}x{s.size[1]}" for s in series]


def run(args: argparse.Namespace) -> int:
    from imaging.io import list_series

    path = Path(args.path)
    label = shown_name(args)
    series = list_series(path) if path.is_dir() else None
    if series is not None and len(series) > 1 and args.series is None:
        hint = "several series: choose one with --series INDEX or --series TOKEN"
        if args.json:
            listing = [s.summary() for s in series]
            print(json.dumps({"path": label, "series": listing, "volume": None, "hint": hint}))
        else:
            print(f"{label}: {hint}")
            print("\n".join(_series_lines(series, None)))
        return 0
    volume = load_image(args)
    info = describe(volume)
    info["name"] = shown_name(args, volume.name)
    chosen = volume.metadata.get("series_index", 0) if series else None
    if args.json:
        print(json.dumps({"path": label, "series": [s.summary() for s in series] if series else None,
                          "volume": info}))
        return 0
    sz, sy, sx = volume.spacing
    if volume.is_2d and str(volume.metadata.get("geometry_source", "")).startswith("pixel grid"):
        # a projection or photo has no patient-space plane: only its display layout is known
        orientation = (f"2-D image in display order, columns towards the patient's left, rows downwards; "
                       f"{volume.metadata.get('display_orientation', 'no patient geometry')}")
    else:
        orientation = (f"canonical LPS; voxel axes z,y,x point {info['orientation_codes_zyx']}, "
                       f"obliquity {volume.metadata.get('obliquity_deg', 0.0)} deg")
    lines = [
        f"{label}: {volume.metadata.get('format', '?')}",
        f"  name          {info['name']}",
        f"  shape (z,y,x) {' x '.join(str(n) for n in volume.shape)}",
        f"  spacing mm    {sz:.4g} x {sy:.4g} x {sx:.4g} (z, y, x)",
        f"  orientation   {orientation}",
        f"  origin LPS mm {info['origin_lps_mm']}",
        f"  modality      {volume.modality} ({volume.metadata.get('modality_source', '?')})",
        f"  value range   {info['value_range']}",
    ]
    lines += [f"  assumed       {fact.describe()}" for fact in volume.assumed_facts()]
    if series:
        lines.append("  series:")
        lines += ["    " + line for line in _series_lines(series, chosen)]
    skip = {"orientation_codes", "obliquity_deg", "modality_source", "format", "display_orientation"}
    lines.append("  metadata:")
    lines += [f"    {k}: {v}" for k, v in volume.metadata.items() if k not in skip]
    print("\n".join(lines))
    return 0
