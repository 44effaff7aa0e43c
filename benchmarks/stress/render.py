"""Render a drawn `Anatomy` as a CT scan with a scanner's geometry, blur, noise and artefacts.

Partial volume: labels are painted on sub-slices at most `SUBSLICE_MM` apart (as many per slice
as its thickness needs), HU are composed there and averaged into each slice; nodules (spheres) are
blended in with their exact fraction of each slice, so a 6 mm nodule on 5 mm slices is the faint,
one-or-two-slice blob a scanner makes. In-plane, a Gaussian point spread function (FWHM 0.9-1.4 mm)
blurs the edges, then noise (SD 5-40 HU, grain about a pixel wide), streaks from a dense point in
30 % of scans, and a circular reconstruction field padded with -1024, -2048 or -3024 HU in 35 %.
A truth mask holds the voxels more than half covered by its structure (none outside the circle).
The NIfTI carries no modality note unless asked (`write_case`): the loader must recognise CT
from its values.

Geometry (`draw_geometry`): slice thickness 0.5-5 mm (contiguous slices), in-plane spacing
0.5-1 mm, a field of view that may cut the body wall or the arms at its sides (never the thoracic
cavity: it keeps 5-25 mm beyond it on each side), and a voxel budget
(`GenerateOptions.max_voxels`): when a draw exceeds it the in-plane spacing is coarsened up to
1 mm, then the z range is cut to a window centred on the mid chest or on the lung bases with the
liver and spleen (a targeted scan; thin-slice cases are therefore shorter than a whole chest).
The file layout on disk is LPS, RAS or LAS, or oblique: the LPS layout with its affine rotated
5-20 degrees about x (a gantry-tilt-like plane) and up to 5 degrees about z.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy import ndimage

from benchmarks.stress.anatomy import (
    ABDOMEN,
    AIR,
    AIRWAY,
    FAT,
    LUNG_LEFT,
    LUNG_RIGHT,
    VESSEL_LEFT,
    VESSEL_RIGHT,
    Anatomy,
    Nodule,
    draw_anatomy,
)
from imaging.io.nifti import MODALITY_NOTE
from imaging.volume import axis_aligned_affine

#: thicknesses (mm) drawn for slices, as scanners reconstruct them
THICKNESSES = (0.5, 0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
LAYOUTS = ("LPS", "RAS", "LAS", "oblique")
#: padding values scanners write outside a circular reconstruction field
PADDING_HU = (-1024.0, -2048.0, -3024.0)
#: labels are painted on sub-slices at most this far apart (mm) and averaged into each slice
SUBSLICE_MM = 1.25
#: a nodule the scan shows less of than a sphere this wide (mm) is not truth (see `_drop_hidden_nodules`)
MIN_SHOWN_MM = 4.0


@dataclass
class GenerateOptions:
    """Limits of one generated case.

    Attributes:
        max_voxels: voxel budget (see the module docstring); default 12 million.
        min_inplane_mm: smallest in-plane spacing drawn (0.5 mm; tests raise it for speed).
        max_inplane_mm: largest in-plane spacing drawn and coarsened to (1.0 mm).
        thicknesses: slice thicknesses to draw from.
    """

    max_voxels: int = 12_000_000
    min_inplane_mm: float = 0.5
    max_inplane_mm: float = 1.0
    thicknesses: tuple[float, ...] = THICKNESSES


@dataclass
class Geometry:
    """The scan grid: slice thickness, in-plane spacing, world origin of voxel 0 and shape."""

    thickness_mm: float
    inplane_mm: float
    origin: tuple[float, float, float]  # LPS (x, y, z) of voxel (0, 0, 0)
    shape: tuple[int, int, int]  # (z, y, x)
    layout: str
    oblique_deg: tuple[float, float] = (0.0, 0.0)  # rotation about x then z
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.thickness_mm, self.inplane_mm, self.inplane_mm)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x, y, z (mm) of the voxel centres along each axis."""
        nz, ny, nx = self.shape
        ox, oy, oz = self.origin
        return (ox + self.inplane_mm * np.arange(nx), oy + self.inplane_mm * np.arange(ny),
                oz + self.thickness_mm * np.arange(nz))

    def affine(self) -> np.ndarray:
        """Index (z, y, x) -> LPS mm of the scan as written (rotated when oblique)."""
        base = axis_aligned_affine(self.spacing, self.origin)
        if self.layout != "oblique":
            return base
        tilt, yaw = np.radians(self.oblique_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        out = base.copy()
        out[:3, :4] = (rz @ rx) @ base[:3, :4]
        return out


@dataclass
class GeneratedCase:
    """One stress case: the scan (HU, canonical (z, y, x) LPS grid), truth masks and nodules."""

    seed: int
    hu: np.ndarray  # int16
    geometry: Geometry
    truth: dict[str, np.ndarray]
    nodules: list[Nodule]
    anatomy: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        g = self.geometry
        return {"seed": self.seed, "shape_zyx": list(g.shape), "thickness_mm": g.thickness_mm,
                "inplane_mm": round(g.inplane_mm, 3), "layout": g.layout,
                "oblique_deg": [round(v, 1) for v in g.oblique_deg], **g.params,
                **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.anatomy.items()},
                "nodules": [n.to_dict() for n in self.nodules]}


