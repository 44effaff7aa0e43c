"""What an abdominal CT says about itself: its body frame, fat/soft-tissue threshold and contrast phase.

Everything here runs on the coarse grid of the chest analysis (`grounding.segmenters.chest`) with
block-mean HU smoothed by `SMOOTH_MM`, so the thresholds come from the scan, not from constants:

* **fat edge**: Otsu's threshold of the body's values between `FAT_SOFT_RANGE` (the valley
  between the fat peak near -100 HU and soft tissue near +50 HU), clipped to `FAT_EDGE_LIMITS`.
* **spine**: the largest bone component (>= `SPINE_HU`) near the midline in the posterior half of
  the body, less an arterial aorta merged with it in front (per slice, a piece parted at a
  constriction whose core lies in front of the vertebral body's); its centroid (x) and its
  anterior edge per slice (y) anchor the location priors. World y is measured along the spine:
  shifted per slice by the Theil-Sen slope of the spine's front against z (a patient lying at an
  angle to the scanner's axes), so that "in front of the spine" means the same at every level.
* **aorta**: the brightest `AORTA_DISK_MM`-wide disk in front of the vertebral body, slightly to
  the patient's left (`AORTA_WINDOW_MM`), median over slices (unenhanced blood 35-55 HU, portal
  venous 130-200 HU, arterial 250-400 HU).
* **phase**: ``non-contrast`` when the aorta is below `ENHANCED_AORTA_HU`, ``arterial`` when it is at
  least `ARTERIAL_AORTA_HU` and the liver is not yet enhanced (below `ENHANCED_LIVER_HU`), else
  ``portal-venous``; without an aorta (no spine found) the liver's HU decides alone.

The phase is an estimate; the organ finder (`grounding.segmenters.organs`) reports it with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from grounding.segmenters.morphology import CONN26, CoarseGrid, bounding_box, component_sizes, grown_box
from imaging.volume import Volume

#: Gaussian smoothing (mm) of the coarse block means, for bands and cores, and for edges
SMOOTH_MM = 3.0
EDGE_SMOOTH_MM = 1.0
#: HU range holding the fat peak, the soft-tissue peak and the valley between them
FAT_SOFT_RANGE = (-200.0, 200.0)
#: the fat/soft-tissue threshold stays within these HU (a scan with little fat has no fat peak)
FAT_EDGE_LIMITS = (-70.0, -10.0)
#: coarse-smoothed bone of the spine (cancellous vertebral bone is 150-300 HU)
SPINE_HU = 180.0
#: the spine lies within this distance (mm) of the midline
SPINE_MIDLINE_MM = 40.0
#: an enhanced aorta touching the vertebral body joins its bone component: per slice, a piece with a
#: core at least this deep (mm) whose core lies this far (mm) in front of the vertebral body's is
#: parted from the spine (an adult aorta is 10-15 mm in radius, a vertebral body 15-25 mm)
VESSEL_CORE_MM = 5.0
#: ... tried at these depths (mm) in turn, for an aorta pressed against the vertebra over a contact
#: so broad that both are one core at the first (10 mm is still inside an adult aorta after the coarse
#: grid's smoothing)
VESSEL_CORE_LEVELS_MM = (VESSEL_CORE_MM, 7.5, 10.0)
VESSEL_AHEAD_MM = 10.0
#: ... and only a piece at least this thick (inscribed radius, mm): the abdominal aorta is 8-15 mm
VESSEL_MIN_MM = 7.5
#: slope (mm of the spine's front per mm of z) below which the patient is taken to lie along z
MIN_TILT = 0.05
#: aorta search window relative to the spine: x from its centre, y in front of its anterior edge (mm)
AORTA_WINDOW_MM = {"x": (-15.0, 45.0), "y": (8.0, 50.0)}
#: width (mm) of the disk averaged to read the aorta's HU (an adult aorta is 15-30 mm wide)
AORTA_DISK_MM = 10.0
#: aorta HU at and above which the scan is enhanced, and at which it is arterial
ENHANCED_AORTA_HU = 100.0
ARTERIAL_AORTA_HU = 200.0
#: liver HU at and above which the liver is enhanced (portal-venous); plain liver is 45-70 HU
ENHANCED_LIVER_HU = 88.0
PHASES = ("non-contrast", "arterial", "portal-venous")


@dataclass
class BodyFrame:
    """World coordinates of the coarse grid and the body's landmarks (LPS mm).

    Attributes:
        x, y, z: world coordinates of every coarse voxel (float32 arrays of the coarse shape).
        spacing: coarse voxel size (z, y, x) mm.
        mid_x: the midline (world x): the spine's centroid, else the body's.
        centre_y: the body's centroid (world y).
        spine_x: the spine's centroid (world x); the body's when no spine was found.
        spine_front_y: the vertebral bodies' anterior edge (world y, median over slices); a
            quarter of the body depth behind its centre when no spine was found.
        spine_front_by_slice: per coarse slice, the anterior edge (NaN where the spine is absent).
        depth: in-plane distance (mm) of each body voxel from the body's surface.
        spine: the spine's coarse mask (empty when none was found).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: tuple[float, float, float]
    mid_x: float
    centre_y: float
    spine_x: float
    spine_front_y: float
    spine_front_by_slice: np.ndarray
    depth: np.ndarray
    spine: np.ndarray

    @property
    def spine_found(self) -> bool:
        return bool(self.spine.any())


