"""Brain MR phantom: T1, T2 and FLAIR of one head with a white-matter lesion.

World frame: LPS mm, origin at the centre of the field of view. Layers from outside in: scalp
(fat-rich, bright on T1), skull (dark on every sequence), CSF, cortical grey matter, white
matter; lateral ventricles and deep grey nuclei inside; the interhemispheric fissure as a thin
CSF sheet. The lesion is a sphere in periventricular white matter.

Intensities are arbitrary units in 0..1000 with the usual contrasts: T1 WM > GM > CSF (lesion
hypointense); T2 CSF > lesion > GM > WM; FLAIR lesion brightest with CSF suppressed. Noise is
Rician (magnitude of complex Gaussian noise), plus a gentle smooth bias field.
"""

from __future__ import annotations

import numpy as np

from imaging.phantoms.phantom import Phantom, ball_truth, grid_truth, side_of, structures_truth
from imaging.phantoms.shapes import Ball, Cylinder, Ellipsoid, Grid, Implicit, place_ball

BRAIN_FOV_MM = (200.0, 230.0, 190.0)
SEQUENCES = ("t1", "t2", "flair")
#: tissue -> (T1, T2, FLAIR) intensity
CONTRAST: dict[str, tuple[float, float, float]] = {
    "air": (0.0, 0.0, 0.0),
    "scalp": (900.0, 600.0, 500.0),
    "skull": (60.0, 50.0, 50.0),
    "csf": (150.0, 950.0, 100.0),
    "gm": (550.0, 600.0, 560.0),
    "wm": (800.0, 380.0, 420.0),
    "lesion": (400.0, 850.0, 900.0),
}

HEAD = Ellipsoid((0.0, 0.0, 0.0), (74.0, 94.0, 88.0))
NECK = Cylinder((0.0, 15.0), (52.0, 55.0), z_range=(-100.0, -40.0))
SKULL_OUTER = Ellipsoid((0.0, 0.0, 2.0), (68.0, 88.0, 82.0))
SKULL_INNER = Ellipsoid((0.0, 0.0, 4.0), (62.0, 82.0, 76.0))
BRAIN = Ellipsoid((0.0, 0.0, 6.0), (59.0, 79.0, 72.0))
WHITE_MATTER = Ellipsoid((0.0, 0.0, 8.0), (54.0, 73.0, 64.0))
VENTRICLES = (Ellipsoid((-10.0, -2.0, 14.0), (6.5, 30.0, 11.0), angle_deg=-8.0),
              Ellipsoid((10.0, -2.0, 14.0), (6.5, 30.0, 11.0), angle_deg=8.0))
DEEP_GREY = (Ellipsoid((-14.0, 12.0, -2.0), (9.0, 14.0, 9.0)), Ellipsoid((14.0, 12.0, -2.0), (9.0, 14.0, 9.0)))
FISSURE_HALF_WIDTH_MM, FISSURE_BOTTOM_Z = 1.5, 22.0


def white_matter_shape() -> Implicit:
    """White matter with a folded (sinusoidally modulated) surface, outside ventricles and nuclei."""
    lo, hi = WHITE_MATTER.grown(4.0).bounds()

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        folds = 1.0 + 0.07 * np.sin(x / 6.0) * np.sin(y / 7.0) * np.sin(z / 6.5)
        inside = WHITE_MATTER.level(x, y, z) <= folds
        inside &= ~((np.abs(x) < FISSURE_HALF_WIDTH_MM + 3.0) & (z > FISSURE_BOTTOM_Z))
        for shape in (*VENTRICLES, *DEEP_GREY):
            inside &= ~shape.contains(x, y, z)
        return inside

    return Implicit(fn, lo, hi)


