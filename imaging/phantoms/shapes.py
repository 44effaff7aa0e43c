"""Analytic shapes in millimetres and the voxel grid they are sampled on.

Anatomy is described by implicit shapes in LPS world millimetres (x -> patient Left,
y -> Posterior, z -> Superior). A shape is sampled by evaluating it at voxel centres, only inside
its bounding box, through broadcasting over the grid's 1-D coordinate vectors. The same shape
sampled at two spacings therefore depicts the same anatomy, up to sampling error.

All shape methods take broadcastable coordinate arrays ``x, y, z`` in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from imaging.errors import MMReasonError
from imaging.volume import Volume, axis_aligned_affine

XYZ = tuple[float, float, float]
INF = math.inf
#: phantoms refuse grids larger than this many voxels (about 250 MB of float32 per volume)
MAX_VOXELS = 64_000_000


class PhantomError(MMReasonError, ValueError):
    """A phantom cannot be built with the requested parameters."""


class Shape(Protocol):
    def bounds(self) -> tuple[XYZ, XYZ]:
        """Lower and upper (x, y, z) mm corners of a box holding the shape (may be infinite)."""

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean array: which points lie inside."""


def _rotate_xy(dx: np.ndarray, dy: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame rotated by ``angle_deg`` about z (x towards y)."""
    if angle_deg == 0.0:
        return dx, dy
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return c * dx + s * dy, -s * dx + c * dy


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with semi-axes ``radii`` (x, y, z) mm, optionally rotated about z."""

    center: XYZ
    radii: XYZ
    angle_deg: float = 0.0

    def bounds(self) -> tuple[XYZ, XYZ]:
        cx, cy, cz = self.center
        rx, ry, rz = self.radii
        # a rotated ellipse fits in the circle of its larger semi-axis
        ex, ey = (max(rx, ry),) * 2 if self.angle_deg else (rx, ry)
        return (cx - ex, cy - ey, cz - rz), (cx + ex, cy + ey, cz + rz)

    def level(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Normalised radius squared: < 1 inside, 1 on the surface."""
        u, v = _rotate_xy(x - self.center[0], y - self.center[1], self.angle_deg)
        rx, ry, rz = self.radii
        return (u / rx) ** 2 + (v / ry) ** 2 + ((z - self.center[2]) / rz) ** 2

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.level(x, y, z) <= 1.0

    def grown(self, mm: float) -> "Ellipsoid":
        return Ellipsoid(self.center, tuple(r + mm for r in self.radii), self.angle_deg)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Cylinder:
    """Prism along z with a superelliptic cross-section ``|dx/a|^n + |dy/b|^n <= 1``.

    ``exponent`` 2 is an elliptic cylinder; larger values square the corners (a torso).
    """

    center_xy: tuple[float, float]
    radii_xy: tuple[float, float]
    z_range: tuple[float, float] = (-INF, INF)
    exponent: float = 2.0

    def bounds(self) -> tuple[XYZ, XYZ]:
        (cx, cy), (a, b) = self.center_xy, self.radii_xy
        return (cx - a, cy - b, self.z_range[0]), (cx + a, cy + b, self.z_range[1])

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        (cx, cy), (a, b) = self.center_xy, self.radii_xy
        n = self.exponent
        inside = np.abs((x - cx) / a) ** n + np.abs((y - cy) / b) ** n <= 1.0
        if math.isfinite(self.z_range[0]) or math.isfinite(self.z_range[1]):
            inside = inside & (z >= self.z_range[0]) & (z <= self.z_range[1])
        return inside

    def grown(self, mm: float) -> "Cylinder":
        a, b = self.radii_xy
        return Cylinder(self.center_xy, (a + mm, b + mm), self.z_range, self.exponent)


@dataclass(frozen=True)
class Capsule:
    """All points within ``radius`` mm of the segment ``start``-``end`` (a vessel, an airway)."""

    start: XYZ
    end: XYZ
    radius: float

    def bounds(self) -> tuple[XYZ, XYZ]:
        lo = tuple(min(a, b) - self.radius for a, b in zip(self.start, self.end))
        hi = tuple(max(a, b) + self.radius for a, b in zip(self.start, self.end))
        return lo, hi  # type: ignore[return-value]

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        p0 = np.asarray(self.start, dtype=np.float64)
        d = np.asarray(self.end, dtype=np.float64) - p0
        dd = float(d @ d) or 1.0
        rx, ry, rz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((rx * d[0] + ry * d[1] + rz * d[2]) / dd, 0.0, 1.0)
        return np.sqrt((rx - t * d[0]) ** 2 + (ry - t * d[1]) ** 2 + (rz - t * d[2]) ** 2) - self.radius

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.signed_distance(x, y, z) <= 0.0

    def grown(self, mm: float) -> "Capsule":
        return Capsule(self.start, self.end, self.radius + mm)


@dataclass(frozen=True)
class Ball:
    """A sphere of ``diameter`` mm (nodules, lesions)."""

    center: XYZ
    diameter: float

    @property
    def radius(self) -> float:
        return self.diameter / 2.0

    @property
    def volume_mm3(self) -> float:
        return math.pi * self.diameter**3 / 6.0

    def bounds(self) -> tuple[XYZ, XYZ]:
        r = self.radius
        return tuple(c - r for c in self.center), tuple(c + r for c in self.center)  # type: ignore[return-value]

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        cx, cy, cz = self.center
        return np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) - self.radius

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.signed_distance(x, y, z) <= 0.0

    def grown(self, mm: float) -> "Ball":
        return Ball(self.center, self.diameter + 2.0 * mm)


@dataclass(frozen=True)
class Implicit:
    """Any shape given as a membership function and a bounding box (compositions of shapes)."""

    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    lo: XYZ
    hi: XYZ

    def bounds(self) -> tuple[XYZ, XYZ]:
        return self.lo, self.hi

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.fn(x, y, z)


@dataclass(frozen=True)
class Grid:
    """Voxel centres of a phantom volume in LPS mm.

    Attributes:
        shape: voxel counts (z, y, x).
        spacing: voxel size (z, y, x) in mm.
        origin: LPS position (x, y, z) mm of voxel (0, 0, 0).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: XYZ
    _axes: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # voxel axis 0 (z) -> world z, 1 (y) -> world y, 2 (x) -> world x
        axes = tuple(
            self.origin[2 - a] + self.spacing[a] * np.arange(self.shape[a], dtype=np.float64) for a in range(3)
        )
        object.__setattr__(self, "_axes", axes)

    @classmethod
    def centred(cls, fov_mm: tuple[float, float, float], spacing: tuple[float, float, float]) -> "Grid":
        """A grid covering ``fov_mm`` (z, y, x) centred on world (0, 0, 0) with ``spacing`` (z, y, x).

        The voxel count per axis is ``round(fov / spacing)`` (at least 1); the grid is centred so
        the world origin is the middle of the field of view whatever the rounding.
        """
        spacing = tuple(float(s) for s in spacing)
        if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise PhantomError(f"spacing must be three positive mm values (z, y, x), got {spacing}")
        shape = tuple(max(1, int(round(f / s))) for f, s in zip(fov_mm, spacing))
        if math.prod(shape) > MAX_VOXELS:
            raise PhantomError(
                f"spacing {spacing} gives {shape} = {math.prod(shape):,} voxels over a {fov_mm} mm field "
                f"of view; use a coarser spacing (at most {MAX_VOXELS:,} voxels)"
            )
        oz, oy, ox = (-(n - 1) / 2.0 * s for n, s in zip(shape, spacing))
        return cls(shape=shape, spacing=spacing, origin=(ox, oy, oz))  # type: ignore[arg-type]

    @property
    def x(self) -> np.ndarray:
        """LPS x in mm (towards patient Left) of the voxel centres along voxel axis x."""
        return self._axes[2]

    @property
    def y(self) -> np.ndarray:
        """LPS y in mm (towards Posterior) of the voxel centres along voxel axis y."""
        return self._axes[1]

    @property
    def z(self) -> np.ndarray:
        """LPS z in mm (towards Superior) of the voxel centres along voxel axis z."""
        return self._axes[0]

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def affine(self) -> np.ndarray:
        return axis_aligned_affine(self.spacing, self.origin)

    def world_to_voxel(self, xyz: XYZ) -> np.ndarray:
        """LPS mm (x, y, z) -> continuous voxel (z, y, x)."""
        return np.array([(xyz[2 - a] - self.origin[2 - a]) / self.spacing[a] for a in range(3)])

    def voxel_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """Continuous voxel (z, y, x) -> LPS mm (x, y, z)."""
        return np.array([self.origin[w] + self.spacing[2 - w] * float(zyx[2 - w]) for w in range(3)])

    def window(
        self, lo: XYZ, hi: XYZ
    ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """Voxel slices covering the world box ``lo``..``hi`` and its broadcastable x, y, z (mm).

        Returns ``None`` when the box misses the grid.
        """
        slices = []
        for a in range(3):
            w = 2 - a
            o, s = self.origin[w], self.spacing[a]
            start = math.ceil((lo[w] - o) / s - 1e-9) if math.isfinite(lo[w]) else 0
            stop = math.floor((hi[w] - o) / s + 1e-9) + 1 if math.isfinite(hi[w]) else self.shape[a]
            start, stop = max(start, 0), min(stop, self.shape[a])
            if stop <= start:
                return None
            slices.append(slice(start, stop))
        sz, sy, sx = slices
        return (
            (sz, sy, sx),
            self.x[sx][None, None, :],
            self.y[sy][None, :, None],
            self.z[sz][:, None, None],
        )

    def mask(self, shape: Shape, pad_mm: float = 0.0) -> np.ndarray:
        """Full-size boolean mask of ``shape`` (evaluated inside its bounding box only)."""
        out = np.zeros(self.shape, dtype=bool)
        lo, hi = shape.bounds()
        win = self.window(tuple(v - pad_mm for v in lo), tuple(v + pad_mm for v in hi))  # type: ignore[arg-type]
        if win is not None:
            sl, x, y, z = win
            out[sl] = np.broadcast_to(shape.contains(x, y, z), out[sl].shape)
        return out

    def paint(self, data: np.ndarray, shape: Shape, value: float) -> None:
        """Set ``data`` to ``value`` inside ``shape`` (in place)."""
        win = self.window(*shape.bounds())
        if win is not None:
            sl, x, y, z = win
            inside = np.broadcast_to(shape.contains(x, y, z), data[sl].shape)
            data[sl][inside] = value

    def paint_smooth(self, data: np.ndarray, shape: Ball | Capsule, value: float, edge_mm: float) -> None:
        """Blend ``value`` into ``data`` with a linear edge ``edge_mm`` wide centred on the surface.

        Models the partial-volume boundary of small round structures: a voxel whose centre is on
        the surface gets half of ``value``. Does not change which voxels count as inside.
        """
        lo, hi = shape.bounds()
        half = edge_mm / 2.0
        win = self.window(tuple(v - half for v in lo), tuple(v + half for v in hi))  # type: ignore[arg-type]
        if win is None:
            return
        sl, x, y, z = win
        frac = np.clip(0.5 - shape.signed_distance(x, y, z) / max(edge_mm, 1e-6), 0.0, 1.0)
        sub = data[sl]
        sub += (value - sub) * frac.astype(np.float32)

    def to_volume(self, data: np.ndarray, modality: str, name: str) -> Volume:
        return Volume(
            data=data.astype(np.float32, copy=False), spacing=self.spacing, affine=self.affine,
            modality=modality, name=name,
        )


def shell_points(center: XYZ, radius: float) -> np.ndarray:
    """The centre and 26 points at ``radius`` mm around it (axes, edges, corners) as (27, 3)."""
    d = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)
    norms = np.linalg.norm(d, axis=1)
    norms[norms == 0] = 1.0
    return np.asarray(center, dtype=np.float64) + radius * d / norms[:, None]


def place_ball(
    rng: np.random.Generator,
    region: Shape,
    diameter: float,
    margin_mm: float,
    keep_out: list[Shape] | tuple[Shape, ...] = (),
    attempts: int = 4000,
) -> XYZ:
    """A random centre (x, y, z) mm for a ball of ``diameter`` mm that lies inside ``region``.

    The ball grown by ``margin_mm`` must be inside ``region`` (checked at the centre and 26 points
    on its surface). The centre must lie outside every ``keep_out`` shape: grow those by the
    ball's radius plus a clearance to keep the ball itself clear of them.
    """
    lo, hi = np.asarray(region.bounds()[0]), np.asarray(region.bounds()[1])
    check_r = diameter / 2.0 + margin_mm
    error = PhantomError(
        f"could not fit a {diameter:g} mm lesion with a {margin_mm:g} mm margin in the organ; "
        "use a smaller diameter or give its centre explicitly"
    )
    if np.any(hi - lo < 2.0 * check_r):
        raise error
    batch = 200
    for _ in range(max(1, attempts // batch)):
        cands = rng.uniform(lo + check_r, hi - check_r, size=(batch, 3))
        pts = np.concatenate([shell_points(tuple(c), check_r) for c in cands])  # (batch*27, 3)
        ok = region.contains(pts[:, 0], pts[:, 1], pts[:, 2]).reshape(batch, 27).all(axis=1)
        for shape in keep_out:
            ok &= ~shape.contains(cands[:, 0], cands[:, 1], cands[:, 2])
        good = np.flatnonzero(ok)
        if good.size:
            return tuple(float(v) for v in cands[good[0]])  # type: ignore[return-value]
    raise error