@dataclass
class ScanStatistics:
    """HU landmarks read from the scan (see the module docstring)."""

    fat_edge_hu: float
    aorta_hu: float | None
    liver_hu: float | None
    phase: str
    phase_source: str

    def describe(self) -> str:
        aorta = "no aorta found" if self.aorta_hu is None else f"aorta {self.aorta_hu:.0f} HU"
        liver = "" if self.liver_hu is None else f", right upper quadrant {self.liver_hu:.0f} HU"
        return (f"estimated contrast phase {self.phase} (from the {self.phase_source}: {aorta}{liver}); "
                f"fat/soft-tissue edge {self.fat_edge_hu:.0f} HU")


def smoothed_coarse_hu(volume: Volume, grid: CoarseGrid) -> tuple[np.ndarray, np.ndarray]:
    """Block-mean HU on ``grid``, Gaussian-smoothed in-plane by `SMOOTH_MM` (noise of 15 HU drops to a
    few HU) and, for deciding edges, by `EDGE_SMOOTH_MM` (blurs edges less)."""
    coarse = grid.mean(volume.data)
    spacing = grid.coarse_spacing(volume.spacing)

    def smooth(mm: float) -> np.ndarray:
        # in-plane only: across thick slices the lung or air above an organ's top would darken it
        return ndimage.gaussian_filter(coarse, [0.0] + [mm / s if mm / s >= 0.3 else 0.0 for s in spacing[1:]])

    return smooth(SMOOTH_MM), smooth(EDGE_SMOOTH_MM)


