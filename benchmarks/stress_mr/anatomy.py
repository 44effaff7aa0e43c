"""Random adult heads for the brain-MR stress benchmark: tissue classes and MS-like lesions in mm.

World axes are LPS (x towards the patient's left, y posterior, z superior), in mm, the brain's
centre near the origin. Nothing here is shared with `imaging.phantoms` or the tests' brains, on
which the lesion search was developed; the shapes (`benchmarks.stress.shapes`) are the CT stress
generator's.

Drawn from adult ranges (all in mm):

* **brain**: a cerebrum (an ellipsoid of half-widths 56-70 left-right, 74-90 front-back, 50-62
  up-down, its surface moved 2-5 mm by a smooth random field), a cerebellum below its back and a
  brainstem running down from its middle; around it a CSF layer (1-2.5 mm, up to 5 mm with
  atrophy), skull (4-8) and scalp (3-8).
* **grey matter**: a cortical ribbon 2.2-3.8 mm deep, folded into sulci (CSF sheets 8-22 mm deep,
  their depth varying, where a random field of 5-24 mm wavelengths crosses zero: 5-12 % of the
  folded zone, more with atrophy) lined with cortex (30-45 % of the folded zone);
  deep grey matter (thalamus, basal ganglia) beside the ventricles.
* **ventricles**: two lateral ventricles (frontal horn to atrium, with a temporal horn), a third
  and a fourth, their width scaled by an atrophy factor of 1-2.6 (young adult to atrophic); in a
  third of brains a thin bright periventricular lining (ependymal rim, not a lesion).
* **lesions**: 0-40 per brain (none in about 15 %), of four kinds: periventricular ovoids (long
  axis pointing away from the ventricle, Dawson's fingers), juxtacortical (touching the cortex),
  deep white-matter and infratentorial (brainstem, cerebellum), plus confluent periventricular
  plaques (three to six overlapping ovoids, scored as one lesion). Diameters 2-30 mm (most under
  10), their contrast over white matter drawn per lesion; a quarter are faint (a flat plateau
  without a bright core), the others brightest in the middle and fading outwards. A lesion's
  extent (its truth) is its half-maximum contour; it never covers CSF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from benchmarks.stress.anatomy import uniform
from benchmarks.stress.shapes import Capsule, Field

#: tissue classes of the label map
AIR, SCALP, SKULL, CSF, GM, WM, DEEP_GM, LINING = range(8)
TISSUES = ("air", "scalp", "skull", "csf", "grey_matter", "white_matter", "deep_grey_matter", "lining")
LESION_KINDS = ("periventricular", "juxtacortical", "deep_white_matter", "infratentorial", "confluent")


@dataclass
class Lesion:
    """One MS-like lesion: ellipsoids (several for a confluent plaque) with a contrast profile.

    ``contrast`` is the lesion's peak above white matter as a fraction of white matter on FLAIR;
    ``edge_width`` the logistic width of its fade (in units of its normalised radius: about 0.25
    fades gradually from a bright core, 0.06 is a flat plateau); the profile is half its peak on
    the ellipsoid's surface, the extent a rater draws.
    """

    kind: str
    centres: np.ndarray  # (k, 3) world x, y, z
    axes: np.ndarray  # (k, 3, 3) rows: unit axis directions
    radii: np.ndarray  # (k, 3)
    contrast: float
    edge_width: float
    faint: bool

    @property
    def diameter_mm(self) -> float:
        """Equivalent-sphere diameter of the largest part (a confluent plaque: of its volume sum)."""
        volume = float(np.sum(np.prod(self.radii, axis=1)))
        return 2.0 * volume ** (1.0 / 3.0)

    def bbox(self) -> tuple[float, float, float, float, float, float]:
        reach = self.radii.max(axis=1) * (1.0 + 4.0 * self.edge_width)
        lo = (self.centres - reach[:, None]).min(axis=0)
        hi = (self.centres + reach[:, None]).max(axis=0)
        return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])

    def radius(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Normalised ellipsoidal radius (the smallest over its parts): 1 on the surface."""
        out = None
        for c, ax, r in zip(self.centres, self.axes, self.radii):
            dx, dy, dz = x - c[0], y - c[1], z - c[2]
            rr = sum(((ax[i, 0] * dx + ax[i, 1] * dy + ax[i, 2] * dz) / r[i]) ** 2 for i in range(3))
            out = rr if out is None else np.minimum(out, rr)
        return np.sqrt(out)

    def profile(self, rho: np.ndarray) -> np.ndarray:
        """Contrast (fraction of white matter) at normalised radius ``rho``."""
        return (self.contrast / (1.0 + np.exp((rho - 1.0) / self.edge_width))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "diameter_mm": round(self.diameter_mm, 1), "contrast": round(self.contrast, 3),
                "faint": self.faint, "centre": [round(float(v), 1) for v in self.centres[0]]}


