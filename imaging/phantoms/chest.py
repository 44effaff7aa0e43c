"""Chest CT phantom: lungs with airways, vessels and nodules, heart, aorta, spine, ribs, table.

World frame: LPS millimetres with the origin at the centre of the field of view (x -> patient
Left, y -> Posterior, z -> Superior). The patient's right lung is at negative x (low x index,
the image left on an axial view), the heart sits anterior (negative y) and slightly to the
patient's left, the spine posterior. The table is a dense slab just posterior to the body.

HU: air -1000, lung -860..-800 (denser posteriorly, as in a supine patient), fat -100,
mediastinal fat/soft-tissue mix -40, muscle 40, heart and aorta 45, liver dome 60,
ribs/sternum/clavicles 700, solid nodules 30 with a partial-volume edge one voxel wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from imaging.phantoms.phantom import Phantom, ball_truth, grid_truth, side_of, structures_truth
from imaging.phantoms.shapes import (
    XYZ,
    Ball,
    Capsule,
    Cylinder,
    Ellipsoid,
    Grid,
    Implicit,
    PhantomError,
    place_ball,
)
from imaging.phantoms.torso import HU_AIR, HU_FAT, HU_MUSCLE, HU_TABLE, Spine, add_noise, table_shape

#: default field of view (z, y, x) mm
CHEST_FOV_MM = (240.0, 340.0, 340.0)
SIDES = ("right", "left")

HU_LUNG_ANTERIOR, HU_LUNG_POSTERIOR = -860.0, -800.0
HU_MEDIASTINUM = -40.0
HU_BLOOD = 45.0
HU_LIVER = 60.0
HU_UPPER_ABDOMEN = 35.0
HU_BONE = 700.0
HU_NODULE = 30.0
HU_VESSEL = 40.0

BODY = Cylinder((0.0, -5.0), (150.0, 110.0), exponent=2.4)
MUSCLE = Cylinder((0.0, -5.0), (138.0, 98.0), exponent=2.4)
CAVITY = Cylinder((0.0, -8.0), (120.0, 82.0))
RIBS_OUTER = CAVITY.grown(8.0)
RIB_PERIOD_MM, RIB_HEIGHT_MM, RIB_SLOPE = 26.0, 10.0, 0.3
STERNUM = Cylinder((0.0, -95.0), (14.0, 5.0), z_range=(-70.0, 130.0))
CLAVICLES = (Capsule((-18.0, -92.0, 100.0), (-120.0, -55.0, 112.0), 7.0),
             Capsule((18.0, -92.0, 100.0), (120.0, -55.0, 112.0), 7.0))
SPINE = Spine(body_y=40.0)
TABLE_TOP_Y = 109.0  # 4 mm below the body's posterior surface (y = 105)

HEART = Ellipsoid((18.0, -38.0, -35.0), (60.0, 50.0, 48.0), angle_deg=-30.0)
#: range of the seeded heart size factor: the heart's left-right size is `HEART`'s times the
#: factor, so the cardiothoracic ratio (0.483 at 1) spans about 0.42-0.57
HEART_SCALE_RANGE = (0.88, 1.18)
AORTA = (
    Cylinder((20.0, 22.0), (12.0, 12.0), z_range=(-math.inf, 60.0)),  # descending
    Cylinder((8.0, -40.0), (14.0, 14.0), z_range=(-10.0, 60.0)),  # ascending
    Capsule((8.0, -40.0, 60.0), (20.0, 22.0, 60.0), 13.0),  # arch
)
CARINA = (0.0, -10.0, 40.0)
TRACHEA_WALL = Cylinder((0.0, -10.0), (11.0, 11.0), z_range=(CARINA[2], math.inf))
TRACHEA_LUMEN = Cylinder((0.0, -10.0), (8.5, 8.5), z_range=(CARINA[2], math.inf))
BRONCHI_WALL = {"right": Capsule(CARINA, (-45.0, 0.0, 5.0), 7.0), "left": Capsule(CARINA, (45.0, 2.0, 0.0), 6.5)}
BRONCHI_LUMEN = {s: Capsule(c.start, c.end, c.radius - 2.0) for s, c in BRONCHI_WALL.items()}
LUNG_ELLIPSOID = {"right": Ellipsoid((-66.0, 4.0, -2.0), (64.0, 88.0, 118.0)),
                  "left": Ellipsoid((66.0, 4.0, -6.0), (62.0, 88.0, 114.0))}
#: diaphragm domes: (apex x, apex z) mm; the right dome rides higher over the liver
DOME = {"right": (-60.0, -50.0), "left": (60.0, -60.0)}
HILUM = {"right": (-24.0, 6.0, 8.0), "left": (24.0, 8.0, 4.0)}
VESSELS_PER_LUNG = 6


def dome_z(side: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (mm) of the diaphragm under the ``side`` lung at (x, y)."""
    ax, az = DOME[side]
    return az - 55.0 * (((x - ax) / 65.0) ** 2 + (y / 90.0) ** 2)


