"""Small synthetic studies for the grounding-tool tests (fast to build, known geometry)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grounding.segmenters.base import Prompt
from grounding.tool import ToolContext
from imaging.volume import Volume


def world_grid(vol: Volume) -> np.ndarray:
    """LPS mm (x, y, z) of every voxel centre, shape (z, y, x, 3)."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    pts = np.column_stack([zz.ravel(), yy.ravel(), xx.ravel()])
    return vol.voxel_to_world(pts).reshape(*vol.shape, 3)


def small_chest(spacing=(2.5, 0.8, 0.8), shape=(41, 125, 151), nodule_x_mm=-30.0, nodule_radius_mm=6.0):
    """A CT-like chest: air, an elliptical body (40 HU), two lungs (-850 HU), one nodule (40 HU).

    The grid is centred on world (0, 0, 0). The nodule sits in the patient's right lung
    (negative x) by default. Returns ``(volume, nodule_mask, lungs_mask)``.
    """
    nz, ny, nx = shape
    origin = (-(nx - 1) / 2 * spacing[2], -(ny - 1) / 2 * spacing[1], -(nz - 1) / 2 * spacing[0])
    vol = Volume.from_array(np.full(shape, -1000.0, np.float32), spacing=spacing, origin=origin,
                            modality="CT", name="small_chest")
    w = world_grid(vol)
    x, y, z = w[..., 0], w[..., 1], w[..., 2]
    body = (x / 55.0) ** 2 + (y / 42.0) ** 2 <= 1
    lungs = (((np.abs(x) - 25.0) / 18.0) ** 2 + (y / 30.0) ** 2 + (z / 45.0) ** 2 <= 1) & body
    nodule = (x - nodule_x_mm) ** 2 + y**2 + z**2 <= nodule_radius_mm**2
    vol.data[body] = 40.0
    vol.data[lungs] = -850.0
    vol.data[nodule] = 40.0
    return vol, nodule, lungs


def small_xray(shape=(240, 300), spacing=(0.5, 0.5)):
    """A 2-D X-ray-like image (1, H, W) with a bright disc of radius 20 mm right of centre."""
    vol = Volume.from_array(np.full(shape, 100.0, np.float32), spacing=(1.0, *spacing), modality="XR",
                            name="small_xray")
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    disc = ((yy - 120) * spacing[0]) ** 2 + ((xx - 200) * spacing[1]) ** 2 <= 20.0**2
    vol.data[0][disc] = 900.0
    return vol, disc[None]


@dataclass
class RecordingSegmenter:
    """A deterministic stand-in backend: thresholds, limited to the prompt box; records its calls."""

    name: str = "recording"
    targets: tuple[str, ...] = ("lesion", "body")
    threshold: float = 0.0
    calls: list[tuple[tuple[int, ...], str | None, Prompt | None]] = field(default_factory=list)

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        self.calls.append((volume.shape, target, prompt))
        mask = volume.data > self.threshold
        if prompt is not None and prompt.box_zyx is not None:
            keep = np.zeros_like(mask)
            keep[prompt.box_zyx] = True
            mask &= keep
        return mask


def context_with(volume: Volume, **kwargs) -> ToolContext:
    return ToolContext(volumes={"0": volume}, **kwargs)