def draw_geometry(rng: np.random.Generator, anatomy: Anatomy, options: GenerateOptions) -> Geometry:
    """Slice thickness, spacing, field of view and layout of the scan (see the module docstring)."""
    x0, x1, y0, y1, z0, z1 = anatomy.extent
    p = anatomy.params
    thickness = float(rng.choice(options.thicknesses))
    inplane = float(rng.uniform(options.min_inplane_mm, options.max_inplane_mm))
    fov_x = (x1 - x0) * float(rng.uniform(0.85, 1.15))
    centre_x = float(rng.uniform(-15, 15))
    y_lo, y_hi = y0 - 15.0, y1 + 10.0
    # technologists cut the arms and the outer body wall, never the lungs or abdominal organs
    fov_x = max(fov_x, 2 * (p["cavity_half_width_mm"] + 20.0 + float(rng.uniform(0, 10))), 0.75 * (y_hi - y_lo))
    top = p["lung_apex_mm"] + float(rng.uniform(-10, 45))
    bottom = -float(rng.uniform(150, 230))
    geometry_params: dict[str, Any] = {"fov_x_mm": round(fov_x, 1), "body_cut_by_fov": bool(fov_x < x1 - x0)}

    def voxels(sp: float, zr: float) -> float:
        return (fov_x / sp) * ((y_hi - y_lo) / sp) * (zr / thickness)

    if voxels(inplane, top - bottom) > options.max_voxels:
        needed = float(np.sqrt(voxels(1.0, top - bottom) / options.max_voxels))
        inplane = min(options.max_inplane_mm, max(inplane, needed))
    if voxels(inplane, top - bottom) > options.max_voxels:
        z_range = options.max_voxels / voxels(inplane, 1.0)
        # a window on the mid chest (around the carina and hila) or on the lung bases with the
        # liver and spleen (the diaphragm domes are at z 0 to -25 mm)
        chest = rng.random() < 0.5
        centre = 0.45 * p["lung_apex_mm"] if chest else -40.0
        lo = float(np.clip(centre - z_range / 2, bottom, top - z_range))
        bottom, top = lo, lo + z_range
        geometry_params["z_window"] = "chest" if chest else "lung_bases_upper_abdomen"
    nx = int(round(fov_x / inplane))
    ny = int(round((y_hi - y_lo) / inplane))
    nz = max(int(round((top - bottom) / thickness)), 1)
    origin = (centre_x - fov_x / 2 + inplane / 2, y_lo, bottom)
    layout = str(rng.choice(LAYOUTS))
    oblique = (float(rng.uniform(5, 20)) * float(rng.choice([-1, 1])), float(rng.uniform(-5, 5))) \
        if layout == "oblique" else (0.0, 0.0)
    return Geometry(thickness, inplane, origin, (nz, ny, nx), layout, oblique, geometry_params)


