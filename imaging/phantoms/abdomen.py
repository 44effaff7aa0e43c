"""Abdomen CT phantom: liver with a hypodense lesion, spleen, kidneys, spine, bowel, table.

World frame as in `imaging.phantoms.chest`: LPS mm, origin at the centre of the field of view.
The liver is on the patient's right (negative x), the spleen on the left and posterior, the
kidneys posterior on both sides (the right one lower), the stomach left-anterior with an air cap
anteriorly (the patient is supine).

HU (non-contrast): liver 60, lesion 15, spleen 50, kidney 35, aorta/IVC 45/40, psoas 45,
visceral fat -90, bowel 30 with some gas, subcutaneous fat -100, muscle 40, spine as in the chest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from imaging.phantoms.phantom import Phantom, ball_truth, grid_truth, side_of, structures_truth
from imaging.phantoms.shapes import Ball, Capsule, Cylinder, Ellipsoid, Grid, Implicit, PhantomError, place_ball
from imaging.phantoms.torso import HU_AIR, HU_FAT, HU_MUSCLE, HU_TABLE, Spine, add_noise, table_shape

ABDOMEN_FOV_MM = (200.0, 360.0, 360.0)

HU_LIVER, HU_LESION, HU_SPLEEN, HU_KIDNEY = 60.0, 15.0, 50.0, 35.0
HU_VISCERAL_FAT, HU_BOWEL, HU_BLOOD, HU_IVC, HU_PSOAS = -90.0, 30.0, 45.0, 40.0, 45.0

BODY = Cylinder((0.0, -10.0), (165.0, 120.0), exponent=2.3)
MUSCLE = Cylinder((0.0, -10.0), (145.0, 100.0), exponent=2.3)
PERITONEUM = Cylinder((0.0, -10.0), (135.0, 90.0), exponent=2.3)
SPINE = Spine(body_y=50.0)
TABLE_TOP_Y = 114.0  # 4 mm below the body's posterior surface (y = 110)
LIVER_ELLIPSOID = Ellipsoid((-50.0, 0.0, 30.0), (95.0, 85.0, 90.0), angle_deg=-10.0)
SPLEEN = Ellipsoid((88.0, 45.0, 40.0), (30.0, 50.0, 55.0), angle_deg=35.0)
KIDNEYS = {"right": Ellipsoid((-72.0, 58.0, -35.0), (26.0, 28.0, 55.0), angle_deg=-25.0),
           "left": Ellipsoid((72.0, 58.0, -20.0), (26.0, 28.0, 55.0), angle_deg=25.0)}
STOMACH = Ellipsoid((55.0, -35.0, 55.0), (45.0, 35.0, 40.0))
STOMACH_AIR_Y = -52.0  # gas collects anteriorly, in front of this plane
AORTA = Cylinder((14.0, 25.0), (12.0, 12.0))
IVC = Cylinder((-24.0, 28.0), (13.0, 11.0))
PSOAS = (Cylinder((-38.0, 60.0), (15.0, 18.0), z_range=(-np.inf, 20.0)),
         Cylinder((38.0, 60.0), (15.0, 18.0), z_range=(-np.inf, 20.0)))
BOWEL_LOOPS = 14
#: ranges of the seeded organ size factors (`OrganScales`); 1 is the reference organ (spleen
#: 272 mL at the default spacing). The liver keeps its reference size unless one is given: its
#: shape decides where the seeded liver lesion goes, and lesions of the existing seeds stay put.
ORGAN_SCALE_RANGE: dict[str, tuple[float, float]] = {"spleen": (0.85, 1.25), "kidneys": (0.9, 1.1)}


@dataclass(frozen=True)
class OrganScales:
    """Size factors of the abdominal organs: each organ's semi-axes are the reference's times the
    factor. The liver and kidneys grow about their centres; the spleen hangs from the left
    diaphragm, so it grows downwards (its top stays where it is)."""

    liver: float = 1.0
    spleen: float = 1.0
    kidneys: float = 1.0

    @classmethod
    def from_seed(cls, seed: int) -> "OrganScales":
        """Factors of patient ``seed``, uniform in `ORGAN_SCALE_RANGE` (3 decimals); the liver's is 1."""
        rng = np.random.default_rng([seed, 5])
        return cls(**{k: round(float(rng.uniform(*r)), 3) for k, r in ORGAN_SCALE_RANGE.items()})

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.5 <= value <= 1.5:
                raise PhantomError(f"organ scale {name} must be between 0.5 and 1.5 (1 = reference), got {value}")


