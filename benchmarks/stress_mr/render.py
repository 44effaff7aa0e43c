"""Render a drawn `Head` as a brain MR (FLAIR, or T2 / T1 to check the sequence checks) on a scanner grid.

Partial volume: tissue labels and lesion profiles are evaluated on sub-slices at most
`SUBSLICE_MM` apart (as many per slice as its thickness needs) and averaged into each slice, so a
3 mm lesion on 5 mm slices is the faint one-slice blob a 2-D FLAIR shows, and CSF averages with the
white matter at each ventricle's wall. A lesion's truth holds the voxels more than half covered by
its extent (`Lesion`, half-maximum contour); a lesion no voxel of which is half covered is not in
the image and not truth.

Contrast (white matter 1; `CONTRASTS` gives the ranges, drawn per case): FLAIR has suppressed CSF
(0.05-0.35), grey matter 1.05-1.3 over white matter, lesions brighter by their drawn contrast; T2
has bright CSF (2.5-4) and bright lesions; T1 dark CSF, grey matter darker than white matter and
lesions dark. Then anatomical texture (smoothed noise, 4-9 % of white matter: real N4-corrected FLAIR white matter spreads about 10 %), an in-plane point
spread (FWHM 0.8-1.5 voxels), a multiplicative bias field (smooth, +-3-20 %), a scanner scale
(white matter at 200-2000) and Rician noise (SD 1.5-7 % of white matter, magnitude of a complex
Gaussian, so the background is Rayleigh). A third of the scans are skull-stripped: outside the
brain (and its surrounding CSF) every voxel is 0.

Geometry (`draw_geometry`): axial slices 1-6 mm thick (contiguous), in-plane 0.5-1.2 mm, a field of
view that in some scans cuts the scalp and skull at its sides, the vertex at its top (up to 20 mm of
brain) or the cerebellum at its bottom; a voxel budget (`MROptions.max_voxels`) coarsens the
in-plane spacing up to 1.2 mm, then shortens the z range about the brain's middle. The layout on
disk is LPS, RAS, LAS or oblique (`benchmarks.stress.render.write_layout`, shared with the CT stress
generator). The file's name carries the sequence (``case_FLAIR.nii.gz``) in 80 % of cases; the
others leave it to the image's own contrast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.stress.render import LAYOUTS, Geometry, index_range, write_layout
from benchmarks.stress.shapes import Field
from benchmarks.stress_mr.anatomy import AIR, CSF, DEEP_GM, GM, LINING, SCALP, SKULL, WM, Head, Lesion, draw_head
from imaging.io.nifti import MODALITY_NOTE

#: thicknesses (mm) of axial MR slices: 3-D FLAIR (1-1.5 mm) to 2-D FLAIR (3-6 mm)
THICKNESSES = (1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
#: labels and lesions are evaluated on sub-slices at most this far apart (mm)
SUBSLICE_MM = 0.75
SEQUENCES = ("FLAIR", "T2", "T1")
#: per sequence: tissue -> (low, high) intensity relative to white matter, and the sign and scale
#: of a lesion's contrast
CONTRASTS: dict[str, dict[Any, tuple[float, float]]] = {
    "FLAIR": {AIR: (0.0, 0.0), SCALP: (0.5, 1.3), SKULL: (0.03, 0.12), CSF: (0.05, 0.35), GM: (1.05, 1.3),
              WM: (1.0, 1.0), DEEP_GM: (1.0, 1.2), LINING: (1.1, 1.35), "lesion": (1.0, 1.0)},
    "T2": {AIR: (0.0, 0.0), SCALP: (0.7, 1.2), SKULL: (0.03, 0.12), CSF: (2.5, 4.0), GM: (1.2, 1.6),
           WM: (1.0, 1.0), DEEP_GM: (1.1, 1.4), LINING: (1.3, 1.8), "lesion": (1.2, 1.8)},
    "T1": {AIR: (0.0, 0.0), SCALP: (1.1, 1.6), SKULL: (0.03, 0.12), CSF: (0.2, 0.4), GM: (0.6, 0.8),
           WM: (1.0, 1.0), DEEP_GM: (0.7, 0.85), LINING: (0.9, 1.0), "lesion": (-0.7, -0.4)},
}
#: tissues a lesion may cover (never CSF, skull or scalp)
LESION_TISSUES = (WM, GM, DEEP_GM, LINING)


@dataclass
class MROptions:
    """Limits of one generated case.

    Attributes:
        max_voxels: voxel budget (default 6 million; see the module docstring).
        min_inplane_mm, max_inplane_mm: in-plane spacing range (0.5-1.2 mm; tests raise the lower end).
        thicknesses: slice thicknesses drawn from.
        sequences: sequences drawn from (default FLAIR only; T2 and T1 check the sequence checks).
        lesions: draw lesions (False: every brain is lesion-free).
    """

    max_voxels: int = 6_000_000
    min_inplane_mm: float = 0.5
    max_inplane_mm: float = 1.2
    thicknesses: tuple[float, ...] = THICKNESSES
    sequences: tuple[str, ...] = ("FLAIR",)
    lesions: bool = True


@dataclass
class LesionTruth:
    """Where a lesion shows in the scan: ``mask`` within the grid box ``box``."""

    lesion: Lesion
    box: tuple[slice, slice, slice]
    mask: np.ndarray

    @property
    def voxels(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass
class GeneratedMR:
    """One case: the image (canonical (z, y, x) LPS grid, int16), its geometry, sequence, truth."""

    seed: int
    image: np.ndarray
    geometry: Geometry
    sequence: str
    named: bool
    truth: np.ndarray  # all lesions (bool)
    lesions: list[LesionTruth]
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        g = self.geometry
        return {"seed": self.seed, "sequence": self.sequence, "sequence_named": self.named,
                "shape_zyx": list(g.shape), "thickness_mm": g.thickness_mm, "inplane_mm": round(g.inplane_mm, 3),
                "layout": g.layout, "oblique_deg": [round(v, 1) for v in g.oblique_deg], **g.params,
                **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.params.items()},
                "lesions": [{**t.lesion.to_dict(), "voxels": t.voxels} for t in self.lesions]}


def draw_geometry(rng: np.random.Generator, head: Head, options: MROptions) -> Geometry:
    """Slice thickness, spacing, field of view and layout (see the module docstring)."""
    x0, x1, y0, y1, z0, z1 = head.extent()
    thickness = float(rng.choice(options.thicknesses))
    inplane = float(rng.uniform(options.min_inplane_mm, options.max_inplane_mm))
    params: dict[str, Any] = {}
    pad = float(rng.uniform(3, 15))
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    if rng.random() < 0.15:  # a tight field of view cuts scalp and skull at the sides
        cut = head.scalp_mm + head.skull_mm * float(rng.uniform(0.3, 1.0)) + pad
        x0, x1 = x0 + cut, x1 - cut
        params["fov_cut"] = "sides"
    top, bottom = z1 + float(rng.uniform(0, 10)), z0 - float(rng.uniform(0, 10))
    if rng.random() < 0.2:
        top = head.cerebrum_centre[2] + head.cerebrum_radii[2] - float(rng.uniform(5, 20))
        params["fov_cut"] = "vertex"
    elif rng.random() < 0.25:
        bottom = head.cerebellum_centre[2] + float(rng.uniform(-10, 10))
        params["fov_cut"] = "cerebellum"

    def voxels(sp: float, zr: float) -> float:
        return ((x1 - x0) / sp) * ((y1 - y0) / sp) * (zr / thickness)

    if voxels(inplane, top - bottom) > options.max_voxels:
        inplane = min(options.max_inplane_mm, max(inplane, float(np.sqrt(voxels(1.0, top - bottom) / options.max_voxels))))
    if voxels(inplane, top - bottom) > options.max_voxels:
        z_range = options.max_voxels / voxels(inplane, 1.0)
        middle = head.cerebrum_centre[2]
        bottom, top = middle - z_range / 2, middle + z_range / 2
        params["fov_cut"] = "z_window"
    shape = (max(int(round((top - bottom) / thickness)), 1), int(round((y1 - y0) / inplane)),
             int(round((x1 - x0) / inplane)))
    layout = str(rng.choice(LAYOUTS))
    oblique = (float(rng.uniform(5, 20)) * float(rng.choice([-1, 1])), float(rng.uniform(-5, 5))) \
        if layout == "oblique" else (0.0, 0.0)
    origin = (x0 + inplane / 2, y0 + inplane / 2, bottom + thickness / 2)
    return Geometry(thickness, inplane, origin, shape, layout, oblique, params)


def render(head: Head, geometry: Geometry, levels: dict[Any, float], lesion_sign: float
           ) -> tuple[np.ndarray, np.ndarray, list[LesionTruth]]:
    """(intensity relative to white matter before the scanner's effects, the skull-strip mask
    (voxels more than half brain or its CSF), each lesion's truth)."""
    xs, ys, zs = geometry.axes()
    nz, ny, nx = geometry.shape
    t = geometry.thickness_mm
    sub = max(1, int(np.ceil(t / SUBSLICE_MM)))
    offsets = (np.arange(sub) + 0.5) / sub * t - t / 2
    lut = np.zeros(256, dtype=np.float32)
    for tissue, value in levels.items():
        if tissue != "lesion":
            lut[tissue] = value
    may_hold_lesion = np.zeros(256, dtype=bool)
    may_hold_lesion[list(LESION_TISSUES)] = True
    inside_head = np.zeros(256, dtype=np.float32)
    inside_head[[CSF, GM, WM, DEEP_GM, LINING]] = 1.0
    image = np.empty(geometry.shape, dtype=np.float32)
    strip = np.empty(geometry.shape, dtype=bool)
    boxes = []
    for lesion in head.lesions:
        bx0, bx1, by0, by1, bz0, bz1 = lesion.bbox()
        ix, iy = index_range(xs, bx0, bx1), index_range(ys, by0, by1)
        iz = index_range(zs, bz0 - t / 2, bz1 + t / 2)
        boxes.append(None if ix is None or iy is None or iz is None else (iz, iy, ix))
    coverage = [np.zeros(tuple(s.stop - s.start for s in b), np.float32) if b else None for b in boxes]
    chunk = max(1, int(3_000_000 // max(sub * ny * nx, 1)))
    for k0 in range(0, nz, chunk):
        k1 = min(nz, k0 + chunk)
        zsub = (zs[k0:k1, None] + offsets[None, :]).ravel()
        labels = head.labels(xs[None, None, :], ys[None, :, None], zsub[:, None, None])
        values = lut[labels]
        for lesion, box, cover in zip(head.lesions, boxes, coverage):
            if box is None or box[0].stop <= k0 or box[0].start >= k1:
                continue
            s0, s1 = max(box[0].start, k0), min(box[0].stop, k1)
            rows = slice((s0 - k0) * sub, (s1 - k0) * sub)
            region = (rows, box[1], box[2])
            rho = lesion.radius(xs[box[2]][None, None, :], ys[box[1]][None, :, None], zsub[rows][:, None, None])
            tissue_ok = may_hold_lesion[labels[region]]
            gain = np.where(tissue_ok, lesion.profile(rho), 0.0).astype(np.float32)
            # overlapping lesions: the brighter one shows (a confluent plaque is one bright region)
            current = values[region] - lut[labels[region]]
            values[region] = lut[labels[region]] + np.where(np.abs(lesion_sign * gain) > np.abs(current),
                                                             lesion_sign * gain, current)
            inside = ((rho <= 1.0) & tissue_ok).astype(np.float32)
            cover[s0 - box[0].start:s1 - box[0].start] = inside.reshape(s1 - s0, sub, *inside.shape[1:]).mean(axis=1)
        image[k0:k1] = values.reshape(k1 - k0, sub, ny, nx).mean(axis=1)
        strip[k0:k1] = inside_head[labels].reshape(k1 - k0, sub, ny, nx).mean(axis=1) > 0.5
    truths = [LesionTruth(lesion, box, cover > 0.5) for lesion, box, cover in zip(head.lesions, boxes, coverage)
              if box is not None and (cover > 0.5).any()]
    return image, strip, truths


def scanner(image: np.ndarray, strip: np.ndarray, geometry: Geometry, rng: np.random.Generator,
            params: dict[str, Any]) -> np.ndarray:
    """Texture, point spread, bias field, scale, Rician noise and (a third of scans) skull stripping."""
    sp = geometry.spacing
    texture = ndimage.gaussian_filter(rng.standard_normal(image.shape, dtype=np.float32),
                                      [max(1.2 / s, 0.3) for s in sp])
    amp = params["texture"] = float(rng.uniform(0.04, 0.09))
    texture *= amp / max(float(texture.std()), 1e-6)
    out = image * (1.0 + np.where(strip, texture, 0.0)).astype(np.float32)
    fwhm_px = float(rng.uniform(0.8, 1.5))
    out = ndimage.gaussian_filter(out, (0, fwhm_px / 2.355, fwhm_px / 2.355))
    bias = params["bias"] = float(rng.uniform(0.03, 0.2))
    xs, ys, zs = geometry.axes()
    field = Field.random(rng, wavelength_mm=float(rng.uniform(120, 250)), modes=4)
    out *= np.exp(bias * 0.5 * field(xs[None, None, :], ys[None, :, None], zs[:, None, None]))
    scale = params["white_matter_level"] = float(rng.uniform(200, 2000))
    noise = params["noise_fraction"] = float(rng.uniform(0.015, 0.07))
    real = out * scale + rng.normal(0.0, noise * scale, out.shape).astype(np.float32)
    imag = rng.normal(0.0, noise * scale, out.shape).astype(np.float32)
    out = np.sqrt(real * real + imag * imag)
    params["skull_stripped"] = bool(rng.random() < 0.33)
    if params["skull_stripped"]:
        out[~ndimage.binary_dilation(strip, iterations=1)] = 0.0
    return np.clip(np.round(out), 0, 32767).astype(np.int16)


def generate_case(seed: int, options: MROptions | None = None) -> GeneratedMR:
    """The brain-MR stress case of ``seed`` (deterministic)."""
    options = options or MROptions()
    rng = np.random.default_rng(seed)
    head = draw_head(rng, lesions=options.lesions)
    geometry = draw_geometry(rng, head, options)
    sequence = str(rng.choice(options.sequences))
    contrast = CONTRASTS[sequence]
    levels = {tissue: float(rng.uniform(lo, hi)) for tissue, (lo, hi) in contrast.items()}
    params = dict(head.params)
    params.update({f"{sequence.lower()}_{name}": round(levels[t], 3)
                   for name, t in (("csf", CSF), ("grey_matter", GM), ("deep_grey", DEEP_GM))})
    image, strip, truths = render(head, geometry, levels, levels["lesion"])
    scan = scanner(image, strip, geometry, rng, params)
    truth = np.zeros(geometry.shape, dtype=bool)
    for t in truths:
        truth[t.box] |= t.mask
    named = bool(rng.random() < 0.8)
    return GeneratedMR(seed, scan, geometry, sequence, named, truth, truths, params)


def write_case(case: GeneratedMR, directory: Path, declare_mr: bool = True) -> Path:
    """Write the case as NIfTI in its layout, named for its sequence when the case says so.

    ``declare_mr`` writes the ``modality=MR`` note of `imaging.writers.write_nifti` (a header fact,
    as a converter from DICOM keeps it); without it the loader guesses MR from the values and every
    answer is hedged for that guess, which would hide confidently wrong lesion searches."""
    name = f"case{case.seed}_{case.sequence}.nii.gz" if case.named else f"case{case.seed}.nii.gz"
    return write_layout(case.image, case.geometry, directory / name, f"{MODALITY_NOTE}MR" if declare_mr else "")
