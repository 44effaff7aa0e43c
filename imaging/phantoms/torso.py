"""Parts shared by the chest and abdomen CT phantoms: spine, CT table, noise.

HU values follow typical non-contrast CT: air -1000, fat -100, muscle 40, trabecular bone 300,
cortical/posterior-element bone 700, intervertebral disc 90, spinal canal (CSF/cord) 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.phantoms.shapes import Cylinder, Grid, Implicit

HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 40.0
HU_TABLE = 300.0
HU_VERTEBRA = 300.0
HU_POSTERIOR_ELEMENTS = 700.0
HU_DISC = 90.0
HU_CANAL = 20.0
#: craniocaudal period and height (mm) of the intervertebral discs
DISC_PERIOD_MM, DISC_HEIGHT_MM = 28.0, 6.0


@dataclass(frozen=True)
class Spine:
    """A vertebral column along z in the midline; ``body_y`` is the vertebral body centre (mm)."""

    body_y: float

    @property
    def body(self) -> Cylinder:
        return Cylinder((0.0, self.body_y), (17.0, 15.0))

    @property
    def canal(self) -> Cylinder:
        return Cylinder((0.0, self.body_y + 27.0), (8.0, 8.0))

    @property
    def arch(self) -> Cylinder:
        return Cylinder((0.0, self.body_y + 27.0), (13.0, 13.0))

    @property
    def spinous(self) -> Cylinder:
        return Cylinder((0.0, self.body_y + 47.0), (4.0, 9.0))

    @property
    def outline(self) -> Implicit:
        """Everything the spine occupies (for keeping other organs out)."""
        body, arch, spinous = self.body, self.arch, self.spinous

        def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
            return body.contains(x, y, z) | arch.contains(x, y, z) | spinous.contains(x, y, z)

        return Implicit(fn, (-17.0, self.body_y - 15.0, -np.inf), (17.0, self.body_y + 56.0, np.inf))

    def paint(self, grid: Grid, hu: np.ndarray) -> np.ndarray:
        """Paint the spine into ``hu``; return its bone mask (discs and canal excluded)."""
        body = grid.mask(self.body)
        disc_levels = (np.mod(grid.z, DISC_PERIOD_MM) < DISC_HEIGHT_MM)[:, None, None]
        disc = body & disc_levels
        posterior = grid.mask(self.arch) | grid.mask(self.spinous)
        canal = grid.mask(self.canal)
        posterior &= ~canal
        hu[body] = HU_VERTEBRA
        hu[disc] = HU_DISC
        hu[posterior] = HU_POSTERIOR_ELEMENTS
        hu[canal] = HU_CANAL
        return (body & ~disc) | posterior


def table_shape(top_y: float, half_width: float = 200.0, thickness: float = 8.0) -> Implicit:
    """The CT table: a dense slab ``thickness`` mm thick whose top surface is at ``top_y`` mm."""

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (y >= top_y) & (y <= top_y + thickness) & (np.abs(x) <= half_width)

    return Implicit(fn, (-half_width, top_y, -np.inf), (half_width, top_y + thickness, np.inf))


def add_noise(data: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` in place."""
    if sigma > 0:
        data += rng.standard_normal(data.shape, dtype=np.float32) * np.float32(sigma)
