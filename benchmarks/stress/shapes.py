"""Solid shapes for the stress generator: inside tests on broadcast world coordinates (mm).

Every shape answers ``inside(x, y, z)`` for arrays that broadcast to (z, y, x) (``x`` of shape
(1, 1, nx), ``y`` (1, ny, 1), ``z`` (nz, 1, 1)) and gives a world bounding box
``(x0, x1, y0, y1, z0, z1)`` so the painter only evaluates it where it can be. World axes are LPS
(x towards the patient's left, y posterior, z superior), in mm. Nothing here is shared with
`imaging.phantoms`: the benchmark's anatomy must not be the one the segmenters were tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

Box = tuple[float, float, float, float, float, float]
Clip = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Shape(Protocol):
    def bbox(self) -> Box: ...

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...


@dataclass
class Field:
    """A smooth random field: a sum of a few random plane waves, unit standard deviation.

    ``wavelength_mm`` sets the smallest feature size; amplitudes fall with frequency.
    """

    k: np.ndarray  # (n, 3) wave vectors (rad/mm) for x, y, z
    phase: np.ndarray  # (n,)
    weight: np.ndarray  # (n,)

    @classmethod
    def random(cls, rng: np.random.Generator, wavelength_mm: float = 60.0, modes: int = 6) -> "Field":
        directions = rng.normal(size=(modes, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = wavelength_mm * rng.uniform(1.0, 3.0, size=modes)
        k = directions * (2 * np.pi / wavelengths)[:, None]
        weight = wavelengths / wavelengths.sum()
        weight = weight / np.sqrt(0.5 * np.sum(weight**2))  # unit standard deviation
        return cls(k=k, phase=rng.uniform(0, 2 * np.pi, size=modes), weight=weight)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        # sin(a + b) = sin a cos b + cos a sin b with a from (x, y) and b from z: the sines are
        # taken on the smaller in-plane and z arrays, not on the whole 3-D block
        out = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), dtype=np.float32)
        for (kx, ky, kz), ph, w in zip(self.k, self.phase, self.weight):
            a = (kx * x + ky * y + ph).astype(np.float32)
            b = (kz * z).astype(np.float32)
            out += w * (np.sin(a) * np.cos(b) + np.cos(a) * np.sin(b))
        return out


def power(u: np.ndarray, n: float) -> np.ndarray:
    """``|u| ** n`` for the exponents `SuperEllipseColumn` uses, without a general float power."""
    u = np.abs(u)
    if n == 1.0:
        return u
    if n == 1.5:
        return u * np.sqrt(u)
    if n == 2.0:
        return u * u
    if n == 2.5:
        return u * u * np.sqrt(u)
    if n == 3.0:
        return u * u * u
    return u**n


@dataclass
class Profile:
    """A value that varies piecewise-linearly with z (knots in mm)."""

    z: np.ndarray
    v: np.ndarray

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.z, self.v).astype(np.float32)

    def max(self) -> float:
        return float(np.max(self.v))


@dataclass
class SuperEllipseColumn:
    """A column along z whose axial section is ``|dx/a|^n + |dy/b|^n <= 1``.

    ``a``, ``b``, ``cx`` and ``cy`` are profiles in z; ``shrink_x`` and ``shrink_y`` (mm) make an
    inner column (a muscle shell, the thoracic cavity) that follows the same outline; ``bumps``
    (a `Field`) moves the outline by up to ``amp_mm`` (a smooth, patient-specific bumpiness). An
    inner column shrunk unevenly can reach its outer one where the outline turns (a superellipse
    shrunk along its axes is no parallel curve); ``within`` and ``min_depth_mm`` keep it at least
    that deep inside ``within`` everywhere (a chest wall never thinner than drawn).
    """

    cx: Profile
    cy: Profile
    a: Profile
    b: Profile
    n: float
    z0: float
    z1: float
    shrink_x: float = 0.0
    shrink_y_front: float = 0.0
    shrink_y_back: float = 0.0
    bumps: Field | None = None
    amp_mm: float = 0.0
    within: "SuperEllipseColumn | None" = None
    min_depth_mm: float = 0.0

    def section(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cx, cy, a, b) at each z after the shrink."""
        a = self.a(z) - self.shrink_x
        b = self.b(z) - 0.5 * (self.shrink_y_front + self.shrink_y_back)
        cy = self.cy(z) + 0.5 * (self.shrink_y_front - self.shrink_y_back)
        return self.cx(z), cy, np.maximum(a, 1.0), np.maximum(b, 1.0)

    def bbox(self) -> Box:
        zs = np.linspace(self.z0, self.z1, 64)
        cx, cy, a, b = self.section(zs)
        m = self.amp_mm
        return (float((cx - a).min() - m), float((cx + a).max() + m), float((cy - b).min() - m),
                float((cy + b).max() + m), self.z0, self.z1)

    def _outline(self, x: np.ndarray, y: np.ndarray, z: np.ndarray):
        cx, cy, a, b = self.section(z)
        if self.bumps is not None and self.amp_mm:
            bump = self.amp_mm * self.bumps(x, y, z)
            a, b = a + bump, b + bump
        return (x - cx) / a, (y - cy) / b, a, b

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        u, v, _, _ = self._outline(x, y, z)
        out = (power(u, self.n) + power(v, self.n) <= 1.0) & (z >= self.z0) & (z <= self.z1)
        if self.within is not None and self.min_depth_mm > 0:
            out &= self.within.depth(x, y, z) >= self.min_depth_mm
        return out

    def depth(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate distance (mm) inside the outline: (1 - r) / |grad r| of the normalised radius r."""
        u, v, a, b = self._outline(x, y, z)
        n = self.n
        r = (power(u, n) + power(v, n)) ** (1.0 / n)
        grad = np.maximum(r, 1e-6) ** (1.0 - n) * np.sqrt((power(u, n - 1) / a) ** 2 + (power(v, n - 1) / b) ** 2)
        return (1.0 - r) / np.maximum(grad, 1e-9)


@dataclass
class Ellipsoid:
    """An axis-aligned ellipsoid, its surface moved by ``amp_mm`` of ``bumps``, cut by ``clips``."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    bumps: Field | None = None
    amp_mm: float = 0.0
    clips: list[Clip] = field(default_factory=list)

    def bbox(self) -> Box:
        (cx, cy, cz), (rx, ry, rz), m = self.centre, self.radii, self.amp_mm
        return (cx - rx - m, cx + rx + m, cy - ry - m, cy + ry + m, cz - rz - m, cz + rz + m)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        (cx, cy, cz), (rx, ry, rz) = self.centre, self.radii
        r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2)
        if self.bumps is not None and self.amp_mm:
            # near the surface r - 1 is about (distance in mm) / radius
            r = r - self.amp_mm * self.bumps(x, y, z) / min(self.radii)
        out = r <= 1.0
        for clip in self.clips:
            out &= clip(x, y, z)
        return out