def mediastinal_half_gap(y: np.ndarray) -> np.ndarray:
    """Half the distance (mm) between the lungs: 2 mm at the anterior junction, 20 mm behind."""
    return 2.0 + 18.0 * np.clip((y + 55.0) / 30.0, 0.0, 1.0)


def seeded_heart_scale(seed: int) -> float:
    """The heart size factor of patient ``seed``, uniform in `HEART_SCALE_RANGE` (3 decimals)."""
    return round(float(np.random.default_rng([seed, 5]).uniform(*HEART_SCALE_RANGE)), 3)


def heart_shape(scale: float = 1.0, margin_mm: float = 0.0) -> Ellipsoid | Implicit:
    """The heart grown by ``margin_mm``, its left-right size times ``scale`` about its centre (an
    enlarged heart widens the cardiac silhouette; it stays on the diaphragm and behind the sternum)."""
    base = HEART.grown(margin_mm) if margin_mm else HEART
    if scale == 1.0:
        return base
    cx = HEART.center[0]

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return base.contains(cx + (x - cx) / scale, y, z)

    (x0, y0, z0), (x1, y1, z1) = base.bounds()
    return Implicit(fn, (cx + (x0 - cx) * scale, y0, z0), (cx + (x1 - cx) * scale, y1, z1))


def lung_shape(side: str, heart_scale: float = 1.0) -> Implicit:
    """The ``side`` lung (pleural space, vessels included, airways excluded) beside a heart of
    size factor ``heart_scale``."""
    ell = LUNG_ELLIPSOID[side]
    sign = -1.0 if side == "right" else 1.0
    heart, spine = heart_shape(heart_scale, 4.0), SPINE.outline
    aorta = [a.grown(3.0) for a in AORTA]
    trachea = TRACHEA_WALL.grown(2.0)

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inside = ell.contains(x, y, z) & CAVITY.contains(x, y, z)
        inside &= sign * x > mediastinal_half_gap(y)
        inside &= z > dome_z(side, x, y)
        for shape in (heart, spine, trachea, *aorta, *BRONCHI_WALL.values()):
            inside &= ~shape.contains(x, y, z)
        return inside

    lo, hi = ell.bounds()
    return Implicit(fn, lo, hi)


@dataclass
class NoduleSpec:
    """One lung nodule.

    Attributes:
        center_mm: LPS position (x, y, z) in mm in the phantom's world frame, whose origin is the
            centre of the field of view (so negative x is the patient's right). ``None`` places
            the nodule at a seeded random position inside the ``side`` lung, at least 4 mm from
            the pleura and clear of vessels and airways.
        diameter_mm: sphere diameter in mm.
        side: ``right`` or ``left``; inferred from ``center_mm`` when that is given, ``right``
            when neither is given.
        hu: attenuation in HU (30: solid; about -600: ground glass).
    """

    center_mm: XYZ | None = None
    diameter_mm: float = 10.0
    side: str | None = None
    hu: float = HU_NODULE


@dataclass(frozen=True)
class ChestBuild:
    """A chest CT phantom plus the noise-free HU and internal masks the X-ray projector needs."""

    phantom: Phantom
    hu_clean: np.ndarray
    cavity: np.ndarray