def _scaled(ell: Ellipsoid, factor: float, top_fixed: bool = False) -> Ellipsoid:
    """``ell`` with its semi-axes times ``factor``; ``top_fixed`` keeps its superior end in place."""
    cx, cy, cz = ell.center
    rz = ell.radii[2]
    center = (cx, cy, cz + rz - rz * factor) if top_fixed else ell.center
    return Ellipsoid(center, tuple(r * factor for r in ell.radii), ell.angle_deg)  # type: ignore[arg-type]


def kidney_shapes(scales: OrganScales = OrganScales()) -> dict[str, Ellipsoid]:
    return {side: _scaled(k, scales.kidneys) for side, k in KIDNEYS.items()}


def liver_shape(scales: OrganScales = OrganScales()) -> Implicit:
    """The liver: an ellipsoid confined to the peritoneal cavity, off the midline-left, clear of
    the right kidney, the IVC and the spine."""
    liver = _scaled(LIVER_ELLIPSOID, scales.liver)
    kidney, spine, ivc = kidney_shapes(scales)["right"].grown(3.0), SPINE.outline, IVC.grown(2.0)

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inside = liver.contains(x, y, z) & PERITONEUM.contains(x, y, z) & (x < 35.0 - 0.3 * y)
        return inside & ~kidney.contains(x, y, z) & ~spine.contains(x, y, z) & ~ivc.contains(x, y, z)

    lo, hi = liver.bounds()
    return Implicit(fn, lo, hi)


def spleen_shape(scales: OrganScales = OrganScales()) -> Implicit:
    spleen = _scaled(SPLEEN, scales.spleen, top_fixed=True)
    # fat planes separate it from the left kidney and (retroperitoneal fat, wider) the left psoas
    kidney, psoas = kidney_shapes(scales)["left"].grown(3.0), PSOAS[1].grown(8.0)

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inside = spleen.contains(x, y, z) & MUSCLE.contains(x, y, z)
        return inside & ~kidney.contains(x, y, z) & ~psoas.contains(x, y, z)

    lo, hi = spleen.bounds()
    return Implicit(fn, lo, hi)


