"""An independent synthetic chest CT holding one lung mass of a named class, with its reference mask, for
the lung-mass search's tests (not `imaging.phantoms`, not the stress generator).

World frame LPS mm (x to the patient's left, y posterior, z superior), the field of view centred on the
body. The picture: an elliptic body (skin fat, a muscle layer with ribs), a thoracic cavity the lungs fill
down to two diaphragm domes (the right higher, the liver under it), a mediastinum of fat holding the heart
(low, forward, to the left), the ascending aorta, the arch and the descending aorta beside the spine, the
oesophagus, the trachea splitting into the main bronchi, pulmonary arteries running out to both hila, a
vessel tree branching in each lung, noise, and thick slices averaged from 1 mm ones (partial volume).

Mass classes (`CLASSES`), each on either side:

* ``hilar``: a lobulated mass in the hilum, fused with the pulmonary artery and the mediastinum (no fat
  plane), most of it bulging into the lung;
* ``anterior``: a mass in front, against the anterior mediastinum beside the heart and the front chest wall;
* ``wall_mediastinum``: a broad upper-lobe mass spanning the lung from the mediastinum to the lateral wall;
* ``cavitating``: a thick-walled mass with an eccentric air cavity;
* ``necrotic``: a mass with a low-HU centre (an enhancing rim on contrast scans);
* ``part_solid``: a ground-glass-dominant mass (-700..-450 HU, vessels through it) with a small solid core;
* ``atelectasis``: a hilar-side mass with the lung distal to it collapsed (soft tissue beside the tumour);
* ``effusion``: a mass against the back chest wall with a pleural effusion layering beside and below it.

The reference mask is the tumour (with its cavity or necrosis, its ground glass), never the collapsed lung
or the effusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.volume import Volume

CLASSES = ("hilar", "anterior", "wall_mediastinum", "cavitating", "necrotic", "part_solid", "atelectasis",
           "effusion")

#: field of view (mm): x, y, z
FOV_MM = (340.0, 260.0, 220.0)
#: the lungs' apex and the domes' tops (mm, z)
APEX_Z, LEFT_DOME_Z, RIGHT_DOME_Z = 200.0, 45.0, 60.0


@dataclass
class MassChest:
    volume: Volume
    truth: np.ndarray  # the tumour, on the volume's grid
    side: str  # "left" or "right"
    kind: str

    @property
    def truth_ml(self) -> float:
        return float(np.count_nonzero(self.truth) * np.prod(self.volume.spacing) / 1000.0)


def _tube(shape_xyz, grid, start, end, r0, r1) -> np.ndarray:
    """The voxels within a tapering radius (``r0`` at start, ``r1`` at end) of a segment, computed in its box."""
    lo = np.minimum(start, end) - max(r0, r1) - 1
    hi = np.maximum(start, end) + max(r0, r1) + 1
    sl = tuple(slice(max(0, int(np.searchsorted(g, a))), int(np.searchsorted(g, b)))
               for g, a, b in zip(grid, lo, hi))
    out = np.zeros(shape_xyz, dtype=bool)
    if any(s.stop <= s.start for s in sl):
        return out
    pts = np.meshgrid(grid[0][sl[0]], grid[1][sl[1]], grid[2][sl[2]], indexing="ij")
    d = end - start
    t = np.clip(((pts[0] - start[0]) * d[0] + (pts[1] - start[1]) * d[1] + (pts[2] - start[2]) * d[2]) / (d @ d), 0, 1)
    dist = np.sqrt(sum((p - s - t * dd) ** 2 for p, s, dd in zip(pts, start, d)))
    out[sl] = dist <= r0 + (r1 - r0) * t
    return out


def _lobulated(x, y, z, centre, radii, rng, lobes=4, lobe_scale=0.55):
    """An ellipsoid of ``radii`` (mm) about ``centre`` with ``lobes`` smaller balls on its surface."""
    body = sum(((c - m) / r) ** 2 for c, m, r in zip((x, y, z), centre, radii)) <= 1.0
    for _ in range(lobes):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        at = np.asarray(centre) + 0.75 * direction * np.asarray(radii)
        r = lobe_scale * min(radii) * rng.uniform(0.7, 1.0)
        body |= (x - at[0]) ** 2 + (y - at[1]) ** 2 + (z - at[2]) ** 2 <= r ** 2
    return body


def mass_chest(kind: str, side: str, slice_mm: float = 2.5, pixel_mm: float = 1.25, seed: int = 0,
               contrast: bool = False, size: float = 1.0) -> MassChest:
    """A chest CT (``slice_mm`` slices of ``pixel_mm`` pixels) with one mass of class ``kind`` in the
    ``side`` lung; ``size`` scales the mass's radii."""
    rng = np.random.default_rng(seed)
    sign = 1.0 if side == "left" else -1.0
    # 1 mm slices, averaged into thick ones at the end
    nx, ny = int(FOV_MM[0] / pixel_mm), int(FOV_MM[1] / pixel_mm)
    fine = 1.0
    nz = int(FOV_MM[2] / fine)
    gx = (np.arange(nx) + 0.5) * pixel_mm - FOV_MM[0] / 2
    gy = (np.arange(ny) + 0.5) * pixel_mm - FOV_MM[1] / 2
    gz = (np.arange(nz) + 0.5) * fine
    x, y, z = np.meshgrid(gx, gy, gz, indexing="ij", sparse=True)
    shape = (nx, ny, nz)
    full = lambda a: np.broadcast_to(a, shape)  # noqa: E731

    blood = 200.0 if contrast else 42.0
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = full((x / 165.0) ** 2 + (y / 118.0) ** 2 <= 1.0)
    muscle = full((x / 158.0) ** 2 + (y / 110.0) ** 2 <= 1.0)
    # the apex narrows the cavity above 160 mm
    taper = np.sqrt(np.clip((APEX_Z + 8.0 - z) / 48.0, 0.0, 1.0))
    cavity = ((x / (148.0 * taper + 1e-3)) ** 2 + ((y - 3.0) / (100.0 * taper + 1e-3)) ** 2 <= 1.0)
    hu[body] = -100.0
    hu[muscle] = 45.0
    # ribs: bands of the muscle layer every 25 mm along z, sloping forward
    ribs = muscle & full((np.mod(z + 0.12 * y, 25.0) < 9.0) & ((x / 152.0) ** 2 + (y / 104.0) ** 2 > 1.0))
    hu[ribs] = 450.0
    # diaphragm domes: the lung lies above them
    dome_l = LEFT_DOME_Z + 35.0 * np.clip(1 - ((x - 75.0) / 80.0) ** 2 - (y / 110.0) ** 2, 0, 1) - 30.0
    dome_r = RIGHT_DOME_Z + 35.0 * np.clip(1 - ((x + 75.0) / 80.0) ** 2 - (y / 110.0) ** 2, 0, 1) - 30.0
    dome = np.where(x > 0, dome_l, dome_r)
    thorax = full(cavity & (z > dome))
    abdomen = full(cavity & (z <= dome))
    hu[abdomen] = np.where(full(x < 20.0), 58.0, 45.0)[abdomen]  # the liver on the right, stomach/spleen left
    # mediastinum: a fat band about the middle, wider in front at the heart's level
    half_width = 28.0 + 10.0 * np.clip(-y / 60.0, 0, 1)
    mediastinum = thorax & full(np.abs(x - 4.0) < half_width) & full(y < 95.0)
    spine = full(x ** 2 + (y - 88.0) ** 2 <= 20.0 ** 2) & full(z < 215)
    aorta_desc = full((x - 24.0) ** 2 + (y - 58.0) ** 2 <= 13.0 ** 2) & full(z < 150)
    oesophagus = full((x + 10.0) ** 2 + (y - 50.0) ** 2 <= 8.0 ** 2)
    heart = ((x - 28.0) / 68.0) ** 2 + ((y + 28.0) / 55.0) ** 2 + ((z - 85.0) / 50.0) ** 2 <= 1.0
    aorta_asc = full((x - 4.0) ** 2 + (y + 12.0) ** 2 <= 15.0 ** 2) & full((z > 100) & (z < 150))
    arch = _tube(shape, (gx, gy, gz), np.array([4.0, -12.0, 150.0]), np.array([24.0, 58.0, 150.0]), 14.0, 13.0)
    trachea = full(x ** 2 + (y - 22.0) ** 2 <= 9.0 ** 2) & full(z > 140)
    bronchi = np.zeros(shape, dtype=bool)
    arteries = np.zeros(shape, dtype=bool)
    hila = {s: np.array([s * 58.0, 8.0, 125.0]) for s in (1.0, -1.0)}
    for s in (1.0, -1.0):
        tube = _tube(shape, (gx, gy, gz), np.array([0.0, 22.0, 140.0]), hila[s] + [0, 10, 0], 7.0, 5.0)
        bronchi |= tube
        tube = _tube(shape, (gx, gy, gz), np.array([10.0, -10.0, 118.0]), hila[s] - [0, 6, 0], 13.0, 10.0)
        arteries |= tube
    # the lungs: the thorax outside the mediastinum and the organs in it
    organs = spine | aorta_desc | oesophagus | heart | aorta_asc | arch | arteries
    lung_space = thorax & ~mediastinum & ~organs & ~spine
    lungs = lung_space & full(z < APEX_Z)
    hu[mediastinum] = -95.0
    hu[lungs] = -860.0
    # vessels branching from each hilum
    for s in (1.0, -1.0):
        stack = [(hila[s].copy(), 6.0, 0)]
        while stack:
            start, r, depth = stack.pop()
            for _ in range(2 if depth else 9):
                direction = rng.normal(size=3) + np.array([s * 1.2, 0.0, 0.0]) * (depth == 0)
                direction /= np.linalg.norm(direction)
                length = rng.uniform(30.0, 60.0)
                end = start + direction * length
                tube = _tube(shape, (gx, gy, gz), start, end, r, r * 0.7)
                tube &= lungs | full(np.abs(x) > 40)
                hu[tube & lungs] = blood if contrast else 40.0
                if depth < 2 and r * 0.7 > 1.2:
                    stack.append((end, r * 0.7, depth + 1))
    hu[mediastinum & organs] = 0.0
    hu[heart & thorax] = blood
    hu[aorta_asc | arch | aorta_desc] = blood
    hu[arteries & thorax] = blood
    hu[oesophagus & mediastinum] = 35.0
    hu[spine] = 380.0
    hu[(bronchi | trachea) & (thorax | full(z > APEX_Z - 10))] = -950.0

    # the mass
    truth = np.zeros(shape, dtype=bool)
    k = size
    if kind == "hilar":
        centre = hila[sign] + [sign * 12.0, -2.0, 0.0]
        truth = _lobulated(x, y, z, centre, (28 * k, 26 * k, 30 * k), rng) & full(thorax)
        truth &= ~full(spine)
        hu[truth] = 38.0
    elif kind == "anterior":
        centre = np.array([sign * 45.0, -70.0, 130.0])
        truth = _lobulated(x, y, z, centre, (30 * k, 24 * k, 28 * k), rng) & full(thorax)
        hu[truth] = 40.0
    elif kind == "wall_mediastinum":
        centre = np.array([sign * 80.0, -5.0, 160.0])
        truth = _lobulated(x, y, z, centre, (60 * k, 30 * k, 24 * k), rng, lobes=3) & full(thorax)
        hu[truth] = 36.0
    elif kind == "cavitating":
        centre = np.array([sign * 85.0, 15.0, 130.0])
        truth = _lobulated(x, y, z, centre, (27 * k, 25 * k, 26 * k), rng, lobes=3) & full(thorax)
        hu[truth] = 40.0
        cavity_air = ((x - centre[0] - 4) ** 2 + (y - centre[1] + 3) ** 2 + (z - centre[2]) ** 2
                      <= (14.0 * k) ** 2) & truth
        hu[cavity_air] = -960.0
    elif kind == "necrotic":
        centre = np.array([sign * 85.0, 20.0, 115.0])
        truth = _lobulated(x, y, z, centre, (30 * k, 28 * k, 30 * k), rng, lobes=3) & full(thorax)
        hu[truth] = 75.0 if contrast else 42.0
        core = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= (19.0 * k) ** 2) & truth
        hu[core] = 12.0
    elif kind == "part_solid":
        centre = np.array([sign * 85.0, -10.0, 135.0])
        truth = _lobulated(x, y, z, centre, (28 * k, 26 * k, 25 * k), rng, lobes=4) & full(lungs)
        ggo = rng.uniform(-700.0, -450.0)
        hu[truth] = np.where(hu[truth] > -200.0, hu[truth], ggo)  # vessels run through the ground glass
        solid = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= (9.0 * k) ** 2)
        hu[solid & truth] = 35.0
    elif kind == "atelectasis":
        centre = hila[sign] + [sign * 20.0, 0.0, 10.0]
        truth = _lobulated(x, y, z, centre, (22 * k, 22 * k, 24 * k), rng, lobes=3) & full(thorax)
        # the upper lobe distal to it (up and out) collapsed: a wedge of soft tissue against the wall
        collapsed = lungs & full(z > centre[2]) & full(sign * x > sign * centre[0] - 10) & full(y < 30) & ~truth
        collapsed &= full((z - centre[2]) < 0.9 * (sign * x - sign * centre[0] + 40))
        hu[collapsed] = blood + 30.0 if contrast else 38.0
        hu[truth] = 40.0
    elif kind == "effusion":
        centre = np.array([sign * 95.0, 60.0, 110.0])
        truth = _lobulated(x, y, z, centre, (26 * k, 24 * k, 28 * k), rng, lobes=3) & full(thorax)
        # fluid layering at the back of the cavity, below the mass's middle and beside it
        # a 25 mm layer: outside the cavity's outline moved 25 mm back
        back = full((x / 148.0) ** 2 + ((y - 3.0 + 25.0) / 100.0) ** 2 > 1.0) & full(sign * x > 20)
        fluid = thorax & back & full(z < 140) & ~truth & ~full(spine) & ~mediastinum
        hu[fluid] = 10.0
        hu[truth] = 40.0
    else:
        raise ValueError(kind)

    # thick slices: average the 1 mm ones (partial volume); noise after, at the same level on every slice
    # thickness (a scanner's thick slices are reconstructed to a similar noise)
    hu = ndimage.gaussian_filter(hu, (0.6, 0.6, 0.0))
    per = max(1, int(round(slice_mm / fine)))
    n = nz // per
    hu = hu[:, :, : n * per].reshape(nx, ny, n, per).mean(axis=3)
    truth = truth[:, :, : n * per].reshape(nx, ny, n, per).mean(axis=3) >= 0.5
    hu += rng.normal(0.0, 14.0, hu.shape).astype(np.float32)
    # (x, y, z) -> (z, y, x)
    data = np.ascontiguousarray(hu.transpose(2, 1, 0)).astype(np.float32)
    truth = np.ascontiguousarray(truth.transpose(2, 1, 0))
    spacing = (per * fine, pixel_mm, pixel_mm)
    origin = (float(gx[0]), float(gy[0]), float(per * fine / 2))
    volume = Volume.from_array(data, spacing=spacing, origin=origin, modality="CT")
    return MassChest(volume, truth, side, kind)