def random_nodules(seed: int, count: int = 1) -> list[NoduleSpec]:
    """Seeded defaults: ``count`` nodules, side and diameter (6-16 mm) drawn from ``seed``."""
    rng = np.random.default_rng([seed, 3])
    return [
        NoduleSpec(diameter_mm=float(np.round(rng.uniform(6.0, 16.0) * 2) / 2), side=str(rng.choice(SIDES)))
        for _ in range(count)
    ]


def vessel_tree(seed: int, heart_scale: float = 1.0) -> list[Capsule]:
    """Seeded pulmonary vessels: from each hilum a thick trunk then a thin branch into the lung."""
    rng = np.random.default_rng([seed, 0])
    vessels: list[Capsule] = []
    for side in SIDES:
        lung = lung_shape(side, heart_scale)
        hilum = np.asarray(HILUM[side])
        for _ in range(VESSELS_PER_LUNG):
            end = np.asarray(place_ball(rng, lung, 0.0, 10.0))
            mid = hilum + 0.5 * (end - hilum) + rng.normal(0.0, 5.0, 3)
            vessels.append(Capsule(tuple(hilum), tuple(mid), 3.0))
            vessels.append(Capsule(tuple(mid), tuple(end), 1.8))
    return vessels


def resolve_nodules(seed: int, specs: list[NoduleSpec], vessels: list[Capsule],
                    heart_scale: float = 1.0) -> list[tuple[Ball, str, float]]:
    """Turn specs into balls (anatomy frame): validate given centres, place the others (in lungs
    beside a heart of size factor ``heart_scale``)."""
    rng = np.random.default_rng([seed, 1])
    placed: list[tuple[Ball, str, float]] = []
    for n, spec in enumerate(specs, start=1):
        if spec.diameter_mm <= 0:
            raise PhantomError(f"nodule {n}: diameter_mm must be positive, got {spec.diameter_mm}")
        if spec.side is not None and spec.side not in SIDES:
            raise PhantomError(f"nodule {n}: side must be 'right' or 'left', got {spec.side!r}")
        if spec.center_mm is not None:
            center = tuple(float(v) for v in spec.center_mm)
            side = side_of(center[0])
            if spec.side is not None and spec.side != side:
                raise PhantomError(
                    f"nodule {n}: center_mm x={center[0]:g} mm is in the patient's {side} half but side="
                    f"'{spec.side}'; negative x is the patient's right"
                )
            if not lung_shape(side, heart_scale).contains(*(np.array([v]) for v in center))[0]:
                raise PhantomError(
                    f"nodule {n}: center_mm {list(center)} is not inside the {side} lung; omit center_mm "
                    "to place it automatically"
                )
        else:
            side = spec.side or "right"
            r = spec.diameter_mm / 2.0
            keep_out = [v.grown(r + 3.0) for v in vessels] + [b.grown(r + 3.0) for b in BRONCHI_WALL.values()]
            keep_out += [b.grown(r + 5.0) for b, _, _ in placed]
            center = place_ball(rng, lung_shape(side, heart_scale), spec.diameter_mm, 4.0, keep_out)
        placed.append((Ball(center, float(spec.diameter_mm)), side, float(spec.hu)))  # type: ignore[arg-type]
    return placed