def body_frame(volume: Volume, grid: CoarseGrid, hu: np.ndarray, body: np.ndarray) -> BodyFrame:
    """World coordinates, midline, spine and depth below the skin on the coarse grid.

    The midline is the spine's centroid (x), else the body's: below the chest the spine marks it
    better than any air (a "trachea" found in an abdominal scan may be bowel gas).
    """
    spacing = grid.coarse_spacing(volume.spacing)
    # fine indices of the block centres along each axis (as `CoarseGrid.to_fine`)
    index = np.meshgrid(*(np.arange(n) * st + st // 2 for n, st in zip(hu.shape, grid.strides)),
                        indexing="ij", sparse=True)
    a = volume.affine
    x, y, z = (np.asarray(a[r, 0] * index[0] + a[r, 1] * index[1] + a[r, 2] * index[2] + a[r, 3], np.float32)
               for r in range(3))
    x, y, z = (np.broadcast_to(c, hu.shape) for c in (x, y, z))
    centre_y, body_x = float(y[body].mean()), float(x[body].mean())
    # chamfer distance within each slice (a planar structure), in mm of the mean in-plane spacing
    planar = np.zeros((3, 3, 3), dtype=bool)
    planar[1] = True
    steps = ndimage.distance_transform_cdt(np.pad(body, ((0, 0), (1, 1), (1, 1))), metric=planar)[:, 1:-1, 1:-1]
    depth = steps.astype(np.float32) * float(np.mean(spacing[1:]))
    bone = (hu >= SPINE_HU) & body & (np.abs(x - body_x) <= SPINE_MIDLINE_MM) & (y >= centre_y - 10.0)
    labels, n = ndimage.label(bone, structure=CONN26)
    front_by_slice = np.full(hu.shape[0], np.nan, dtype=np.float64)
    if n:
        sizes = component_sizes(labels, n)
        sizes[0] = 0
        spine = _without_vessel_in_front(np.asarray(labels == int(np.argmax(sizes))), y, spacing)
        spine_x = float(x[spine].mean())
        ys = np.where(spine, y, np.inf).reshape(hu.shape[0], -1).min(axis=1)
        front_by_slice[np.isfinite(ys)] = ys[np.isfinite(ys)]
        y = _along_spine(y, z, front_by_slice, spacing)
        front_by_slice = np.where(spine, y, np.inf).reshape(hu.shape[0], -1).min(axis=1)
        front_by_slice[~np.isfinite(front_by_slice)] = np.nan
        front = float(np.nanmedian(front_by_slice))
        centre_y = float(y[body].mean())
    else:
        spine = np.zeros(hu.shape, dtype=bool)
        extent = y[body]
        spine_x, front = body_x, centre_y + 0.25 * float(extent.max() - extent.min())
    return BodyFrame(x=x, y=y, z=z, spacing=spacing, mid_x=spine_x, centre_y=centre_y, spine_x=spine_x,
                     spine_front_y=front, spine_front_by_slice=front_by_slice, depth=depth, spine=spine)


def _along_spine(y: np.ndarray, z: np.ndarray, front_by_slice: np.ndarray,
                 spacing: tuple[float, float, float]) -> np.ndarray:
    """World y shifted per slice so that the spine's front lies at one y: a patient lying at an
    angle to the scanner's axes (or a tilted gantry written into the affine as a tilted patient)
    moves every organ's y with its slice by up to z * tan(tilt), 80 mm over a 300 mm scan at 15
    degrees, which would put a kidney "in front of" the spine read at another level. The slope is
    the Theil-Sen fit of the spine's front against the slice's z (robust to slices where an
    aorta or a disc moves the front); under `MIN_TILT` (a straight patient, a lordosis) y is kept."""
    from scipy.stats import theilslopes

    found = np.isfinite(front_by_slice)
    if found.sum() < 3:
        return y
    zs = z.reshape(z.shape[0], -1).mean(axis=1)
    slope, _, _, _ = theilslopes(front_by_slice[found], zs[found])
    if not np.isfinite(slope) or abs(slope) < MIN_TILT:
        return y
    centre = float(np.median(zs[found]))
    return np.asarray(y - np.float32(slope) * (z - np.float32(centre)), dtype=np.float32)


def _without_vessel_in_front(spine: np.ndarray, y: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """The spine's bone component less an enhanced vessel merged with it in front (see the module
    docstring): per slice, the component is split at its constrictions (cores at least
    `VESSEL_CORE_MM` inside it seed a watershed on the in-plane distance map; where no vessel parts at
    that depth, the deeper `VESSEL_CORE_LEVELS_MM` are tried in turn); the vertebral body is
    the core with the largest inscribed radius, and the basins of cores at least `VESSEL_MIN_MM` in
    inscribed radius lying more than `VESSEL_AHEAD_MM` in front of it are dropped (the aorta may
    meet the vertebra only across slices on an oblique scan). Posterior elements lie behind the vertebral body,
    so they are never dropped, whatever the pieces the split makes of them."""
    from skimage.segmentation import watershed

    out = spine.copy()
    # a voxel of margin in-plane: the component's own edge is background
    box = grown_box(bounding_box(spine), (0, 1, 1), spine.shape)
    planar = np.zeros((3, 3), dtype=bool)
    planar[1, :] = planar[:, 1] = True
    for k in range(box[0].start, box[0].stop):
        piece = spine[k][box[1:]]
        depth = ndimage.distance_transform_edt(piece, sampling=spacing[1:])
        # an aorta pressed against the vertebra over a broad contact joins it in one core at the shallow
        # level: the deeper levels part them
        for level in VESSEL_CORE_LEVELS_MM:
            cores, n = ndimage.label(depth >= level, structure=planar)
            if n < 2:
                continue
            radius = ndimage.maximum(depth, cores, range(1, n + 1))
            front = ndimage.mean(y[k][box[1:]], cores, range(1, n + 1))
            body = int(np.argmax(radius))
            # a vessel is thick and round; the thin cortical fragments of a vertebra whose cancellous
            # body is fainter than `SPINE_HU` (seen on real CT) are not
            ahead = [c + 1 for c in range(n)
                     if front[c] < front[body] - VESSEL_AHEAD_MM and radius[c] >= VESSEL_MIN_MM]
            if ahead:
                basins = watershed(-depth, cores, mask=piece)
                out[k][box[1:]] &= ~np.isin(basins, ahead)
                break
    return out


def fat_edge(hu: np.ndarray, body: np.ndarray) -> float:
    """Otsu's threshold between fat and soft tissue inside the body (see the module docstring)."""
    from skimage.filters import threshold_otsu

    values = hu[body]
    values = values[(values >= FAT_SOFT_RANGE[0]) & (values <= FAT_SOFT_RANGE[1])]
    if values.size < 100:
        return float(np.mean(FAT_EDGE_LIMITS))
    return float(np.clip(threshold_otsu(values), *FAT_EDGE_LIMITS))


def aorta_hu(hu: np.ndarray, body: np.ndarray, frame: BodyFrame) -> float | None:
    """The aorta's HU (median over slices of the brightest disk in front of the spine), or None."""
    if not frame.spine_found:
        return None
    size = [1] + [max(1, int(round(AORTA_DISK_MM / s))) for s in frame.spacing[1:]]
    disk = ndimage.uniform_filter(hu, size=size, mode="nearest")
    dx = frame.x - frame.spine_x
    ahead = frame.spine_front_by_slice[:, None, None] - frame.y
    window = body & (dx >= AORTA_WINDOW_MM["x"][0]) & (dx <= AORTA_WINDOW_MM["x"][1])
    window &= (ahead >= AORTA_WINDOW_MM["y"][0]) & (ahead <= AORTA_WINDOW_MM["y"][1])
    peaks = [float(disk[k][window[k]].max()) for k in range(hu.shape[0]) if window[k].any()]
    return float(np.median(peaks)) if peaks else None


def histogram_mode(values: np.ndarray, band: tuple[float, float], bin_hu: float = 2.0) -> float | None:
    """The most frequent value of ``values`` within ``band`` (histogram smoothed over 3 bins)."""
    inside = values[(values >= band[0]) & (values <= band[1])]
    if inside.size < 20:
        return None
    counts, edges = np.histogram(inside, bins=max(1, int((band[1] - band[0]) / bin_hu)), range=band)
    counts = ndimage.gaussian_filter1d(counts.astype(np.float64), 1.5)
    k = int(np.argmax(counts))
    return float((edges[k] + edges[k + 1]) / 2)


def contrast_phase(aorta: float | None, liver: float | None) -> tuple[str, str]:
    """(phase, the landmark that decided) from the aorta's and the liver's HU."""
    if aorta is not None:
        if aorta < ENHANCED_AORTA_HU:
            return "non-contrast", "aorta"
        if aorta >= ARTERIAL_AORTA_HU and (liver is None or liver < ENHANCED_LIVER_HU):
            return "arterial", "aorta and liver"
        return "portal-venous", "aorta and liver"
    if liver is not None and liver >= ENHANCED_LIVER_HU:
        return "portal-venous", "liver"
    return "non-contrast", "liver"
