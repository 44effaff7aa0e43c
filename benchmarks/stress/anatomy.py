"""Random adult chest and upper-abdomen anatomy for the stress benchmark.

`draw_anatomy` draws one patient from realistic adult ranges and returns it as an ordered list of
paint layers (`Layer`: a label, a shape and the labels it may paint over) plus the truth label sets
and the nodules with their known centres and diameters. World coordinates are LPS mm (x towards
the patient's left, y posterior, z superior) with z = 0 at the top of the right diaphragm dome.

Ranges (adult; sources: standard anatomy and CT texts; values drawn uniformly unless stated):

* torso: superellipse section, half-width 135-185 mm, half-depth 90-130 mm, exponent 2-3,
  abdomen up to 15 % wider / 25 % deeper; subcutaneous fat 3-40 mm; the lateral chest wall
  (skin to pleura) 3-6 mm in a quarter of patients, else 6-22 mm, anterior 10-35 mm, posterior
  30-60 mm; arms up (out of the field) or down beside the chest (half of them touching it, the
  others 0-25 mm away); a table under the body (80 %).
* lungs: filling the thoracic cavity from the domes to an apex 170-260 mm above the right dome
  (about 1.6-4.3 L each: not drawn to a target volume, they follow the torso); the right dome
  10-25 mm higher than the left; dome, apex and wall outlines from smooth random fields;
  lungs touching anteriorly (anterior junction gap 0.2 mm) in 45 % of patients; trachea 8-12 mm in
  radius, 1-4 mm from the right lung, main bronchi to the hila; 8-14 vessels of 1.5-4.5 mm per lung.
* organs: liver 1.2-2.2 L under the right dome; spleen 100-350 mL, left and posterior; kidneys
  120-200 mL each, the right 5-20 mm lower (painted organs come out up to about 25 % smaller where
  the stomach, a kidney or the aorta takes their place); heart, aorta (radius 10-15 mm), spine and
  ribs; the abdomen between them a smooth random mixture of bowel (20-45 HU), fat and some bowel gas.
* nodules: 0-4 per patient, 4-30 mm (log-uniform), solid (in the lung), juxtapleural (centre
  0.3-0.7 radii from the chest wall) or juxtavascular (touching a vessel).
* contrast phase: non-contrast, portal venous or arterial, with organ HU as in `PHASES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.stress.shapes import Capsule, Carved, Ellipsoid, Field, Profile, Region, Shape, Slab, SuperEllipseColumn

# labels of the painted label map (uint8)
AIR, TABLE_SHELL, TABLE_FOAM, FAT, MUSCLE, BONE, MARROW, ABDOMEN, HEART, BLOOD, AIRWAY_WALL, AIRWAY = range(12)
LUNG_LEFT, LUNG_RIGHT, VESSEL_LEFT, VESSEL_RIGHT, LIVER, SPLEEN, KIDNEY_LEFT, KIDNEY_RIGHT = range(12, 20)
STOMACH, STOMACH_GAS, MEDIASTINUM, MARGIN, DIAPHRAGM = 20, 21, 22, 23, 24
MAX_NODULES = 4

#: contrast phase -> label -> (low, high) HU drawn per patient
PHASES: dict[str, dict[int, tuple[float, float]]] = {
    "non_contrast": {LIVER: (48, 65), SPLEEN: (40, 50), BLOOD: (35, 50), HEART: (35, 50),
                     KIDNEY_LEFT: (28, 38), KIDNEY_RIGHT: (28, 38), STOMACH: (5, 25)},
    "portal_venous": {LIVER: (100, 130), SPLEEN: (110, 130), BLOOD: (150, 200), HEART: (140, 190),
                      KIDNEY_LEFT: (150, 200), KIDNEY_RIGHT: (150, 200), STOMACH: (5, 30)},
    "arterial": {LIVER: (65, 90), SPLEEN: (90, 140), BLOOD: (250, 350), HEART: (230, 330),
                 KIDNEY_LEFT: (180, 250), KIDNEY_RIGHT: (180, 250), STOMACH: (5, 30)},
}
#: fixed-tissue HU ranges, drawn per patient
TISSUE_HU: dict[int, tuple[float, float]] = {
    AIR: (-1005, -995), TABLE_SHELL: (150, 350), TABLE_FOAM: (-900, -750), FAT: (-115, -85),
    MEDIASTINUM: (-110, -80), MARGIN: (-110, -70), DIAPHRAGM: (35, 55),
    MUSCLE: (40, 60), BONE: (500, 900), MARROW: (180, 320), ABDOMEN: (20, 45), AIRWAY_WALL: (30, 60),
    AIRWAY: (-1000, -980), LUNG_LEFT: (-880, -820), LUNG_RIGHT: (-880, -820), STOMACH_GAS: (-1000, -980),
}

#: structures scored by the benchmark -> the labels that make up their truth
TRUTH_LABELS: dict[str, tuple[int, ...]] = {
    "body": tuple(label for label in range(DIAPHRAGM + 1) if label not in (AIR, TABLE_SHELL, TABLE_FOAM)),
    "lung_left": (LUNG_LEFT, VESSEL_LEFT),
    "lung_right": (LUNG_RIGHT, VESSEL_RIGHT),
    "liver": (LIVER,),
    "spleen": (SPLEEN,),
    "kidney_left": (KIDNEY_LEFT,),
    "kidney_right": (KIDNEY_RIGHT,),
}


@dataclass
class Layer:
    """Paint ``label`` where ``shape`` is, over any label (``over`` None) or only over ``over``."""

    label: int
    shape: Shape
    over: tuple[int, ...] | None = None


@dataclass
class Nodule:
    """A truth nodule: centre (LPS mm), diameter (mm), kind and the lung it lies in."""

    centre: tuple[float, float, float]
    diameter_mm: float
    kind: str  # solid | juxtapleural | juxtavascular
    side: str  # left | right
    hu: float

    def to_dict(self) -> dict[str, Any]:
        return {"centre_mm": [round(c, 2) for c in self.centre], "diameter_mm": round(self.diameter_mm, 2),
                "kind": self.kind, "side": self.side, "hu": round(self.hu, 1)}


@dataclass
class Anatomy:
    """One drawn patient: paint layers in order, HU per label, nodules and drawn parameters."""

    layers: list[Layer]
    hu: dict[int, float]
    nodules: list[Nodule]
    params: dict[str, Any]
    extent: tuple[float, float, float, float, float, float]  # x0, x1, y0, y1, z0, z1 of the patient
    abdomen_field: Field
    bowel_gas_level: float  # abdomen_field above this is bowel gas
    lung_gradient_hu: float
    truth_labels: dict[str, tuple[int, ...]] = field(default_factory=dict)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw from [lo, hi) as a plain float (the generators' every range)."""
    return float(rng.uniform(lo, hi))


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one adult chest + upper abdomen (see the module docstring for the ranges)."""
    p: dict[str, Any] = {}
    apex = p["lung_apex_mm"] = uniform(rng, 170, 260)
    dome_left = p["left_dome_mm"] = -uniform(rng, 10, 25)
    z_bottom, z_top = -260.0, apex + 60.0
    # -- torso outline -------------------------------------------------------------------------
    a_chest, b_chest = uniform(rng, 135, 185), uniform(rng, 90, 130)
    a_abd, b_abd = a_chest * uniform(rng, 0.9, 1.15), b_chest * uniform(rng, 0.95, 1.25)
    zk = np.array([z_bottom, -60.0, 30.0, apex * 0.7, z_top])
    a = Profile(zk, np.array([a_abd, a_abd, a_chest, a_chest * uniform(rng, 0.95, 1.02), a_chest * uniform(rng, 0.8, 0.95)]))
    b = Profile(zk, np.array([b_abd, b_abd, b_chest, b_chest, b_chest * uniform(rng, 0.85, 1.0)]))
    zero = Profile(zk, np.zeros(5))
    cy = Profile(zk, np.array([b_abd - b_chest, b_abd - b_chest, 0, 0, 0]) * -0.5)  # the belly bulges forward
    n = p["torso_exponent"] = float(rng.choice([2.0, 2.5, 3.0]))
    body_field = Field.random(rng, 80.0)
    fat = p["fat_mm"] = uniform(rng, 3, 40)
    wall_lat = p["lateral_wall_mm"] = uniform(rng, 3, 6) if rng.random() < 0.25 else uniform(rng, 6, 22)
    wall_front, wall_back = uniform(rng, 10, 35), uniform(rng, 30, 60)
    fat_lat = min(fat, 0.4 * wall_lat)

    def column(sx: float = 0.0, sf: float = 0.0, sb: float = 0.0, depth: float = 0.0) -> SuperEllipseColumn:
        return SuperEllipseColumn(zero, cy, a, b, n, z_bottom, z_top, sx, sf, sb, body_field, 4.0,
                                  body if depth else None, depth)

    body = column()
    muscle = column(fat_lat, min(fat, 0.6 * wall_front), min(fat, 0.5 * wall_back), fat_lat)
    cavity = column(wall_lat, wall_front, wall_back, wall_lat)
    p.update(torso_half_width_mm=a_chest, torso_half_depth_mm=b_chest, wall_front_mm=wall_front,
             wall_back_mm=wall_back, cavity_half_width_mm=max(a_abd, a_chest) - wall_lat + 4.0)
    layers: list[Layer] = []
    # -- table and arms --------------------------------------------------------------------------
    back = float(b_abd - 0.5 * (b_abd - b_chest) + 4.0)
    table = p["table"] = bool(rng.random() < 0.8)
    if table:
        top = back + uniform(rng, 0, 12)
        sag = uniform(rng, 0, 4e-4)
        shell, foam = uniform(rng, 2, 4), uniform(rng, 10, 30)
        layers += [Layer(TABLE_SHELL, Slab(top, top + 2 * shell + foam, sag_per_mm2=sag)),
                   Layer(TABLE_FOAM, Slab(top + shell, top + shell + foam, sag_per_mm2=sag))]
    arms = p["arms"] = "down" if rng.random() < 0.5 else "up"
    arm_extent = 0.0
    if arms == "down":
        gap = p["arm_gap_mm"] = float(rng.choice([0.0, uniform(rng, 0, 25)]))
        ra, rb = uniform(rng, 38, 55), uniform(rng, 42, 60)
        for side in (-1, 1):
            cx = side * (a_chest + gap + ra)
            zk2 = np.array([z_bottom, z_top])
            arm = SuperEllipseColumn(Profile(zk2, np.array([cx, cx])), Profile(zk2, np.array([uniform(rng, -15, 25)] * 2)),
                                     Profile(zk2, np.array([ra, ra])), Profile(zk2, np.array([rb, rb])), 2.0,
                                     -60.0, z_top, bumps=body_field, amp_mm=3.0)
            layers.append(Layer(FAT, arm))
            inner = SuperEllipseColumn(arm.cx, arm.cy, arm.a, arm.b, 2.0, -60.0, z_top, min(fat, 12.0),
                                       min(fat, 12.0), min(fat, 12.0))
            layers.append(Layer(MUSCLE, inner))
            bx, by = cx, float(arm.cy(np.array(0.0)))
            layers.append(Layer(BONE, Capsule((bx, by, -48.0), (bx, by, z_top), 12.0)))
            layers.append(Layer(MARROW, Capsule((bx, by, -48.0), (bx, by, z_top), 8.0)))
        arm_extent = gap + 2 * ra
    # -- body wall, cavity ----------------------------------------------------------------------
    dome_r = _dome(rng, -1, a_chest, b_chest, 0.0)
    dome_l = _dome(rng, 1, a_chest, b_chest, dome_left)

    def below_domes(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return z < np.where(x < 0, dome_r(x, y), dome_l(x, y)) - 3.0

    def under_domes(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return z < np.where(x < 0, dome_r(x, y), dome_l(x, y))

    layers += [Layer(FAT, body), Layer(MUSCLE, muscle), Layer(MEDIASTINUM, cavity),
               Layer(DIAPHRAGM, Region(cavity.bbox(), under_domes), over=(MEDIASTINUM,)),
               Layer(ABDOMEN, Region(cavity.bbox(), below_domes), over=(DIAPHRAGM,))]
    # -- skeleton: spine and ribs ----------------------------------------------------------------
    r_vb = uniform(rng, 15, 21)
    cav_back = float(cavity.section(np.array(60.0))[1] + cavity.section(np.array(60.0))[3])
    spine_y = cav_back - 0.3 * r_vb
    spine = Capsule((0.0, spine_y, z_bottom), (0.0, spine_y, z_top), r_vb)
    layers += [Layer(BONE, spine), Layer(MARROW, Capsule(spine.p0, spine.p1, r_vb - 2.5)),
               Layer(BONE, Slab(spine_y + r_vb, spine_y + r_vb + 30, -5, 5, z_bottom, z_top), over=(MUSCLE,))]
    rib_r = float(np.clip((wall_lat - 1.0) / 2.0, 1.5, 5.0))
    for z_rib in np.arange(apex - 25, -120, -uniform(rng, 22, 28)):
        for side in (-1, 1):
            pts = []
            for theta in np.linspace(0.15, 0.9, 9) * np.pi:  # posterior (near the spine) to anterior
                zz = np.array(z_rib - 40.0 * (theta / np.pi - 0.15))
                cx_, cy_, aa, bb = (float(v) for v in column(wall_lat - rib_r - 0.5, wall_front - rib_r - 0.5,
                                                             wall_back - rib_r - 0.5).section(zz))
                c, s = np.cos(theta), np.sin(theta)
                scale = (abs(c) ** n + abs(s) ** n) ** (-1.0 / n)
                pts.append((side * aa * s * scale, cy_ + bb * c * scale, float(zz)))
            layers += [Layer(BONE, Capsule(p0, p1, rib_r), over=(FAT, MUSCLE, MEDIASTINUM))
                       for p0, p1 in zip(pts, pts[1:])]
    # -- mediastinum -----------------------------------------------------------------------------
    cav_front = float(cavity.section(np.array(60.0))[1] - cavity.section(np.array(60.0))[3])
    heart = Ellipsoid((uniform(rng, 15, 40), cav_front + uniform(rng, 45, 65), uniform(rng, 40, 60)),
                      (uniform(rng, 55, 70), uniform(rng, 42, 55), uniform(rng, 48, 60)), Field.random(rng, 50.0), 3.0)
    r_ao = uniform(rng, 10, 15)
    ao_x, ao_y = uniform(rng, 12, 28), spine_y - r_vb - r_ao - 2.0
    arch_z = apex - uniform(rng, 55, 80)
    asc = (uniform(rng, -15, 0), heart.centre[1] - 10.0)
    aorta = [Capsule((ao_x, ao_y, z_bottom), (ao_x, ao_y, arch_z), r_ao),
             Capsule((ao_x, ao_y, arch_z), (asc[0], asc[1], arch_z + 10), r_ao),
             Capsule((asc[0], asc[1], arch_z + 10), (asc[0], asc[1], heart.centre[2]), r_ao * 1.1)]
    great = Ellipsoid((uniform(rng, -5, 10), cav_front + uniform(rng, 30, 45), arch_z + 40),
                      (uniform(rng, 22, 35), uniform(rng, 20, 28), 45.0), Field.random(rng, 40.0), 2.0)
    r_tr = p["trachea_radius_mm"] = uniform(rng, 8, 12)
    tr_x, tr_y = -uniform(rng, 2, 8), ao_y - uniform(rng, 0, 10)
    carina = arch_z - uniform(rng, 10, 25)
    airway_gap = p["airway_to_right_lung_mm"] = uniform(rng, 1, 4)
    bronchus_r = (carina, (tr_x - uniform(rng, 22, 30), tr_y + 5, carina - uniform(rng, 15, 25)), r_tr * 0.7)
    bronchus_l = (carina, (tr_x + uniform(rng, 40, 50), tr_y + 8, carina - uniform(rng, 30, 40)), r_tr * 0.6)
    airways = [Capsule((tr_x, tr_y, carina), (tr_x, tr_y, z_top), r_tr)]
    airways += [Capsule((tr_x, tr_y, carina), end, r) for _, end, r in (bronchus_r, bronchus_l)]
    oesophagus = Capsule((tr_x + 10, tr_y + r_tr + 8, z_bottom + 150), (tr_x + 10, tr_y + r_tr + 8, z_top), 8.0)
    # mediastinal fat keeps the lungs this far from the airways, aorta, oesophagus and spine
    margin = [Capsule(c.p0, c.p1, c.radius + airway_gap) for c in airways]
    margin += [Capsule(c.p0, c.p1, c.radius + 2.0) for c in aorta]
    margin += [Capsule(oesophagus.p0, oesophagus.p1, oesophagus.radius + 3.0), Capsule(spine.p0, spine.p1, r_vb + 6)]
    layers += [Layer(MARGIN, c, over=(MEDIASTINUM,)) for c in margin]
    mediastinal = (MEDIASTINUM, MARGIN, DIAPHRAGM, ABDOMEN)
    layers += [Layer(HEART, heart, over=mediastinal), Layer(BLOOD, great, over=mediastinal)]
    layers += [Layer(BLOOD, c, over=mediastinal) for c in aorta]
    layers += [Layer(MUSCLE, oesophagus, over=mediastinal)]
    layers += [Layer(AIRWAY_WALL, c) for c in airways]
    layers += [Layer(AIRWAY, Capsule(c.p0, c.p1, c.radius - 2.0)) for c in airways]
    # -- lungs: the cavity's mediastinal fat above the domes, below the apex, on its own side -----
    touching = p["lungs_touching"] = bool(rng.random() < 0.45)
    septum = 0.2 if touching else uniform(rng, 3, 15)
    septum_x = uniform(rng, -5, 10)
    apex_field = Field.random(rng, 70.0)
    lungs: dict[str, Region] = {}
    for name, side, dome in (("left", 1, dome_l), ("right", -1, dome_r)):
        ax = side * uniform(rng, 0.4, 0.6) * a_chest

        def lung_clip(x, y, z, side=side, dome=dome, ax=ax):
            top = apex - 40.0 * ((x - ax) ** 2 + (y - cav_front - 0.45 * (cav_back - cav_front)) ** 2) / 60.0**2
            top = top + 6.0 * apex_field(x, y, np.zeros_like(x))
            medial = (x - septum_x) * side >= septum / 2
            return (z <= top) & (z >= dome(x, y)) & medial

        x0_, x1_, y0_, y1_, _, _ = cavity.bbox()
        box = (septum_x if side > 0 else x0_, x1_ if side > 0 else septum_x, y0_, y1_, -120.0, apex + 30.0)
        lung = Region(box, lung_clip)
        lungs[name] = Region(box, lambda x, y, z, lung=lung: lung.inside(x, y, z) & cavity.inside(x, y, z)
                             & ~heart.inside(x, y, z) & ~great.inside(x, y, z))  # for placing nodules
        layers.append(Layer(LUNG_LEFT if side > 0 else LUNG_RIGHT, lung, over=(MEDIASTINUM,)))
    # -- abdominal organs ------------------------------------------------------------------------
    abd = (ABDOMEN,)
    cav_mid_y = 0.5 * (cav_front + cav_back)
    liver_ml = p["liver_target_ml"] = uniform(rng, 1200, 2200)
    liver = _organ(rng, liver_ml, (-0.45 * a_chest, cav_mid_y - 0.1 * b_chest, -65.0), (1.0, 0.85, 0.75),
                   [lambda x, y, z: z < dome_r(x, y) - 4.0, lambda x, y, z: x < 50.0, cavity.inside])
    spleen_ml = p["spleen_target_ml"] = uniform(rng, 100, 350)
    spleen = _organ(rng, spleen_ml, (0.62 * a_chest, cav_mid_y + 0.45 * b_chest, dome_left - 55.0),
                    (0.8, 0.5, 1.0), [lambda x, y, z: z < dome_l(x, y) - 4.0, lambda x, y, z: x > 0, cavity.inside])
    stomach = Ellipsoid((0.3 * a_chest, cav_front + 50.0, dome_left - 50.0), (45.0, 35.0, 40.0),
                        Field.random(rng, 40.0),
                        4.0, [lambda x, y, z: z < dome_l(x, y) - 4.0])
    gas_level = stomach.centre[2] + uniform(rng, 0, 40)
    layers += [Layer(STOMACH, stomach, over=abd),
               Layer(STOMACH_GAS, Carved(stomach, clips=[lambda x, y, z: z > gas_level]), over=(STOMACH,)),
               Layer(LIVER, liver, over=abd), Layer(SPLEEN, spleen, over=abd)]
    z_kid = dome_left - uniform(rng, 100, 125)
    for label, side, drop in ((KIDNEY_LEFT, 1, 0.0), (KIDNEY_RIGHT, -1, uniform(rng, 5, 20))):
        ml = p[f"kidney_{'left' if side > 0 else 'right'}_target_ml"] = uniform(rng, 120, 200)
        kidney = _organ(rng, ml, (side * uniform(rng, 55, 75), spine_y - uniform(rng, 20, 35), z_kid - drop), (0.5, 0.45, 1.0),
                        [cavity.inside], amp=2.0)
        layers.append(Layer(label, kidney, over=abd + (LIVER, SPLEEN)))
    layers.append(Layer(BLOOD, aorta[0], over=abd + (LIVER,)))  # the aorta stays in front of the organs
    # -- lung vessels and nodules ----------------------------------------------------------------
    vessels: list[tuple[str, Capsule]] = []
    for name, side, label in (("left", 1, VESSEL_LEFT), ("right", -1, VESSEL_RIGHT)):
        hilum = np.array([side * uniform(rng, 30, 55) + tr_x, tr_y - 10.0, carina - 30.0])
        for _ in range(int(rng.integers(8, 15))):
            direction = rng.normal(size=3) * np.array([1.0, 1.0, 1.4]) + np.array([side * 1.2, 0.0, -0.2])
            direction /= np.linalg.norm(direction)
            length, r = uniform(rng, 40, 90), uniform(rng, 2.5, 4.5)
            mid = hilum + direction * length
            end = mid + (direction + rng.normal(scale=0.4, size=3)) * uniform(rng, 30, 60)
            for c in (Capsule(tuple(hilum), tuple(mid), r), Capsule(tuple(mid), tuple(end), max(1.5, 0.55 * r))):
                vessels.append((name, c))
                layers.append(Layer(label, c, over=(LUNG_LEFT if side > 0 else LUNG_RIGHT,)))
    hu = {label: uniform(rng, *rng_hu) for label, rng_hu in TISSUE_HU.items()}
    phase = p["phase"] = str(rng.choice(list(PHASES)))
    hu.update({label: uniform(rng, *band) for label, band in PHASES[phase].items()})
    hu[VESSEL_LEFT] = hu[VESSEL_RIGHT] = hu[BLOOD]
    nodules = _nodules(rng, lungs, vessels, (cav_front, cav_back), a_chest, apex, phase)
    half_width = max(a_abd, a_chest) + arm_extent
    extent = (-half_width, half_width, -max(b_abd, b_chest) - 20.0, back + 40.0 if table else back, z_bottom, z_top)
    return Anatomy(layers=layers, hu=hu, nodules=nodules, params=p, extent=extent,
                   abdomen_field=Field.random(rng, 25.0), bowel_gas_level=uniform(rng, 1.4, 2.6),
                   lung_gradient_hu=uniform(rng, 0, 80), truth_labels=dict(TRUTH_LABELS))


def _dome(rng: np.random.Generator, side: int, a_chest: float, b_chest: float, z0: float):
    """The diaphragm surface under one lung: highest mid-lung, falling 40-70 mm to the recesses."""
    cx, cy = side * uniform(rng, 0.35, 0.5) * a_chest, uniform(rng, -0.1, 0.15) * b_chest
    depth, f = uniform(rng, 40, 70), Field.random(rng, 60.0)

    def dome(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r2 = ((x - cx) / (0.55 * a_chest)) ** 2 + ((y - cy) / (0.9 * b_chest)) ** 2
        return z0 - depth * r2 + 4.0 * f(x, y, np.zeros_like(x))

    return dome


def _organ(rng: np.random.Generator, target_ml: float, centre: tuple[float, float, float],
           aspect: tuple[float, float, float], clips: list, amp: float = 5.0) -> Ellipsoid:
    """An ellipsoid with a bumpy surface, scaled so its clipped volume is about ``target_ml``."""
    radii = np.asarray(aspect) * 50.0
    organ = Ellipsoid(centre, tuple(radii), Field.random(rng, 50.0), amp, clips)
    for _ in range(3):
        ml = _volume_ml(organ)
        radii = radii * (target_ml / max(ml, 1.0)) ** (1 / 3)
        organ = Ellipsoid(centre, tuple(float(r) for r in radii), organ.bumps, amp, clips)
    return organ


def _volume_ml(shape: Shape, step: float = 3.0) -> float:
    x0, x1, y0, y1, z0, z1 = shape.bbox()
    x = np.arange(x0, x1 + step, step)[None, None, :]
    y = np.arange(y0, y1 + step, step)[None, :, None]
    z = np.arange(z0, z1 + step, step)[:, None, None]
    return float(shape.inside(x, y, z).sum()) * step**3 / 1000.0


def _nodules(rng: np.random.Generator, lungs: dict[str, Region], vessels: list[tuple[str, Capsule]],
             cavity_y: tuple[float, float], a_chest: float, apex: float, phase: str) -> list[Nodule]:
    """Place 0-4 nodules with known centres in the lungs (see the module docstring for kinds)."""
    count = int(rng.choice([0, 1, 1, 2, 2, 3, 4]))
    if count == 0:
        return []
    step = 3.0
    grids = {}
    for name, lung in lungs.items():
        x0, x1, _, _, _, _ = lung.bbox()
        xs = np.arange(max(x0, -a_chest), min(x1, a_chest), step)
        ys = np.arange(cavity_y[0], cavity_y[1], step)
        zs = np.arange(-80.0, apex, step)
        inside = lung.inside(xs[None, None, :], ys[None, :, None], zs[:, None, None])
        depth = ndimage.distance_transform_edt(inside, sampling=step)
        grids[name] = (xs, ys, zs, inside, depth)
    out: list[Nodule] = []
    hu_offset = {"non_contrast": 0.0, "portal_venous": 25.0, "arterial": 15.0}[phase]
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(np.log(4.0), np.log(30.0))))
        r = diameter / 2
        kind = str(rng.choice(["solid", "juxtapleural", "juxtavascular"]))
        side = str(rng.choice(["left", "right"]))
        xs, ys, zs, inside, depth = grids[side]
        centre = None
        if kind == "juxtavascular":
            cands = [c for s, c in vessels if s == side]
            for _try in range(40):
                c = cands[int(rng.integers(len(cands)))]
                t = rng.uniform(0.2, 0.9)
                axis_pt = np.asarray(c.p0) + t * (np.asarray(c.p1) - np.asarray(c.p0))
                d = np.asarray(c.p1) - np.asarray(c.p0)
                perp = np.cross(d, rng.normal(size=3))
                perp /= max(np.linalg.norm(perp), 1e-9)
                cand = axis_pt + perp * (r + 0.5 * c.radius)
                k = _grid_index(cand, xs, ys, zs)
                if k is not None and depth[k] >= r + 2.0:
                    centre = cand
                    break
            kind = kind if centre is not None else "solid"
        if centre is None:
            if kind == "juxtapleural":
                lo, hi = 0.3 * r, 0.7 * r + step
                lateral = np.abs(xs)[None, None, :] > 0.45 * a_chest
                ok = inside & (depth >= lo) & (depth <= hi) & lateral
            else:
                ok = inside & (depth >= r + 3.0)
            idx = np.argwhere(ok)
            if not len(idx):
                continue
            kz, ky, kx = idx[int(rng.integers(len(idx)))]
            centre = np.array([xs[kx], ys[ky], zs[kz]]) + rng.uniform(-step / 2, step / 2, size=3)
        if any(np.linalg.norm(centre - np.asarray(o.centre)) < (diameter + o.diameter_mm) / 2 + 5.0 for o in out):
            continue
        out.append(Nodule(tuple(float(c) for c in centre), diameter, kind, side,
                          uniform(rng, 0, 60) + hu_offset))
    return out[:MAX_NODULES]


def _grid_index(point: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> tuple[int, int, int] | None:
    k = [int(round((v - g[0]) / (g[1] - g[0]))) for v, g in zip(point[::-1], (zs, ys, xs))]
    if all(0 <= i < len(g) for i, g in zip(k, (zs, ys, xs))):
        return tuple(k)  # type: ignore[return-value]
    return None
