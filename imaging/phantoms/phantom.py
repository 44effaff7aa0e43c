"""`Phantom`: synthetic volumes, their label masks and the ground truth they were built from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imaging.phantoms.shapes import Ball, Grid, PhantomError
from imaging.volume import Volume

SAVE_FORMATS = ("nifti", "dicom", "png")


@dataclass
class Phantom:
    """A synthetic study with exact ground truth.

    Attributes:
        volumes: the images by sequence/role, e.g. ``{"ct": vol}`` or ``{"t1", "t2", "flair"}``;
            all share one grid.
        labels: boolean masks ``(z, y, x)`` on that grid, by structure name.
        truth: JSON-serialisable ground truth (positions in LPS mm and voxels, sizes in mm,
            volumes in mm3/mL); see each builder for its keys.
        name: the phantom kind (``chest_ct``, ``abdomen_ct``, ``brain_mr``, ``chest_xray``).
    """

    volumes: dict[str, Volume]
    labels: dict[str, np.ndarray]
    truth: dict[str, Any]
    name: str

    @property
    def volume(self) -> Volume:
        """The first volume (the CT, the T1, the radiograph)."""
        return next(iter(self.volumes.values()))

    def save(self, folder: str | Path, format: str = "nifti") -> Path:
        """Write the volumes, the label masks and ``truth.json`` into ``folder``.

        Args:
            folder: created if missing.
            format: ``nifti`` (``<volume>.nii.gz``, e.g. ``ct.nii.gz``), ``dicom`` (a series
                folder ``<volume>/`` for CT/MR, one ``<volume>.dcm`` for X-ray) or ``png``
                (``<volume>.png``: the image of a 2-D phantom, else the central axial slice,
                in the modality's default window). Labels are always NIfTI masks
                ``labels/<label>.nii.gz`` (1 inside, 0 outside) on the volumes' grid.

        Returns:
            the folder.
        """
        from imaging import writers  # lazy: nibabel/pydicom are only needed to write files
        from imaging.views import slice_view

        if format not in SAVE_FORMATS:
            raise PhantomError(f"unknown save format '{format}'; choose one of {', '.join(SAVE_FORMATS)}")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for key, vol in self.volumes.items():
            if format == "nifti":
                writers.write_nifti(vol, out / f"{key}.nii.gz")
            elif format == "dicom" and vol.is_2d:
                writers.write_dicom_image(vol, out / f"{key}.dcm")
            elif format == "dicom":
                writers.write_dicom_series(vol, out / key, series_description=f"{self.name} {key}")
            else:
                writers.write_png(vol if vol.is_2d else slice_view(vol, "axial"), out / f"{key}.png")
        (out / "labels").mkdir(exist_ok=True)
        ref = self.volume
        for label, mask in self.labels.items():
            mask_vol = Volume(data=mask.astype(np.float32), spacing=ref.spacing, affine=ref.affine,
                              modality="OT", name=label)
            writers.write_nifti(mask_vol, out / "labels" / f"{label}.nii.gz")
        (out / "truth.json").write_text(json.dumps(self.truth, indent=2) + "\n")
        return out


def _r(v: float, nd: int = 3) -> float:
    return round(float(v), nd)


def ball_truth(label: str, ball: Ball, mask: np.ndarray, grid: Grid, **extra: Any) -> dict[str, Any]:
    """Ground truth of a spherical lesion: analytic and voxelised size and position.

    ``center_voxel`` is the nearest voxel index (z, y, x) (usable as an index);
    ``center_voxel_float`` the exact continuous position.
    """
    zyx = grid.world_to_voxel(ball.center)
    n = int(mask.sum())
    return {
        "label": label,
        "center_mm": [_r(v, 2) for v in ball.center],
        "center_voxel": [int(round(v)) for v in zyx],
        "center_voxel_float": [_r(v, 2) for v in zyx],
        "diameter_mm": _r(ball.diameter, 2),
        "volume_mm3": _r(ball.volume_mm3, 1),
        "volume_mm3_voxels": _r(n * grid.voxel_volume_mm3, 1),
        "voxels": n,
        **extra,
    }


def structures_truth(labels: dict[str, np.ndarray], grid: Grid) -> dict[str, dict[str, Any]]:
    """Per label: voxel count, volume in mL and centroid in LPS mm (x, y, z) from the mask."""
    out: dict[str, dict[str, Any]] = {}
    for name, mask in labels.items():
        n = int(mask.sum())
        if n == 0:
            out[name] = {"voxels": 0, "volume_ml": 0.0, "centroid_mm": None}
            continue
        # the centroid from per-axis marginal sums avoids building index arrays of the whole mask
        zyx = [
            float((mask.sum(axis=tuple(b for b in range(3) if b != a)) * np.arange(mask.shape[a])).sum()) / n
            for a in range(3)
        ]
        out[name] = {
            "voxels": n,
            "volume_ml": _r(n * grid.voxel_volume_mm3 / 1000.0, 2),
            "centroid_mm": [_r(v, 2) for v in grid.voxel_to_world(np.array(zyx))],
        }
    return out


def grid_truth(grid: Grid, fov_mm: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "spacing": list(grid.spacing),
        "shape": list(grid.shape),
        "fov_mm": [float(f) for f in fov_mm],
        "orientation": "LPS",
        "origin_mm": [_r(v, 3) for v in grid.origin],
    }


def side_of(x_mm: float) -> str:
    """Patient side of an LPS x coordinate: positive x is the patient's left."""
    return "left" if x_mm > 0 else "right"