@dataclass
class Head:
    """A drawn head: the fields and shapes that decide each voxel's tissue, and its lesions."""

    cerebrum_centre: np.ndarray
    cerebrum_radii: np.ndarray
    cerebellum_centre: np.ndarray
    cerebellum_radii: np.ndarray
    brainstem: Capsule
    surface_bumps: Field
    bump_mm: float
    csf_mm: float
    skull_mm: float
    scalp_mm: float
    cortex_mm: float
    sulcus_field: Field
    sulcus_depth_mm: float
    sulcus_halfwidth: float  # field units: |f| below this is sulcal CSF ...
    cortex_halfwidth: float  # ... and below this (above the CSF's) the cortex lining the sulci
    ventricles: list[Capsule]
    deep_grey: list[tuple[np.ndarray, np.ndarray]]  # (centre, radii)
    lining_mm: float  # 0: none
    lesions: list[Lesion] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def extent(self) -> tuple[float, float, float, float, float, float]:
        """World box (x0, x1, y0, y1, z0, z1) of the head (scalp included)."""
        pad = self.bump_mm + self.csf_mm + self.skull_mm + self.scalp_mm + 2.0
        c, r = self.cerebrum_centre, self.cerebrum_radii
        bottom = min(self.brainstem.p1[2] - self.brainstem.radius,
                     self.cerebellum_centre[2] - self.cerebellum_radii[2]) - pad
        return (c[0] - r[0] - pad, c[0] + r[0] + pad, c[1] - r[1] - pad, c[1] + r[1] + pad, bottom, c[2] + r[2] + pad)

    def surface_distance(self, x: np.ndarray, y: np.ndarray,
                         z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(approximate signed distance in mm to the brain's surface, positive outside; the same
        for the cerebrum alone; the surface's bumps in mm), from the normalised radius of each part."""
        def ellipsoid(c: np.ndarray, r: np.ndarray) -> np.ndarray:
            rho = np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)
            return (rho - 1.0) * float(r.min())

        bumps = self.bump_mm * self.surface_bumps(x, y, z)
        cerebrum = ellipsoid(self.cerebrum_centre, self.cerebrum_radii) - bumps
        below = ellipsoid(self.cerebellum_centre, self.cerebellum_radii) - 0.5 * bumps
        stem = self.brainstem.distance(x, y, z) - self.brainstem.radius
        return np.minimum(np.minimum(cerebrum, below), stem), cerebrum, bumps

    def ventricle_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance (mm) outside the nearest ventricle's wall (negative inside)."""
        out = None
        for v in self.ventricles:
            d = v.distance(x, y, z) - v.radius
            out = d if out is None else np.minimum(out, d)
        return out

    def labels(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Tissue class (uint8) at broadcast world coordinates."""
        shape = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z))
        out = np.full(shape, AIR, dtype=np.uint8)
        outside, cerebrum, bumps = self.surface_distance(x, y, z)
        out[outside < self.csf_mm + self.skull_mm + self.scalp_mm] = SCALP
        out[outside < self.csf_mm + self.skull_mm] = SKULL
        out[outside < self.csf_mm] = CSF
        brain = outside < 0
        depth = -outside
        out[brain] = WM
        out[brain & (depth < self.cortex_mm)] = GM
        sulcal = np.abs(self.sulcus_field(x, y, z))
        # sulci are deeper in some places than others (the same smooth field as the surface's bumps)
        sulcus_depth = self.sulcus_depth_mm * (1.0 + 0.35 * bumps / max(self.bump_mm, 1e-6))
        fold = brain & (cerebrum < 0) & (depth < sulcus_depth + self.cortex_mm)
        # cortex lines each sulcus: the band around the CSF sheet is grey matter, gyri keep a
        # white-matter core
        out[fold & (sulcal < self.cortex_halfwidth)] = GM
        out[fold & (depth < sulcus_depth) & (sulcal < self.sulcus_halfwidth)] = CSF
        for c, r in self.deep_grey:
            inside = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0
            out[brain & inside] = DEEP_GM
        wall = self.ventricle_distance(x, y, z)
        if self.lining_mm > 0:
            out[brain & (wall < self.lining_mm)] = LINING
        out[brain & (wall < 0)] = CSF
        return out


def draw_head(rng: np.random.Generator, lesions: bool = True) -> Head:
    """A random head (see the module docstring); ``lesions`` False draws none."""
    atrophy = uniform(rng, 1.0, 2.6) if rng.random() < 0.6 else uniform(rng, 1.0, 1.4)
    radii = np.array([uniform(rng, 56, 70), uniform(rng, 74, 90), uniform(rng, 50, 62)]) / (1.0 + 0.04 * (atrophy - 1.0))
    centre = np.array([uniform(rng, -4, 4), uniform(rng, -6, 6), uniform(rng, 10, 20)])
    cb_radii = np.array([0.72 * radii[0], 0.33 * radii[1], 0.36 * radii[2]])
    cb_centre = centre + np.array([0.0, 0.5 * radii[1], -0.78 * radii[2]])
    stem = Capsule((centre[0], centre[1] + 0.12 * radii[1], centre[2] - 0.1 * radii[2]),
                   (centre[0], centre[1] + 0.22 * radii[1], centre[2] - 1.5 * radii[2]), uniform(rng, 9, 12.5))
    cortex = uniform(rng, 2.2, 3.8)
    wavelength = uniform(rng, 5, 8)
    csf_mm = uniform(rng, 1.0, 2.5) * atrophy ** 0.7
    # the sulcal field is about a unit normal: |f| < a covers 2 Phi(a) - 1 of the folded zone;
    # sulcal CSF takes 5-12 % of it (more with atrophy), the cortex lining it 30-45 %
    csf_share = min(uniform(rng, 0.05, 0.12) * atrophy, 0.3)
    cortex_share = uniform(rng, 0.3, 0.45)
    head = Head(
        cerebrum_centre=centre, cerebrum_radii=radii, cerebellum_centre=cb_centre, cerebellum_radii=cb_radii,
        brainstem=stem, surface_bumps=Field.random(rng, wavelength_mm=uniform(rng, 25, 45), modes=6), bump_mm=uniform(rng, 2, 5),
        csf_mm=csf_mm, skull_mm=uniform(rng, 4, 8), scalp_mm=uniform(rng, 3, 8), cortex_mm=cortex,
        sulcus_field=Field.random(rng, wavelength_mm=wavelength, modes=10),
        sulcus_depth_mm=uniform(rng, 8, 16) + 3.0 * (atrophy - 1.0),
        sulcus_halfwidth=float(ndtri(0.5 + csf_share / 2)),
        cortex_halfwidth=float(ndtri(0.5 + (csf_share + cortex_share) / 2)),
        ventricles=_ventricles(rng, centre, radii, atrophy), deep_grey=_deep_grey(rng, centre),
        lining_mm=uniform(rng, 0.8, 2.0) if rng.random() < 0.33 else 0.0,
        params={"atrophy": atrophy, "sulcus_wavelength_mm": wavelength, "cortex_mm": cortex, "csf_mm": csf_mm},
    )
    head.params["lining_mm"] = head.lining_mm
    if lesions:
        head.lesions = _lesions(rng, head)
    return head


def _ventricles(rng: np.random.Generator, c: np.ndarray, r: np.ndarray, atrophy: float) -> list[Capsule]:
    width = uniform(rng, 2.0, 3.5) * atrophy ** 0.8
    out = []
    for side in (-1.0, 1.0):
        off = side * uniform(rng, 5, 9) * (0.8 + 0.2 * atrophy)
        front = (c[0] + off, c[1] - 0.32 * r[1], c[2] + 0.2 * r[2])
        atrium = (c[0] + off * 1.9, c[1] + 0.28 * r[1], c[2] + 0.12 * r[2])
        temporal = (c[0] + side * 0.42 * r[0], c[1] - 0.05 * r[1], c[2] - 0.35 * r[2])
        out += [Capsule(front, atrium, width), Capsule(atrium, temporal, 0.45 * width)]
    third = 0.6 + 0.9 * (atrophy - 1.0)
    out.append(Capsule((c[0], c[1] - 0.12 * r[1], c[2] - 0.05 * r[2]), (c[0], c[1] + 0.08 * r[1], c[2] - 0.1 * r[2]),
                       third))
    out.append(Capsule((c[0], c[1] + 0.33 * r[1], c[2] - 0.55 * r[2]), (c[0], c[1] + 0.36 * r[1], c[2] - 0.7 * r[2]),
                       1.5 + 0.5 * (atrophy - 1.0)))
    return out


def _deep_grey(rng: np.random.Generator, c: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for side in (-1.0, 1.0):
        out.append((c + np.array([side * uniform(rng, 14, 18), uniform(rng, 2, 8), uniform(rng, -4, 2)]), np.array([uniform(rng, 6, 8), uniform(rng, 10, 14), uniform(rng, 7, 9)])))
        out.append((c + np.array([side * uniform(rng, 20, 25), uniform(rng, -14, -8), uniform(rng, 0, 6)]), np.array([uniform(rng, 5, 7), uniform(rng, 9, 12), uniform(rng, 7, 9)])))
    return out


def _random_axes(rng: np.random.Generator, long_axis: np.ndarray | None = None) -> np.ndarray:
    """Three orthonormal rows, the first ``long_axis`` (normalised) or random."""
    a = rng.normal(size=3) if long_axis is None else np.asarray(long_axis, float)
    a = a / np.linalg.norm(a)
    b = np.cross(a, rng.normal(size=3))
    b /= np.linalg.norm(b)
    return np.stack([a, b, np.cross(a, b)])


def _diameter(rng: np.random.Generator, lo: float = 2.0, hi: float = 30.0) -> float:
    """Lesion diameters: log-uniform 2.5-14 mm for most, up to ``hi`` for a tenth."""
    if rng.random() < 0.1:
        return float(np.exp(rng.uniform(np.log(12.0), np.log(hi))))
    return float(np.clip(np.exp(rng.uniform(np.log(2.5), np.log(14.0))), lo, hi))


def _lesion_count(rng: np.random.Generator) -> int:
    if rng.random() < 0.15:
        return 0
    return int(min(40, 1 + rng.geometric(1.0 / 10.0)))


def _contrast(rng: np.random.Generator) -> tuple[float, float, bool]:
    """(peak contrast over white matter, edge width, faint)."""
    if rng.random() < 0.25:
        return uniform(rng, 0.15, 0.3), uniform(rng, 0.05, 0.09), True
    return uniform(rng, 0.35, 1.0), uniform(rng, 0.12, 0.3), False


def _lesions(rng: np.random.Generator, head: Head) -> list[Lesion]:
    out: list[Lesion] = []
    wanted = _lesion_count(rng)
    kinds = rng.choice(LESION_KINDS, size=wanted, p=[0.42, 0.2, 0.2, 0.1, 0.08])
    for kind in kinds:
        for _ in range(30):  # a few tries to place it where its kind lies
            lesion = _place(rng, head, str(kind))
            if lesion is not None:
                out.append(lesion)
                break
    head.params["lesions_drawn"] = len(out)
    return out


def _place(rng: np.random.Generator, head: Head, kind: str) -> Lesion | None:
    contrast, width, faint = _contrast(rng)
    lateral = head.ventricles[:4]  # lateral ventricles and their temporal horns
    if kind in ("periventricular", "confluent"):
        parts = int(rng.integers(3, 7)) if kind == "confluent" else 1
        v = lateral[int(rng.integers(0, len(lateral)))]
        t = uniform(rng, 0.05, 0.95)
        p0, p1 = np.asarray(v.p0), np.asarray(v.p1)
        axis = _random_axes(rng, p1 - p0)
        angle = uniform(rng, 0, 2 * np.pi)
        normal = np.cos(angle) * axis[1] + np.sin(angle) * axis[2]
        centres, axes, radii = [], [], []
        for k in range(parts):
            d = _diameter(rng, 5.0, 22.0) if kind == "confluent" else _diameter(rng)
            elong = uniform(rng, 1.2, 2.0)
            r_short = 0.5 * d / elong ** (1.0 / 3.0)
            shift = (k - (parts - 1) / 2) * uniform(rng, 4, 8) * (p1 - p0) / np.linalg.norm(p1 - p0) if parts > 1 else 0.0
            centre = p0 + t * (p1 - p0) + normal * (v.radius + 0.5 * r_short * elong) + shift
            centres.append(centre)
            axes.append(_random_axes(rng, normal))
            radii.append([r_short * elong, r_short, r_short])
        if kind == "confluent":
            contrast, width, faint = max(contrast, 0.3), max(width, 0.12), False
        lesion = Lesion(kind, np.array(centres), np.array(axes), np.array(radii), contrast, width, faint)
    else:
        d = _diameter(rng, 2.0, 18.0 if kind != "deep_white_matter" else 30.0)
        radii3 = 0.5 * d * np.array([uniform(rng, 1.0, 1.5), 1.0, uniform(rng, 0.75, 1.0)])
        radii3 *= 0.5 * d / float(np.prod(radii3)) ** (1.0 / 3.0)
        c, r = head.cerebrum_centre, head.cerebrum_radii
        if kind == "infratentorial":
            if rng.random() < 0.5:
                s = head.brainstem
                centre = np.asarray(s.p0) + uniform(rng, 0.1, 0.5) * (np.asarray(s.p1) - np.asarray(s.p0))
                centre = centre + rng.normal(size=3) * np.array([0.4, 0.4, 0.0]) * s.radius
            else:
                centre = head.cerebellum_centre + rng.uniform(-0.6, 0.6, 3) * head.cerebellum_radii
        else:
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            direction[2] = abs(direction[2]) * 0.8  # supratentorial
            if kind == "juxtacortical":
                depth = head.cortex_mm + 0.45 * d
                scale = 1.0 / np.sqrt(np.sum((direction / r) ** 2))
                centre = c + direction * max(scale - depth - head.bump_mm, 5.0)
            else:
                centre = c + direction * r * uniform(rng, 0.25, 0.65)
        lesion = Lesion(kind, centre[None, :], _random_axes(rng)[None], radii3[None], contrast, width, faint)
    return lesion if _in_white_matter(head, lesion) else None


def _in_white_matter(head: Head, lesion: Lesion) -> bool:
    """Whether most of a lesion's centre part lies in white matter (juxtacortical ones also touch
    cortex; periventricular ones the ventricle wall)."""
    c = lesion.centres
    offsets = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    points = (c[:, None, :] + 0.5 * lesion.radii.min(axis=1)[:, None, None] * offsets[None]).reshape(-1, 3)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    labels = head.labels(x, y, z)
    return float(np.mean(np.isin(labels, (WM, LINING)))) >= 0.6