def build_chest(
    seed: int = 0,
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    nodules: list[NoduleSpec] | None = None,
    noise_hu: float = 15.0,
    fov_mm: tuple[float, float, float] = CHEST_FOV_MM,
    vessels: bool = True,
    table: bool = True,
    patient_shift_mm: XYZ = (0.0, 0.0, 0.0),
    noise_seed: int | None = None,
    heart_scale: float | None = None,
) -> ChestBuild:
    """`chest_ct` plus its noise-free HU and thoracic-cavity mask (see `chest_ct`)."""
    heart_scale = seeded_heart_scale(seed) if heart_scale is None else float(heart_scale)
    if not 0.5 <= heart_scale <= 1.5:
        raise PhantomError(f"heart_scale must be between 0.5 and 1.5 (1 = the reference heart), got {heart_scale}")
    grid = Grid.centred(fov_mm, spacing)
    shift = tuple(float(v) for v in patient_shift_mm)
    if shift[1] > TABLE_TOP_Y - 105.0:
        raise PhantomError(f"patient_shift_mm y={shift[1]:g} would push the patient into the table; use y <= 3")
    # anatomy is evaluated on a grid moved against the shift, so the patient appears moved by it
    ag = replace(grid, origin=tuple(o - s for o, s in zip(grid.origin, shift)))
    specs = random_nodules(seed) if nodules is None else list(nodules)
    tree = vessel_tree(seed, heart_scale) if vessels else []
    balls = resolve_nodules(seed, specs, tree, heart_scale)

    hu = np.full(grid.shape, HU_AIR, dtype=np.float32)
    if table:
        grid.paint(hu, table_shape(TABLE_TOP_Y), HU_TABLE)  # the table stays where it is
    body = ag.mask(BODY)
    hu[body] = HU_FAT
    ag.paint(hu, MUSCLE, HU_MUSCLE)
    # ribs run downwards from the spine towards the sides, as they do on a frontal radiograph
    rib_phase = ag.z[:, None, None] + RIB_SLOPE * np.abs(ag.x)[None, None, :]
    rib_levels = np.mod(rib_phase, RIB_PERIOD_MM) < RIB_HEIGHT_MM
    cavity = ag.mask(CAVITY)
    ribs = ag.mask(RIBS_OUTER) & ~cavity & rib_levels
    hu[ribs] = HU_BONE
    for bone in (STERNUM, *CLAVICLES):
        ag.paint(hu, bone, HU_BONE)
    hu[cavity] = HU_MEDIASTINUM
    _paint_upper_abdomen(ag, hu, cavity)
    spine = SPINE.paint(ag, hu)
    ag.paint(hu, heart_shape(heart_scale, 3.0), HU_FAT)  # pericardial fat outlines the heart
    heart = ag.mask(heart_shape(heart_scale))
    hu[heart] = HU_BLOOD
    for part in AORTA:
        ag.paint(hu, part, HU_BLOOD)
    ag.paint(hu, TRACHEA_WALL, HU_MUSCLE)

    lungs = {side: ag.mask(lung_shape(side, heart_scale)) for side in SIDES}
    gradient = np.clip((ag.y + 90.0) / 165.0, 0.0, 1.0)[None, :, None]
    lung_hu = np.broadcast_to(HU_LUNG_ANTERIOR + (HU_LUNG_POSTERIOR - HU_LUNG_ANTERIOR) * gradient, hu.shape)
    for mask in lungs.values():
        hu[mask] = lung_hu[mask]
    edge = float(np.prod(grid.spacing) ** (1.0 / 3.0))
    for vessel in tree:
        ag.paint_smooth(hu, vessel, HU_VESSEL, edge)
    for wall in BRONCHI_WALL.values():
        ag.paint(hu, wall, HU_MUSCLE)
    airway = ag.mask(TRACHEA_LUMEN)
    for lumen in BRONCHI_LUMEN.values():
        airway |= ag.mask(lumen)
    hu[airway] = HU_AIR

    labels: dict[str, np.ndarray] = {
        "body": body,
        "lung_left": lungs["left"],
        "lung_right": lungs["right"],
        "lungs": lungs["left"] | lungs["right"],
        "trachea": airway,
        "heart": heart,
        "spine": spine,
    }
    nodule_truth = []
    for n, (ball, side, nod_hu) in enumerate(balls, start=1):
        ag.paint_smooth(hu, ball, nod_hu, edge)
        label = f"nodule_{n}"
        labels[label] = ag.mask(ball)
        world = Ball(tuple(c + s for c, s in zip(ball.center, shift)), ball.diameter)  # type: ignore[arg-type]
        nodule_truth.append(ball_truth(label, world, labels[label], grid, side=side, hu=nod_hu))

    clean = hu.copy() if noise_hu > 0 else hu
    add_noise(hu, noise_hu, np.random.default_rng([seed if noise_seed is None else noise_seed, 2]))
    np.rint(hu, out=hu)  # scanners store whole HU
    np.clip(hu, -1024.0, 3071.0, out=hu)

    vox_ml = grid.voxel_volume_mm3 / 1000.0
    truth = {
        "phantom": "chest_ct",
        "seed": seed,
        **grid_truth(grid, fov_mm),
        "patient_shift_mm": list(shift),
        "noise_hu": noise_hu,
        "heart_scale": heart_scale,
        "nodules": nodule_truth,
        "lung_volume_ml": round(float(labels["lungs"].sum()) * vox_ml, 2),
        "lung_left_volume_ml": round(float(lungs["left"].sum()) * vox_ml, 2),
        "lung_right_volume_ml": round(float(lungs["right"].sum()) * vox_ml, 2),
        "structures": structures_truth({k: v for k, v in labels.items() if not k.startswith("nodule_")}, grid),
    }
    volume = grid.to_volume(hu, "CT", "chest_ct")
    volume.metadata.update({"phantom": "chest_ct", "seed": seed})
    return ChestBuild(Phantom({"ct": volume}, labels, truth, "chest_ct"), clean, cavity)


