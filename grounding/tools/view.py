"""``view``: render a slice, a maximum-intensity projection or a montage of a volume."""

from __future__ import annotations

from typing import Any

from grounding.evidence import Evidence
from grounding.plausibility import image_quality
from grounding.tool import Tool, ToolContext, ToolError
from imaging.views import (
    MAX_SIDE,
    PLANE_AXIS,
    PLANES,
    View,
    mm_to_index,
    montage_view,
    projection_view,
    slice_view,
)
from imaging.volume import Volume
from imaging.windowing import CT_PRESETS, PRESETS

MODES = ("slice", "mip", "montage")
#: world axis name along each plane's normal (voxel z -> S, y -> P, x -> L)
NORMAL_NAME = {"axial": "z", "coronal": "y", "sagittal": "x"}

DESCRIPTION = (
    "Show an image of the study. mode 'slice' shows one axial, coronal or sagittal slice (choose it "
    "with index or position_mm; default the middle slice); 'mip' shows a maximum-intensity "
    "projection through the whole volume seen from that plane; 'montage' shows several evenly spaced "
    "slices in a grid. CT windows: lung, mediastinum, soft_tissue, abdomen, liver, bone, brain; 'auto' "
    "suits any modality. A 2-D image (e.g. an X-ray) has only one view: plane 'axial', mode 'slice'. "
    "Returns a view id (V1, V2, ...) whose pixels you can use for bbox_2d and point_2d in later calls."
)

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "volume": {"type": "string", "description": "Id of the image/volume to show; default the first."},
        "plane": {"type": "string", "enum": list(PLANES),
                  "description": "Anatomical plane (for 'mip': the direction the projection is seen from)."},
        "mode": {"type": "string", "enum": list(MODES),
                 "description": "'slice' (default), 'mip' (maximum-intensity projection) or 'montage'."},
        "index": {"type": "integer", "minimum": 0,
                  "description": "Slice number along the plane's normal, from 0; default the middle slice."},
        "position_mm": {"type": "number",
                        "description": "Alternative to index: slice position in mm along the normal "
                                       "(z for axial, y for coronal, x for sagittal; patient LPS coordinates)."},
        "window": {"type": "string", "enum": list(PRESETS), "description": "Intensity window; default 'auto'."},
        "count": {"type": "integer", "minimum": 2, "maximum": 16,
                  "description": "Number of slices in a montage; default 9."},
    },
    "required": [],
    "additionalProperties": False,
}


def run_view(
    context: ToolContext,
    volume: str | None = None,
    plane: str = "axial",
    mode: str = "slice",
    index: int | None = None,
    position_mm: float | None = None,
    window: str = "auto",
    count: int = 9,
) -> Evidence:
    """Render the requested view, register it in the context and describe it (see `DESCRIPTION`)."""
    volume_id, vol = context.get_volume(volume)
    if window in CT_PRESETS and vol.modality != "CT":
        raise ToolError(f"window '{window}' is a CT preset in HU and this image is {vol.modality}; "
                        f"use window 'auto'")
    if index is not None and position_mm is not None:
        raise ToolError("give either index or position_mm, not both")
    max_side = int(context.options.get("max_side", MAX_SIDE))
    if vol.is_2d:
        view, text = _view_2d(vol, volume_id, plane, mode, index, position_mm, window, max_side)
    elif mode == "slice":
        view, text = _view_slice(vol, volume_id, plane, index, position_mm, window, max_side)
    else:
        if index is not None or position_mm is not None:
            raise ToolError(f"mode '{mode}' does not take index or position_mm; drop them "
                            f"(or use mode 'slice' for one slice)")
        if mode == "mip":
            view = projection_view(vol, plane, window, max_side=max_side, volume_id=volume_id)
            text = (f"{plane} maximum-intensity projection through all {vol.shape[PLANE_AXIS[plane]]} "
                    f"{plane} slices, {window} window")
        else:
            view = montage_view(vol, plane, count=count, window=window, volume_id=volume_id)
            text = view.description + f", {window} window"
    view.description = text
    view_id = context.add_view(view)
    w, h = view.size
    detail = f"{w}x{h} px"
    if mode != "montage" or vol.is_2d:
        detail += ", " + _mm_per_px(view)
    # what a view shows is the image and its modality: a constant image or a guessed modality is said
    quality = image_quality(vol)
    flagged = "" if quality.trusted else f". {quality.describe()}"
    return Evidence(id="", tool="view", arguments={}, text=f"{view_id}: {text}, {detail}{flagged}", views=[view],
                    data={"view_id": view_id, "volume": volume_id, "plane": view.plane, "mode": mode,
                          "window": window, "size": [w, h]}, quality=quality)


def _view_2d(vol: Volume, volume_id: str, plane: str, mode: str, index: int | None,
             position_mm: float | None, window: str, max_side: int) -> tuple[View, str]:
    if plane != "axial" or mode != "slice" or index not in (None, 0) or position_mm is not None:
        raise ToolError(f"this image is 2-D ({vol.modality}, a single image): only plane 'axial', "
                        f"mode 'slice', index 0 is available")
    view = slice_view(vol, "axial", 0, window, max_side=max_side, volume_id=volume_id)
    return view, f"2-D {vol.modality} image, {window} window"


def _view_slice(vol: Volume, volume_id: str, plane: str, index: int | None, position_mm: float | None,
                window: str, max_side: int) -> tuple[View, str]:
    axis = PLANE_AXIS[plane]
    n = vol.shape[axis]
    if position_mm is not None:
        k = round(mm_to_index(vol, plane, position_mm))
        if not 0 <= k < n:
            lo, hi = sorted(_position_mm(vol, plane, i) for i in (0, n - 1))
            raise ToolError(f"position_mm {position_mm:g} is outside the volume: {plane} positions "
                            f"({NORMAL_NAME[plane]}) run from {lo:+.1f} to {hi:+.1f} mm")
    else:
        k = n // 2 if index is None else int(index)
        if not 0 <= k < n:
            raise ToolError(f"{plane} index {k} is outside the volume: valid indices are 0..{n - 1}")
    view = slice_view(vol, plane, k, window, max_side=max_side, volume_id=volume_id)
    pos = _position_mm(vol, plane, k)
    return view, f"{plane} slice {k}/{n - 1} at {NORMAL_NAME[plane]}={pos:+.1f} mm, {window} window"


def _position_mm(vol: Volume, plane: str, k: int) -> float:
    axis = PLANE_AXIS[plane]
    idx = [0.0, 0.0, 0.0]
    idx[axis] = float(k)
    return float(vol.voxel_to_world([idx])[0][[2, 1, 0][axis]])


def _mm_per_px(view: View) -> str:
    sx, sy = view.geometry.pixel_spacing_mm  # type: ignore[union-attr]
    return f"{sx:.2f} mm/px" if abs(sx - sy) < 1e-3 else f"{sx:.2f} x {sy:.2f} mm/px"


VIEW = Tool(name="view", description=DESCRIPTION, parameters=PARAMETERS, fn=run_view)