@dataclass
class Capsule:
    """A tube of radius ``radius`` (mm) from ``p0`` to ``p1`` with round ends."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float

    def bbox(self) -> Box:
        lo = np.minimum(self.p0, self.p1) - self.radius
        hi = np.maximum(self.p0, self.p1) + self.radius
        return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        p0, d = np.asarray(self.p0, float), np.asarray(self.p1, float) - np.asarray(self.p0, float)
        length2 = max(float(d @ d), 1e-9)
        dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) / length2, 0.0, 1.0)
        return np.sqrt((dx - t * d[0]) ** 2 + (dy - t * d[1]) ** 2 + (dz - t * d[2]) ** 2)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.distance(x, y, z) <= self.radius


@dataclass
class Slab:
    """Everything between ``y0`` and ``y1`` (mm) over the x and z ranges given (the table)."""

    y0: float
    y1: float
    x0: float = -1e4
    x1: float = 1e4
    z0: float = -1e4
    z1: float = 1e4
    sag_per_mm2: float = 0.0  # the table's top curves up by this much (mm per mm^2 of x)

    def bbox(self) -> Box:
        return (self.x0, self.x1, self.y0 - 200.0 * (self.sag_per_mm2 > 0), self.y1, self.z0, self.z1)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        curve = self.sag_per_mm2 * x**2
        return (y >= self.y0 - curve) & (y <= self.y1 - curve) & (z >= self.z0) & (z <= self.z1) & (x >= self.x0) & (
            x <= self.x1)


@dataclass
class Region:
    """Where ``clip`` holds, within ``box`` (for shapes defined by surfaces, like a lung)."""

    box: Box
    clip: Clip

    def bbox(self) -> Box:
        return self.box

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.clip(x, y, z)


@dataclass
class Carved:
    """``base`` without the ``minus`` shapes and inside every ``clip``."""

    base: Shape
    minus: list[Shape] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)

    def bbox(self) -> Box:
        return self.base.bbox()

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = self.base.inside(x, y, z)
        for clip in self.clips:
            out = out & clip(x, y, z)
        for shape in self.minus:
            out = out & ~shape.inside(x, y, z)
        return out