def render(anatomy: Anatomy, geometry: Geometry) -> tuple[np.ndarray, dict[str, np.ndarray], list[float]]:
    """(HU before blur and noise as float32, truth masks, each nodule's painted volume in mm3).

    Truth masks are those of `Anatomy.truth_labels` plus ``nodules`` (int8: k + 1 where the painted
    part of nodule k covers more than half of the voxel). A nodule is painted into lung only, so
    one placed where a later layer (mediastinum, chest wall) covers the lung is partly or wholly
    invisible: its painted volume says how much of it the scan shows.
    """
    xs, ys, zs = geometry.axes()
    nz = len(zs)
    sub = max(1, int(np.ceil(geometry.thickness_mm / SUBSLICE_MM)))
    offsets = (np.arange(sub) + 0.5) / sub * geometry.thickness_mm - geometry.thickness_mm / 2
    hu = np.empty(geometry.shape, dtype=np.float32)
    truth = {name: np.zeros(geometry.shape, dtype=bool) for name in anatomy.truth_labels}
    truth["nodules"] = np.zeros(geometry.shape, dtype=np.int8)
    lut = np.zeros(256, dtype=np.float32)
    for label, value in anatomy.hu.items():
        lut[label] = value
    members = {}
    for name, labels_of in list(anatomy.truth_labels.items()) + [
            ("lung", (LUNG_LEFT, LUNG_RIGHT, VESSEL_LEFT, VESSEL_RIGHT)), ("vessel", (VESSEL_LEFT, VESSEL_RIGHT))]:
        members[name] = np.zeros(256, dtype=np.float32)
        members[name][list(labels_of)] = 1.0
    y_front = anatomy.extent[2]
    chunk = max(1, 48 // sub)
    painted = [0.0] * len(anatomy.nodules)
    for k0 in range(0, nz, chunk):
        k1 = min(nz, k0 + chunk)
        zsub = (zs[k0:k1, None] + offsets[None, :]).ravel()
        labels = paint(anatomy, xs, ys, zsub)
        values = lut[labels]
        _texture(anatomy, labels, values, xs, ys, zsub, y_front)
        shape = (k1 - k0, sub, len(ys), len(xs))
        hu[k0:k1] = values.reshape(shape).mean(axis=1)
        for name in anatomy.truth_labels:
            truth[name][k0:k1] = members[name][labels].reshape(shape).mean(axis=1) > 0.5
        lung_fraction = members["lung"][labels].reshape(shape).mean(axis=1)
        vessel_fraction = members["vessel"][labels].reshape(shape).mean(axis=1)
        for k, nodule in enumerate(anatomy.nodules):
            painted[k] += _add_nodule(nodule, k + 1, hu[k0:k1], truth["nodules"][k0:k1], lung_fraction,
                                      vessel_fraction, anatomy.hu, xs, ys, zs[k0:k1], geometry.thickness_mm)
    return hu, truth, painted


def _add_nodule(nodule: Nodule, index: int, hu: np.ndarray, truth: np.ndarray, lung_fraction: np.ndarray,
                vessel_fraction: np.ndarray, label_hu: dict[int, float], xs: np.ndarray, ys: np.ndarray,
                zs: np.ndarray, thickness: float) -> float:
    """Blend a spherical nodule into the lung part (aerated lung and its vessels) of a slab, with its
    exact fraction of each slice; return the volume painted (mm3).

    At in-plane distance rho from the centre the sphere spans z in [cz - h, cz + h],
    h = sqrt(r^2 - rho^2); a slice covers [z - t/2, z + t/2]; the overlap over t is the fraction.
    The nodule replaces what it covers: aerated lung by its HU difference to lung, a vessel's share
    by its difference to blood (adding the lung difference there too painted 200-750 HU spots where
    a juxtavascular nodule overlaps its vessel, which no CT shows).
    """
    (cx, cy, cz), r = nodule.centre, nodule.diameter_mm / 2
    ix, iy = index_range(xs, cx - r, cx + r), index_range(ys, cy - r, cy + r)
    iz = np.flatnonzero((zs + thickness / 2 >= cz - r) & (zs - thickness / 2 <= cz + r))
    if ix is None or iy is None or not len(iz):
        return 0.0
    zsel = slice(iz[0], iz[-1] + 1)
    rho2 = (xs[ix][None, None, :] - cx) ** 2 + (ys[iy][None, :, None] - cy) ** 2
    h = np.sqrt(np.maximum(r * r - rho2, 0.0))
    z = zs[zsel][:, None, None]
    overlap = np.minimum(z + thickness / 2, cz + h) - np.maximum(z - thickness / 2, cz - h)
    fraction = (np.clip(overlap, 0.0, None) / thickness).astype(np.float32)
    region = (zsel, iy, ix)
    shown = fraction * lung_fraction[region]
    vessel = vessel_fraction[region]
    hu[region] += fraction * ((lung_fraction[region] - vessel) * np.float32(nodule.hu - label_hu[LUNG_LEFT])
                              + vessel * np.float32(nodule.hu - label_hu[VESSEL_LEFT]))
    truth[region][shown > 0.5] = index
    return float(shown.sum()) * abs(xs[1] - xs[0]) * abs(ys[1] - ys[0]) * thickness


def paint(anatomy: Anatomy, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """The label map (z, y, x) of the anatomy at the given world axes (later layers win)."""
    labels = np.full((len(zs), len(ys), len(xs)), AIR, dtype=np.uint8)
    for layer in anatomy.layers:
        bx0, bx1, by0, by1, bz0, bz1 = layer.shape.bbox()
        ix = index_range(xs, bx0, bx1)
        iy = index_range(ys, by0, by1)
        iz = np.flatnonzero((zs >= bz0) & (zs <= bz1))
        if ix is None or iy is None or not len(iz):
            continue
        zsel = slice(iz[0], iz[-1] + 1)
        region = labels[zsel, iy, ix]
        inside = layer.shape.inside(xs[ix][None, None, :], ys[iy][None, :, None], zs[zsel][:, None, None])
        inside = np.broadcast_to(inside, region.shape)
        if layer.over is not None:
            allowed = np.zeros(256, dtype=bool)
            allowed[list(layer.over)] = True
            inside = inside & allowed[region]
        region[inside] = layer.label
    return labels


def index_range(axis: np.ndarray, lo: float, hi: float) -> slice | None:
    """The indices of the sorted sample positions ``axis`` within [lo, hi] (None when none are)."""
    i0, i1 = np.searchsorted(axis, lo), np.searchsorted(axis, hi, side="right")
    return slice(int(i0), int(i1)) if i1 > i0 else None


def _texture(anatomy: Anatomy, labels: np.ndarray, values: np.ndarray, xs: np.ndarray, ys: np.ndarray,
             zs: np.ndarray, y_front: float) -> None:
    """Bowel, fat and bowel gas mixed in the abdomen; denser dependent (posterior) lung."""
    abd = labels == ABDOMEN
    if abd.any():
        k, j, i = np.nonzero(abd)
        mix = anatomy.abdomen_field(xs[i], ys[j], zs[k])
        fat, gas = mix < -0.3, mix > anatomy.bowel_gas_level
        values[k[fat], j[fat], i[fat]] = anatomy.hu[FAT]
        values[k[gas], j[gas], i[gas]] = anatomy.hu[AIRWAY]
    lung = (labels == LUNG_LEFT) | (labels == LUNG_RIGHT)
    if lung.any():
        gradient = anatomy.lung_gradient_hu * np.clip((ys - y_front) / 250.0, 0, 1).astype(np.float32)
        values += np.where(lung, gradient[None, :, None], 0).astype(np.float32)


def scanner(hu: np.ndarray, geometry: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Point spread, noise, optional streaks and circular-FOV padding.

    Returns the int16 HU and the in-plane mask outside the reconstruction circle (None without one).
    """
    p = geometry.params
    fwhm = float(rng.uniform(0.9, 1.4))
    sigma_px = fwhm / 2.355 / geometry.inplane_mm
    out = ndimage.gaussian_filter(hu, (0, sigma_px, sigma_px))
    noise_sd = p["noise_sd_hu"] = round(float(rng.uniform(5, 40)), 1)
    white = rng.standard_normal(hu.shape, dtype=np.float32)
    grain = ndimage.gaussian_filter(white, (0, 0.6, 0.6))
    grain *= noise_sd / max(float(grain.std()), 1e-6)
    out += grain
    if rng.random() < 0.3:
        p["streaks"] = _streaks(out, geometry, rng)
    if rng.random() < 0.35:
        nz, ny, nx = hu.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        radius = 0.5 * max(nx, ny) * float(rng.uniform(0.95, 1.1))
        outside = (yy - ny / 2) ** 2 + (xx - nx / 2) ** 2 > radius**2
        pad = p["padding_hu"] = float(rng.choice(PADDING_HU))
        out[:, outside] = pad
        return np.clip(np.round(out), -3024, 3071).astype(np.int16), outside
    return np.clip(np.round(out), -3024, 3071).astype(np.int16), None


def _streaks(image: np.ndarray, geometry: Geometry, rng: np.random.Generator) -> dict[str, Any]:
    """Bright and dark lines radiating from a dense point (metal, contrast in a vein) on a few slices."""
    nz, ny, nx = image.shape
    cy, cx = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx
    k0 = int(rng.integers(0, nz))
    k1 = min(nz, k0 + max(1, int(rng.uniform(20, 60) / geometry.thickness_mm)))
    yy, xx = np.mgrid[0:ny, 0:nx]
    angle = np.arctan2(yy - cy, xx - cx)
    dist_mm = np.hypot(yy - cy, xx - cx) * geometry.inplane_mm
    amplitude = float(rng.uniform(50, 250))
    pattern = np.zeros((ny, nx), dtype=np.float32)
    for phi, sign in zip(rng.uniform(-np.pi, np.pi, int(rng.integers(6, 20))), rng.choice([-1.0, 1.0], 20)):
        d = np.angle(np.exp(1j * (angle - phi)))
        pattern += sign * np.exp(-(d / 0.01) ** 2)
    pattern *= amplitude / (1.0 + dist_mm / 60.0)
    image[k0:k1] += pattern
    return {"slices": [k0, k1], "amplitude_hu": round(amplitude, 1)}


def generate_case(seed: int, options: GenerateOptions | None = None) -> GeneratedCase:
    """The stress case of ``seed`` (deterministic)."""
    options = options or GenerateOptions()
    rng = np.random.default_rng(seed)
    anatomy = draw_anatomy(rng)
    geometry = draw_geometry(rng, anatomy, options)
    # only nodules whose centre the scan holds are truth (a z window or the field of view may cut others)
    lo = np.asarray(geometry.origin) - 0.5 * np.asarray(geometry.spacing[::-1])
    hi = lo + np.asarray(geometry.shape[::-1]) * np.asarray(geometry.spacing[::-1])
    anatomy.nodules = [n for n in anatomy.nodules if np.all((np.asarray(n.centre) >= lo) & (np.asarray(n.centre) < hi))]
    hu, truth, painted = render(anatomy, geometry)
    _drop_hidden_nodules(anatomy, truth["nodules"], painted)
    scan, outside = scanner(hu, geometry, rng)
    if outside is not None:  # nothing was reconstructed there, so there is nothing to find
        for mask in truth.values():
            mask[:, outside] = 0
    return GeneratedCase(seed, scan, geometry, truth, anatomy.nodules, anatomy.params)


def write_case(case: GeneratedCase, path: str | Path, declare_ct: bool = False) -> Path:
    """Write the scan as NIfTI in the case's layout (`write_layout`); `imaging.io.load` must give
    back ``case.hu``. ``declare_ct`` writes the ``modality=CT`` note of `imaging.writers.write_nifti`
    into ``descrip`` (a header fact); without it the loader has to recognise CT from the values."""
    return write_layout(case.hu, case.geometry, path, f"{MODALITY_NOTE}CT" if declare_ct else "")


def write_layout(data: np.ndarray, geometry: Geometry, path: str | Path, descrip: str = "") -> Path:
    """Write a canonical (z, y, x) LPS array as NIfTI in ``geometry``'s layout (its dtype kept).

    The array is transposed to (x, y, z) and reoriented to the layout's axis codes (RAS world:
    ``LPS`` stores i -> patient left, ``RAS`` i -> right, ``LAS`` i -> left with j -> anterior);
    ``oblique`` keeps the LPS layout with a rotated affine.
    """
    out = Path(path)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine = lps_to_ras @ geometry.affine()[:, [2, 1, 0, 3]]
    stored = data.transpose(2, 1, 0)
    codes = {"LPS": ("L", "P", "S"), "RAS": ("R", "A", "S"), "LAS": ("L", "A", "S"), "oblique": ("L", "P", "S")}
    xform = ornt_transform(axcodes2ornt(("L", "P", "S")), axcodes2ornt(codes[geometry.layout]))
    affine = affine @ inv_ornt_aff(xform, stored.shape)
    img = nib.Nifti1Image(np.ascontiguousarray(apply_orientation(stored, xform)), affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm")
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    if descrip:
        img.header["descrip"] = descrip.encode()
    nib.save(img, str(out))
    return out


def _drop_hidden_nodules(anatomy: Anatomy, labels: np.ndarray, painted: list[float]) -> None:
    """Keep as truth only nodules the scan shows at least ``MIN_SHOWN_MM`` across (painted volume as
    a sphere's); renumber the label map to match. A nodule drawn under mediastinum or chest wall is
    not in the image, so counting it as missed would charge the segmenter for the generator."""
    keep = [k for k, v in enumerate(painted) if (6.0 * v / np.pi) ** (1 / 3) >= MIN_SHOWN_MM]
    lut = np.zeros(len(painted) + 1, dtype=labels.dtype)
    for new, k in enumerate(keep, start=1):
        lut[k + 1] = new
    labels[...] = lut[labels]
    anatomy.nodules = [anatomy.nodules[k] for k in keep]