def abdomen_ct(
    seed: int = 0,
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    lesion_diameter_mm: float = 20.0,
    lesion_hu: float = HU_LESION,
    noise_hu: float = 15.0,
    fov_mm: tuple[float, float, float] = ABDOMEN_FOV_MM,
    table: bool = True,
    organ_scales: OrganScales | None = None,
) -> Phantom:
    """A non-contrast abdomen CT with a known liver lesion.

    Args:
        seed: fixes the bowel loops, the lesion position and the noise.
        spacing: voxel size (z, y, x) mm; the anatomy is defined in mm.
        lesion_diameter_mm: diameter of the spherical liver lesion, placed at a seeded random
            position at least 8 mm inside the liver; 0 gives no lesion.
        lesion_hu: lesion attenuation (default 15 HU: hypodense against the 60 HU liver).
        noise_hu: standard deviation of the Gaussian noise in HU.
        fov_mm: field of view (z, y, x) mm centred on the world origin (default 200 x 360 x 360).
        table: add the CT table.
        organ_scales: sizes of liver, spleen and kidneys (`OrganScales`); ``None`` draws them from
            ``seed`` in `ORGAN_SCALE_RANGE`, so patients differ.

    Returns:
        a `Phantom` with volume ``ct`` and labels ``body``, ``liver`` (lesion included),
        ``liver_lesion``, ``spleen``, ``kidney_left``, ``kidney_right``, ``spine`` (bone); truth
        keys ``liver_lesion`` (as a chest nodule: ``center_mm``, ``center_voxel``,
        ``diameter_mm``, ``volume_mm3``, ``volume_mm3_voxels``, ``side``; ``None`` without a
        lesion), ``liver_volume_ml``, ``spleen_volume_ml``, ``organ_scales``, ``structures``.
    """
    scales = OrganScales.from_seed(seed) if organ_scales is None else organ_scales
    grid = Grid.centred(fov_mm, spacing)
    rng = np.random.default_rng([seed, 0])
    hu = np.full(grid.shape, HU_AIR, dtype=np.float32)
    if table:
        grid.paint(hu, table_shape(TABLE_TOP_Y), HU_TABLE)
    body = grid.mask(BODY)
    hu[body] = HU_FAT
    grid.paint(hu, MUSCLE, HU_MUSCLE)
    grid.paint(hu, PERITONEUM, HU_VISCERAL_FAT)
    _paint_bowel(grid, hu, rng)
    for psoas in PSOAS:
        grid.paint(hu, psoas, HU_PSOAS)
    grid.paint(hu, STOMACH, HU_BOWEL)
    stomach_air = Implicit(lambda x, y, z: STOMACH.contains(x, y, z) & (y < STOMACH_AIR_Y), *STOMACH.bounds())
    grid.paint(hu, stomach_air, HU_AIR)
    spine = SPINE.paint(grid, hu)
    grid.paint(hu, AORTA, HU_BLOOD)
    grid.paint(hu, IVC, HU_IVC)
    liver_region = liver_shape(scales)
    liver = grid.mask(liver_region)
    hu[liver] = HU_LIVER
    spleen = grid.mask(spleen_shape(scales))
    hu[spleen] = HU_SPLEEN
    kidneys = {side: grid.mask(k) for side, k in kidney_shapes(scales).items()}
    for mask in kidneys.values():
        hu[mask] = HU_KIDNEY

    lesion_mask = np.zeros(grid.shape, dtype=bool)
    lesion_truth = None
    if lesion_diameter_mm > 0:
        center = place_ball(np.random.default_rng([seed, 1]), liver_region, lesion_diameter_mm, 8.0)
        ball = Ball(center, float(lesion_diameter_mm))
        grid.paint_smooth(hu, ball, lesion_hu, float(np.prod(grid.spacing) ** (1.0 / 3.0)))
        lesion_mask = grid.mask(ball)
        lesion_truth = ball_truth("liver_lesion", ball, lesion_mask, grid, side=side_of(center[0]), hu=lesion_hu)

    add_noise(hu, noise_hu, np.random.default_rng([seed, 2]))
    np.rint(hu, out=hu)  # scanners store whole HU
    np.clip(hu, -1024.0, 3071.0, out=hu)
    labels = {
        "body": body,
        "liver": liver,
        "liver_lesion": lesion_mask,
        "spleen": spleen,
        "kidney_left": kidneys["left"],
        "kidney_right": kidneys["right"],
        "spine": spine,
    }
    vox_ml = grid.voxel_volume_mm3 / 1000.0
    truth = {
        "phantom": "abdomen_ct",
        "seed": seed,
        **grid_truth(grid, fov_mm),
        "noise_hu": noise_hu,
        "liver_lesion": lesion_truth,
        "liver_volume_ml": round(float(liver.sum()) * vox_ml, 2),
        "spleen_volume_ml": round(float(spleen.sum()) * vox_ml, 2),
        "organ_scales": asdict(scales),
        "structures": structures_truth(labels, grid),
    }
    volume = grid.to_volume(hu, "CT", "abdomen_ct")
    volume.metadata.update({"phantom": "abdomen_ct", "seed": seed})
    return Phantom({"ct": volume}, labels, truth, "abdomen_ct")


def _paint_bowel(grid: Grid, hu: np.ndarray, rng: np.random.Generator) -> None:
    """Seeded bowel loops (30 HU tubes) in the anterior abdomen, a few holding gas."""
    for n in range(BOWEL_LOOPS):
        start = (rng.uniform(-90, 90), rng.uniform(-80, -10), rng.uniform(-95, 40))
        end = tuple(s + d for s, d in zip(start, rng.normal(0.0, 25.0, 3)))
        radius = float(rng.uniform(8.0, 13.0))
        loop = Capsule(start, end, radius)  # type: ignore[arg-type]
        grid.paint(hu, loop, HU_BOWEL)
        if n % 4 == 0:
            grid.paint(hu, Capsule(loop.start, loop.end, radius * 0.5), HU_AIR)
