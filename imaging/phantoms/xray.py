"""Chest radiograph phantom: a posterior-anterior projection of the chest CT phantom.

The chest CT phantom (without table and noise) is converted from HU to linear attenuation
``mu = MU_WATER * (1 + HU / 1000)`` (per mm), integrated along y (anterior-posterior) and shown as
log-attenuation, so bone and heart are bright and lungs dark, as on a PA film. Rows run from
superior (top) to inferior; columns follow the CT's x, so the patient's right is on the image left
as radiographs are displayed. The image is a volume of shape ``(1, H, W)`` with square pixels,
modality ``XR``; its axis-aligned affine carries the pixel spacing (row mm on the second axis).

Ground truth widths are measured on the projected masks in mm: a width is
``(last column - first column + 1) * pixel_spacing`` of the mask, so measurement code working
on the label masks reproduces it exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from imaging.phantoms.chest import CHEST_FOV_MM, NoduleSpec, build_chest
from imaging.phantoms.phantom import Phantom
from imaging.phantoms.shapes import PhantomError
from imaging.volume import Volume

XRAY_FOV_MM = (360.0, CHEST_FOV_MM[1], CHEST_FOV_MM[2])  # (z, y, x): neck to upper abdomen
MU_WATER_PER_MM = 0.02  # about 60 keV effective energy
#: log-attenuation mapped to 1000 (a path through heart and spine stays below it)
FULL_SCALE_ATTENUATION = 6.0
DEPTH_STEP_MM = 4.0


def mask_width_mm(mask2d: np.ndarray, pixel_spacing: float) -> float:
    """Horizontal extent of a 2-D mask in mm: (last column - first column + 1) * spacing."""
    cols = np.flatnonzero(mask2d.any(axis=0))
    return float((cols[-1] - cols[0] + 1) * pixel_spacing) if cols.size else 0.0


def chest_xray(
    seed: int = 0,
    pixel_spacing: float = 1.0,
    nodules: list[NoduleSpec] | None = None,
    noise: float = 5.0,
    blur_mm: float = 0.7,
    heart_scale: float | None = None,
) -> Phantom:
    """A PA chest radiograph with known heart and thoracic widths.

    Args:
        seed: the patient (as in `chest_ct`) and the noise.
        pixel_spacing: square pixel size in mm (default 1.0: a 340 x 360 mm field in 340 x 360
            pixels).
        nodules: nodules to project (default none; see `chest_ct`).
        noise: standard deviation of additive Gaussian noise on the 0..1000 scale.
        blur_mm: detector blur (Gaussian sigma in mm).
        heart_scale: the heart's size factor (see `chest_ct`); ``None`` draws it from ``seed``.

    Returns:
        a `Phantom` with volume ``xr`` (shape ``(1, H, W)``), 2-D labels ``heart``, ``thorax``
        (lungs and the thoracic cavity between lung apex and base), ``lung_left``,
        ``lung_right`` and ``nodule_<n>``, each of shape ``(1, H, W)``; truth keys
        ``heart_width_mm``, ``thorax_width_mm``, ``ctr`` (their ratio), ``heart_scale``, ``pixel_spacing``,
        ``nodules`` (with ``center_voxel`` ``[0, row, column]`` in the image).
    """
    if not pixel_spacing > 0:
        raise PhantomError(f"pixel_spacing must be a positive number of mm, got {pixel_spacing}")
    build = build_chest(
        seed, spacing=(pixel_spacing, DEPTH_STEP_MM, pixel_spacing), nodules=nodules or [], noise_hu=0.0,
        fov_mm=XRAY_FOV_MM, table=False, heart_scale=heart_scale,
    )
    ct = build.phantom
    mu = np.clip(MU_WATER_PER_MM * (1.0 + build.hu_clean / 1000.0), 0.0, None)
    attenuation = mu.sum(axis=1) * DEPTH_STEP_MM  # (z, x) line integrals
    image = 1000.0 * attenuation[::-1] / FULL_SCALE_ATTENUATION  # superior row first
    image = gaussian_filter(image, blur_mm / pixel_spacing)
    rng = np.random.default_rng([seed, 4])
    image += rng.standard_normal(image.shape) * noise
    image = np.clip(image, 0.0, None)

    def project(mask: np.ndarray) -> np.ndarray:
        return mask.any(axis=1)[::-1][None]

    lungs = ct.labels["lungs"]
    lung_z = np.flatnonzero(lungs.any(axis=(1, 2)))
    cavity = build.cavity.copy()
    cavity[: lung_z[0]] = False
    cavity[lung_z[-1] + 1 :] = False
    labels = {
        "heart": project(ct.labels["heart"]),
        "thorax": project(lungs | cavity),
        "lung_left": project(ct.labels["lung_left"]),
        "lung_right": project(ct.labels["lung_right"]),
    }
    nodule_truth = []
    n_rows = image.shape[0]
    for nod in ct.truth["nodules"]:
        labels[nod["label"]] = project(ct.labels[nod["label"]])
        kz, _, kx = nod["center_voxel_float"]
        row = n_rows - 1 - kz
        nodule_truth.append({
            "label": nod["label"],
            "center_mm": nod["center_mm"],
            "center_voxel": [0, int(round(row)), int(round(kx))],
            "diameter_mm": nod["diameter_mm"],
            "side": nod["side"],
        })
    heart_w = mask_width_mm(labels["heart"][0], pixel_spacing)
    thorax_w = mask_width_mm(labels["thorax"][0], pixel_spacing)
    x0 = float(ct.volume.affine[0, 3])
    volume = Volume.from_array(
        image[None].astype(np.float32), spacing=(1.0, pixel_spacing, pixel_spacing), origin=(x0, 0.0, 0.0),
        modality="XR", name="chest_xray",
        metadata={"phantom": "chest_xray", "seed": seed, "view_position": "PA", "rows": "superior to inferior"},
    )
    truth = {
        "phantom": "chest_xray",
        "seed": seed,
        "pixel_spacing": [pixel_spacing, pixel_spacing],
        "shape": list(volume.shape),
        "view_position": "PA",
        "heart_width_mm": round(heart_w, 2),
        "thorax_width_mm": round(thorax_w, 2),
        "ctr": round(heart_w / thorax_w, 4),
        "heart_scale": ct.truth["heart_scale"],
        "nodules": nodule_truth,
    }
    return Phantom({"xr": volume}, labels, truth, "chest_xray")