def brain_mr(
    seed: int = 0,
    spacing: tuple[float, float, float] = (3.0, 1.5, 1.5),
    lesion_diameter_mm: float = 12.0,
    noise: float = 15.0,
    fov_mm: tuple[float, float, float] = BRAIN_FOV_MM,
) -> Phantom:
    """A head MR with T1, T2 and FLAIR on one grid and a known white-matter lesion.

    Args:
        seed: fixes the lesion position and the noise.
        spacing: voxel size (z, y, x) mm; the anatomy is defined in mm.
        lesion_diameter_mm: diameter of the spherical lesion placed at a seeded random position
            in the white matter at least 3 mm from its edge, ventricles and deep grey matter;
            0 gives no lesion.
        noise: Rician noise level (standard deviation of each complex component), same units as
            the intensities (0..1000).
        fov_mm: field of view (z, y, x) mm centred on the world origin (default 200 x 230 x 190).

    Returns:
        a `Phantom` with volumes ``t1``, ``t2``, ``flair`` (modality ``MR``), labels ``head``,
        ``brain`` (parenchyma and ventricles), ``lesion``; truth keys ``lesion`` (``center_mm``,
        ``center_voxel``, ``diameter_mm``, ``volume_mm3``, ``volume_mm3_voxels``, ``side``,
        ``sequence_bright``: the sequences where it is hyperintense; ``None`` without a lesion),
        ``brain_volume_ml``, ``structures``.
    """
    grid = Grid.centred(fov_mm, spacing)
    tissue = np.zeros(grid.shape, dtype=np.uint8)
    names = list(CONTRAST)
    code = {name: np.uint8(i) for i, name in enumerate(names)}
    head = grid.mask(HEAD) | grid.mask(NECK)
    tissue[head] = code["scalp"]
    grid.paint(tissue, SKULL_OUTER, code["skull"])
    grid.paint(tissue, SKULL_INNER, code["csf"])
    brain = grid.mask(BRAIN)
    tissue[brain] = code["gm"]
    fissure = Implicit(lambda x, y, z: (np.abs(x) < FISSURE_HALF_WIDTH_MM) & (z > FISSURE_BOTTOM_Z), *BRAIN.bounds())
    grid.paint(tissue, fissure, code["csf"])
    wm_shape = white_matter_shape()
    grid.paint(tissue, wm_shape, code["wm"])
    for v in VENTRICLES:
        grid.paint(tissue, v, code["csf"])
    brain |= grid.mask(VENTRICLES[0]) | grid.mask(VENTRICLES[1])

    lesion_mask = np.zeros(grid.shape, dtype=bool)
    lesion_truth = None
    ball = None
    if lesion_diameter_mm > 0:
        center = place_ball(np.random.default_rng([seed, 1]), wm_shape, lesion_diameter_mm, 3.0)
        ball = Ball(center, float(lesion_diameter_mm))
        lesion_mask = grid.mask(ball)
        bright = [s for i, s in enumerate(SEQUENCES) if CONTRAST["lesion"][i] > CONTRAST["wm"][i]]
        lesion_truth = ball_truth("lesion", ball, lesion_mask, grid, side=side_of(center[0]), sequence_bright=bright)

    rng = np.random.default_rng([seed, 2])
    # a smooth multiplicative bias field (receive-coil inhomogeneity), within +-8 %
    bias = (1.0 + 0.08 * np.tanh(grid.x / 150.0)[None, None, :] + 0.05 * np.tanh(grid.z / 150.0)[:, None, None])
    edge = float(np.prod(grid.spacing) ** (1.0 / 3.0))
    volumes = {}
    for i, seq in enumerate(SEQUENCES):
        lut = np.array([CONTRAST[name][i] for name in names], dtype=np.float32)
        img = lut[tissue]
        if ball is not None:
            grid.paint_smooth(img, ball, CONTRAST["lesion"][i], edge)
        img *= bias.astype(np.float32)
        if noise > 0:
            real = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
            imag = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
            img = np.sqrt(real * real + imag * imag)
        vol = grid.to_volume(img, "MR", f"brain_{seq}")
        vol.metadata.update({"phantom": "brain_mr", "seed": seed, "sequence": seq.upper()})
        volumes[seq] = vol

    labels = {"head": head, "brain": brain, "lesion": lesion_mask}
    truth = {
        "phantom": "brain_mr",
        "seed": seed,
        **grid_truth(grid, fov_mm),
        "sequences": list(SEQUENCES),
        "lesion": lesion_truth,
        "brain_volume_ml": round(float(brain.sum()) * grid.voxel_volume_mm3 / 1000.0, 2),
        "structures": structures_truth(labels, grid),
    }
    return Phantom(volumes, labels, truth, "brain_mr")
