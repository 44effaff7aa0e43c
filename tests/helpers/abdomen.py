"""An independent synthetic upper-abdomen CT for the organ segmenter's tests (not `imaging.phantoms`).

Organ sizes, positions and HU are drawn from a seed within adult ranges, in three contrast phases
(HU per phase from typical published values), on any grid: the organ segmenter is checked on
anatomy and values it was not tuned on. World frame LPS mm; z = 0 is the top of the right
hemidiaphragm; the field of view is centred in-plane on the body.

The picture: a superellipse body (skin, subcutaneous fat, a muscle wall), lungs above two
diaphragm domes, the heart on the left dome, a two-lobed liver with portal vessels and a hypodense
lesion under the right dome, spleen left-posterior, kidneys beside the spine (right lower),
stomach (wall, fluid, a gas cap) left-anterior, aorta and IVC in front of the spine, psoas and
paraspinal muscles, bowel loops low in front, a table under the patient, correlated noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.volume import Volume

PHASES = ("non-contrast", "arterial", "portal-venous")

#: HU ranges per phase: (low, high), drawn uniformly per case
HU_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "non-contrast": {"liver": (50, 66), "spleen": (40, 52), "kidney_cortex": (28, 36), "kidney_medulla": (28, 36),
                     "blood": (35, 50), "portal": (35, 45), "myocardium": (40, 50), "muscle": (45, 55),
                     "stomach_wall": (35, 45), "bowel": (15, 35)},
    "arterial": {"liver": (62, 82), "spleen": (100, 140), "kidney_cortex": (190, 240), "kidney_medulla": (70, 100),
                 "blood": (260, 360), "portal": (90, 130), "myocardium": (90, 120), "muscle": (50, 60),
                 "stomach_wall": (80, 110), "bowel": (30, 60)},
    "portal-venous": {"liver": (95, 125), "spleen": (105, 130), "kidney_cortex": (160, 200),
                      "kidney_medulla": (130, 170), "blood": (140, 190), "portal": (160, 200),
                      "myocardium": (95, 115), "muscle": (55, 65), "stomach_wall": (85, 110), "bowel": (50, 80)},
}
HU_FAT, HU_AIR, HU_BONE, HU_CORTEX, HU_WATER, HU_TABLE = -100.0, -1000.0, 250.0, 600.0, 10.0, 150.0


@dataclass
class SyntheticAbdomen:
    volume: Volume
    labels: dict[str, np.ndarray]
    phase: str

    def volume_ml(self, name: str) -> float:
        return float(self.labels[name].sum()) * self.volume.voxel_volume_mm3 / 1000.0


def _ellipsoid(x, y, z, centre, radii, angle_deg=0.0):
    a = np.deg2rad(angle_deg)
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    u, v = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 + (dz / radii[2]) ** 2 <= 1.0


def _superellipse(x, y, centre, radii, power=2.3):
    return np.abs((x - centre[0]) / radii[0]) ** power + np.abs((y - centre[1]) / radii[1]) ** power <= 1.0


def _tube(x, y, z, start, end, radius):
    """A capsule, evaluated only inside its bounding box (x, y, z are broadcastable 1-D grids)."""
    xs, ys, zs = x.ravel(), y.ravel(), z.ravel()
    out = np.zeros((zs.size, ys.size, xs.size), dtype=bool)
    lo, hi = np.minimum(start, end) - radius, np.maximum(start, end) + radius
    pick = [np.flatnonzero((c >= lo[i]) & (c <= hi[i])) for i, c in ((2, zs), (1, ys), (0, xs))]
    if any(p.size == 0 for p in pick):
        return out
    box = tuple(slice(p[0], p[-1] + 1) for p in pick)
    zz, yy, xx = np.meshgrid(zs[box[0]], ys[box[1]], xs[box[2]], indexing="ij")
    p = np.stack([xx, yy, zz], axis=-1)
    a, b = np.asarray(start, float), np.asarray(end, float)
    t = np.clip(((p - a) @ (b - a)) / float((b - a) @ (b - a)), 0.0, 1.0)
    out[box] = np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1) <= radius
    return out


def synthetic_abdomen(
    seed: int,
    phase: str,
    spacing: tuple[float, float, float] = (5.0, 1.5, 1.5),
    z_range_mm: tuple[float, float] = (-95.0, 5.0),
    matrix: int = 256,
    noise_hu: float | None = None,
) -> SyntheticAbdomen:
    """One case: ``z_range_mm`` (inferior, superior) is the covered span around the right dome top.

    The default covers 100 mm from just above the dome (20 slices of 5 mm): partial coverage,
    kidneys cut at the bottom of the field of view.
    """
    rng = np.random.default_rng([seed, 11])
    hu = {k: float(rng.uniform(*r)) for k, r in HU_RANGES[phase].items()}
    sz, sy, sx = spacing
    nz = int(round((z_range_mm[1] - z_range_mm[0]) / sz))
    z0 = z_range_mm[0] + sz / 2
    affine = np.array([[0, 0, sx, -sx * (matrix - 1) / 2], [0, sy, 0, -sy * (matrix - 1) / 2],
                       [sz, 0, 0, z0], [0, 0, 0, 1]], dtype=float)
    zz = (z0 + sz * np.arange(nz))[:, None, None]
    yy = (sy * (np.arange(matrix) - (matrix - 1) / 2))[None, :, None]
    xx = (sx * (np.arange(matrix) - (matrix - 1) / 2))[None, None, :]
    shape = (nz, matrix, matrix)
    u = rng.uniform

    body_r = (u(135, 165), u(100, 120))
    cy = u(-15, 5)
    fat_mm, wall_mm = u(8, 28), u(7, 12)
    body = np.broadcast_to(_superellipse(xx, yy, (0, cy), body_r), shape)
    inner_r = (body_r[0] - fat_mm, body_r[1] - fat_mm)
    muscle = np.broadcast_to(_superellipse(xx, yy, (0, cy), inner_r), shape)
    cavity = np.broadcast_to(_superellipse(xx, yy, (0, cy), (inner_r[0] - wall_mm, inner_r[1] - wall_mm)), shape)
    post = cy + body_r[1]
    ys = post - fat_mm - u(45, 55)  # vertebral body centre
    xs = u(-6, 6)

    # diaphragm domes (z of the dome surface at each x, y); the right is higher
    def dome_surface(x_peak: float, top: float) -> np.ndarray:
        back = np.maximum(yy - cy + 20, 0) / 100.0
        front = np.minimum(yy - cy + 20, 0) / 90.0
        return top - ((xx - x_peak) / 85.0) ** 2 * 30 - back ** 2 * 35 - front ** 2 * 20

    right_dome = dome_surface(xs - 65, 0.0)
    left_dome = dome_surface(xs + 65, -u(10, 20))
    dome = np.where(xx < xs, right_dome, left_dome)
    above = zz > dome
    below = zz < dome - 5.0  # 5 mm diaphragm

    data = np.full(shape, HU_AIR, dtype=np.float32)
    table = (yy > post + 4) & (yy < post + 14) & (np.abs(xx) < 200)
    data[np.broadcast_to(table, shape)] = HU_TABLE
    data[body] = HU_FAT
    data[muscle] = hu["muscle"]
    data[cavity] = -90.0

    spine_body = np.broadcast_to(_superellipse(xx, yy, (xs, ys), (17, 15), 2.0), shape)
    spine_arch = np.broadcast_to(_superellipse(xx, yy, (xs, ys + 28), (14, 12), 2.0), shape)
    canal = np.broadcast_to(_superellipse(xx, yy, (xs, ys + 27), (7, 7), 2.0), shape)
    paraspinal = np.broadcast_to(_superellipse(np.abs(xx - xs), yy, (38, ys + 36), (22, 18), 2.0), shape)
    data[paraspinal] = hu["muscle"]
    data[spine_arch | spine_body] = HU_BONE
    data[canal] = 20.0
    cortex_ring = spine_body & ~np.broadcast_to(_superellipse(xx, yy, (xs, ys), (14, 12), 2.0), shape)
    data[cortex_ring] = HU_CORTEX

    lungs = cavity & above & ~np.broadcast_to(np.abs(xx - xs) < 28, shape)
    heart = _ellipsoid(xx, yy, zz, (xs + u(15, 30), cy - u(20, 35), u(40, 55)), (u(50, 60), u(40, 48), 55)) & above
    heart &= cavity
    data[lungs] = -850.0
    data[heart] = hu["myocardium"]
    data[_ellipsoid(xx, yy, zz, (xs + 25, cy - 25, 55), (32, 26, 35)) & heart] = hu["blood"]

    aorta = np.broadcast_to(_superellipse(xx, yy, (xs + u(12, 20), ys - u(28, 34)), (12, 12), 2.0), shape)
    ivc = np.broadcast_to(_superellipse(xx, yy, (xs - u(22, 28), ys - u(24, 30)), (13, 10), 2.0), shape) & below
    data[aorta] = hu["blood"]
    data[ivc] = hu["blood"] if phase == "portal-venous" else hu["blood"] * 0.4 + 20

    k_r, k_l = (u(24, 30), u(26, 32), u(45, 58)), (u(24, 30), u(26, 32), u(45, 58))
    kid_r_c = (xs - u(62, 75), ys - u(0, 8), -u(70, 85))
    kid_l_c = (xs + u(62, 75), ys - u(0, 8), kid_r_c[2] + u(10, 20))
    kidneys = {"kidney_right": _ellipsoid(xx, yy, zz, kid_r_c, k_r, -20) & below,
               "kidney_left": _ellipsoid(xx, yy, zz, kid_l_c, k_l, 20) & below}
    for name, mask in kidneys.items():
        centre, radii = (kid_r_c, k_r) if name == "kidney_right" else (kid_l_c, k_l)
        inner = _ellipsoid(xx, yy, zz, centre, tuple(r - 7 for r in radii), -20 if name == "kidney_right" else 20)
        data[mask] = hu["kidney_cortex"]
        data[mask & inner] = hu["kidney_medulla"]
    psoas_top = kid_r_c[2] + 20
    for side in (-1, 1):
        psoas = _superellipse(xx, yy, (xs + side * 35, ys + 2), (14, 16), 2.0) & (zz < psoas_top)
        data[np.broadcast_to(psoas, shape) & ~kidneys["kidney_left"] & ~kidneys["kidney_right"]] = hu["muscle"]

    # liver: right lobe and a left lobe across the midline, under the right dome (and its extension)
    lr = (u(70, 92), u(62, 80), u(80, 105))
    lc = (xs - u(55, 70), cy - u(0, 15), -lr[2] + u(5, 12))
    right_lobe = _ellipsoid(xx, yy, zz, lc, lr, u(-15, 0))
    left_lobe = _ellipsoid(xx, yy, zz, (xs + u(0, 15), cy - u(40, 55), -u(25, 40)), (u(45, 65), u(24, 32), u(30, 42)))
    liver = (right_lobe | left_lobe) & cavity & below
    liver &= ~spine_body & ~np.broadcast_to(
        _superellipse(xx, yy, (xs + 15, ys - 31), (16, 16), 2.0), shape) & ~ivc
    for k in kidneys.values():
        liver &= ~ndimage.binary_dilation(k, iterations=1)
    liver &= ~heart
    data[liver] = hu["liver"]
    vessels = np.zeros(shape, dtype=bool)
    for _ in range(3):
        start = (lc[0] + u(-10, 10), lc[1] + u(10, 20), lc[2] + u(-10, 10))
        end = (start[0] + u(-40, 30), start[1] + u(-45, -20), start[2] + u(-30, 30))
        vessels |= _tube(xx, yy, zz, start, end, u(4, 6))
    data[vessels & liver] = hu["portal"]
    lesion_c = (lc[0] - u(10, 25), lc[1] + u(-15, 5), lc[2] + u(-15, 15))
    data[_ellipsoid(xx, yy, zz, lesion_c, (9, 9, 9)) & liver] = hu["liver"] - 45

    # spleen: left posterior-lateral, hanging from the left dome
    sr = (u(20, 30), u(38, 55), u(40, 58))
    sc = (xs + u(80, 95), ys - u(10, 25), -u(20, 32) - sr[2] * 0.6)
    spleen = _ellipsoid(xx, yy, zz, sc, sr, u(25, 40)) & cavity & (zz < left_dome - 5.0)
    spleen &= ~ndimage.binary_dilation(kidneys["kidney_left"], iterations=1)
    mottle = 20.0 * np.sin(xx / 6.0) * np.sin(yy / 5.0) if phase == "arterial" else 0.0
    data[spleen] = (hu["spleen"] + np.broadcast_to(mottle, shape))[spleen]

    # stomach (wall, fluid, gas cap) left-anterior, touching the liver's left lobe
    st_c, st_r = (xs + u(40, 55), cy - u(35, 50), -u(30, 45)), (u(35, 45), u(28, 35), u(35, 45))
    stomach = _ellipsoid(xx, yy, zz, st_c, st_r) & cavity & below & ~liver & ~spleen
    lumen = _ellipsoid(xx, yy, zz, st_c, tuple(r - 5 for r in st_r)) & stomach
    data[stomach] = hu["stomach_wall"]
    data[lumen] = HU_WATER
    data[lumen & (yy < st_c[1] - st_r[1] * 0.5)] = HU_AIR

    # bowel loops low and in front
    for _ in range(6):
        start = (u(-70, 70), cy - u(20, 70), z_range_mm[0] + u(0, 30))
        end = (start[0] + u(-40, 40), start[1] + u(-20, 20), start[2] + u(-10, 20))
        loop = _tube(xx, yy, zz, start, end, u(9, 13)) & cavity & ~liver & ~spleen & ~kidneys["kidney_left"]
        loop &= ~kidneys["kidney_right"] & ~stomach & below
        data[loop] = hu["bowel"]

    noise = noise_hu if noise_hu is not None else u(8, 18)
    data = ndimage.gaussian_filter(data, (0.0, 0.5, 0.5))  # partial volume at edges
    grain = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape).astype(np.float32), (0.0, 0.7, 0.7))
    data += grain * (noise / grain.std())
    volume = Volume(data=np.clip(np.rint(data), -1024, 3071).astype(np.float32), spacing=(sz, sy, sx),
                    affine=affine, modality="CT", name=f"synthetic_abdomen_{phase}_{seed}")
    labels = {"liver": liver, "spleen": spleen, **kidneys, "heart": heart}
    return SyntheticAbdomen(volume, labels, phase)