def _paint_upper_abdomen(grid: Grid, hu: np.ndarray, cavity: np.ndarray) -> None:
    """Below the diaphragm: liver dome under the right lung, soft tissue under the left."""
    x, y = grid.x[None, None, :], grid.y[None, :, None]
    z = grid.z[:, None, None]
    right = x < 0
    below = np.where(right, z < dome_z("right", x, y), z < dome_z("left", x, y)) & cavity
    hu[below & right] = HU_LIVER
    hu[below & ~right] = HU_UPPER_ABDOMEN


def chest_ct(
    seed: int = 0,
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    nodules: list[NoduleSpec] | None = None,
    noise_hu: float = 15.0,
    fov_mm: tuple[float, float, float] = CHEST_FOV_MM,
    vessels: bool = True,
    table: bool = True,
    patient_shift_mm: XYZ = (0.0, 0.0, 0.0),
    noise_seed: int | None = None,
    heart_scale: float | None = None,
) -> Phantom:
    """A non-contrast chest CT with known lungs, airways, heart, spine and nodules.

    Args:
        seed: fixes the anatomy (vessels, random nodule placement) and, unless ``noise_seed`` is
            given, the noise.
        spacing: voxel size (z, y, x) mm. The anatomy is defined in mm, so any spacing depicts
            the same patient.
        nodules: the nodules to add; ``None`` draws one (side and 6-16 mm diameter from ``seed``);
            ``[]`` gives a nodule-free scan.
        noise_hu: standard deviation of the Gaussian noise in HU.
        fov_mm: field of view (z, y, x) mm, centred on the world origin (default 240 x 340 x 340).
        vessels: add pulmonary vessels (tubes of 40 HU branching from each hilum).
        table: add the CT table (300 HU slab 4 mm posterior to the body, outside it).
        patient_shift_mm: moves the patient (not the table) by (x, y, z) mm, e.g. for a follow-up
            scan positioned slightly differently; truth positions include the shift.
        noise_seed: seed of the noise only (default ``seed``).
        heart_scale: the heart's left-right size (the cardiac diameter) relative to the reference heart
            (0.5-1.5); ``None`` draws it from ``seed`` in `HEART_SCALE_RANGE`, so patients differ.

    Returns:
        a `Phantom` with volume ``ct`` (HU), labels ``body``, ``lung_left``, ``lung_right``,
        ``lungs``, ``trachea`` (airway lumen), ``heart``, ``spine`` (bone), ``nodule_<n>``, and
        truth keys ``nodules`` (``label``, ``center_mm`` LPS x, y, z, ``center_voxel`` z, y, x,
        ``diameter_mm``, ``volume_mm3`` analytic, ``volume_mm3_voxels``, ``side``, ``hu``),
        ``spacing``, ``shape``, ``heart_scale``, ``lung_volume_ml`` (voxel count based), ``structures``
        (per label voxels, volume_ml, centroid_mm).
    """
    return build_chest(seed, spacing, nodules, noise_hu, fov_mm, vessels, table, patient_shift_mm, noise_seed,
                       heart_scale).phantom
