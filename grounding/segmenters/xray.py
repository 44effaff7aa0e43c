"""Classical analysis of a frontal (PA/AP) chest radiograph: lung fields, cardiac silhouette, thorax.

Works on a 2-D volume (one slice) whose rows run from head to feet, as radiographs are stored
and shown; left and right come from the affine (world ``x``, LPS: +x is the patient's left), so
a PA film with the patient's right on the image left and a mirrored film both come out right.
The analysis runs on a copy of about `WORK_PIXELS` pixels along its longer side (anti-aliased
block-centre samples, `CoarseGrid`) and the masks are brought back to the input's pixels by
nearest-block upsampling, so the geometry maps back exactly; a 2048 x 2048 film takes about a
second instead of 10-45. Millimetre parameters apply at the file's pixel spacing; without one
(PNG, DICOM without PixelSpacing) the longer side is taken to span `NOMINAL_FIELD_MM` (a chest
film is the chest by design), because an assumed 1.0 mm would make a 2048-pixel film 2 m wide.

1. **normalise**: intensities mapped to 0..1 between the 1st and 99th percentile (robust to
   burnt-in labels and collimator edges), then smoothed (Gaussian, `SMOOTH_MM`).
2. **lung basins**: grey-level hole filling (morphological reconstruction from the image border)
   gives each pixel the lowest rim it must cross to reach the border. Air outside the body, the
   dark gap between arm and chest, collimator shadows and the trachea reach the border (depth
   0); the lungs are walled in by the chest wall, clavicles, mediastinum and diaphragm, so they
   are basins. The two basins holding the most depth x area are the lungs; their parts deeper
   than `CORE_FRACTION` of the basin's depth are the cores.
3. **lung fields**: a marker watershed on the gradient magnitude (Gaussian, `EDGE_SIGMA_MM`)
   grows the cores at most `GROW_MM` to the steepest edge: the inner rib margins, the diaphragm
   domes and the heart borders (the lower lung zones lie under more soft tissue and are brighter
   than the basins' rims, which is why the cores are grown). Between the two cores, tissue brighter
   than halfway from the lungs to what lies beyond `GROW_MM` (`TISSUE_MARGIN_MM` deep) is "not
   lung", so a heart that overlaps a lung field's medial part stops it at the heart's own edge
   (only there: laterally the lower zones are as bright). Holes are filled.
4. **heart**: the heart borders are the lungs' medial edges below the lungs' mid-height (the
   hila). On the right the border ends at the lung's cardiophrenic angle (its extreme point
   towards feet-and-midline in the field's medial half - a deep lateral recess under a high dome
   can reach lower: a steep border meets a flat dome in a corner). On the left an
   enlarged heart's border runs obliquely down and out, so that corner is ill-defined: the
   medial contour is followed down to the field's base (at most `LEFT_DOME_BELOW_MM` below the
   right angle), skipping stretches flatter than `HEART_BORDER_MAX_RUN` (the field's lower
   border; up to `ENLARGED_BORDER_MAX_RUN` is still border more than `ENLARGED_BORDER_ABOVE_MM`
   above the right angle's height, where the left dome is not yet reached: an enlarged left
   ventricle bulges down and out there) and stopping where only a short tail (`RECESS_MM`, the recess' tip) follows one; where
   the field ends early (a lower zone under soft tissue lost), the heart's own edge is followed on
   down (`_follow_edge`). The right lung's lower medial zone (hilar and lower-lobe vessels) is often
   not in the field, so the right border is moved medially to where the film rises halfway from the
   aerated lung beside it to the heart (`_aerated_edge`). An ellipse fitted to the borders in mm (the heart's own rounded outline)
   shapes the silhouette above its centre - the upper border is rounded, never a flat cut across
   the lungs' mid-height - and below it the row-wise span between the two borders (rows at least
   `HEART_MIN_FRACTION` as wide as the widest: the heart, not the narrower upper mediastinum) is
   kept, so the width is the measured one. Columns are bounded by that span, rows by the lungs'
   lowest point (the diaphragm); lung pixels are never heart. Following the left border below the
   left field's corner is the one call the contour cannot settle (an oblique enlarged heart and
   the left hemidiaphragm under a normal one look alike): when it widens the silhouette by over
   `HEART_BORDER_AMBIGUITY` of the thoracic width beyond where it is at that corner or at the right
   cardiophrenic angle's height (the heart's lower border lies about there), whichever is higher,
   `RadiographLabels.caveats` says so, with the ratio ending there would give. One case is settled:
   below that corner (under a normal heart the cardiophrenic angle) a contour running out for less
   than `DOME_SLOPE_MM` is the dome's slope towards the lateral recess, not heart (`_dome_slope`: an
   enlarged heart's oblique border runs on for several cm there), again with a caveat giving the
   wider ratio when it changes the answer. When the lung fields'
   lower borders are faint (lower zones lost) and the right border ends above where a heart is
   widest (`HEART_WIDEST_DEPTH` thoracic widths below the apex), the widest part may be hidden: a
   caveat, with the larger ratio it could give. Each of these two is raised only when its other
   reading changes the answer (by over `HEART_BORDER_AMBIGUITY`, or across `CTR_ENLARGED`). A
   silhouette partly as dark as the lung fields (`HEART_AERATED_FRACTION`) holds lung: a field was
   mis-found, also a caveat.
5. **thorax**: per row, the span from the outermost lung edge on one side to the other: the
   thoracic cavity between the inner rib margins, lung apex to base. The lateral costophrenic
   recesses, behind the domes and under the most soft tissue, are often not in the fields, but
   their rib margins are still edges: each is followed down from its field's widest row
   (`_lateral_recess`), since the thorax is widest at the bases, and the field takes in the
   recess up to it (`_with_recess`), so the lung fields' outer margins are the thoracic width.

Limits: the lung fields are what a reader sees: lung hidden behind the heart or below the
diaphragm domes is not in them, and a lower lung zone as bright as the heart can be lost (the
heart's edge is then followed, less surely). Widths are quantised to the working pixel.
Consolidation, effusion or a large mass that erases a lung field, lateral views, and rotated or
AP supine films can defeat it; a `SegmentationError` says so when two lung fields are not found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from grounding.plausibility import CTR_ENLARGED, XR_DIAPHRAGM_CONTRAST, lower_border_contrast
from grounding.segmenters.base import SegmentationError
from grounding.segmenters.morphology import CoarseGrid, component_sizes, span_last_axis
from imaging.volume import Volume

#: the working copy has about this many pixels along its longer side (block-centre samples)
WORK_PIXELS = 512
#: when the file gives no pixel spacing, the longer side is taken to span this many mm (analysis only)
NOMINAL_FIELD_MM = 400.0
#: intensity percentiles mapped to 0 and 1
PERCENTILES = (1.0, 99.0)
#: Gaussian smoothing (mm) before the basins are found: rib stripes and noise
SMOOTH_MM = 3.0
#: Gaussian scale (mm) of the gradient the lung fields are grown on (coarse enough to blur rib edges)
EDGE_SIGMA_MM = 2.0
#: a basin is at least this far (normalised intensity) below the rim that walls it in
BASIN_DEPTH = 0.02
#: a lung core is the part of its basin deeper than this share of the basin's (95th percentile) depth
CORE_FRACTION = 0.1
#: bright pixels this deep (mm) inside the bright region are "not lung" markers
TISSUE_MARGIN_MM = 2.0
#: lung fields grow at most this far (mm) beyond their cores
GROW_MM = 30.0
#: rows whose silhouette span is at least this fraction of the widest are heart
HEART_MIN_FRACTION = 0.5
#: the left heart border is followed at most this far (mm) below the right cardiophrenic angle: the
#: left hemidiaphragm lies about 1-3 cm lower than the right, its lateral recess lower still
LEFT_DOME_BELOW_MM = 25.0
#: a heart border runs at most this many mm sideways per mm down (60 degrees from vertical, an enlarged
#: heart's oblique left border included); a flatter stretch of the medial contour is a lower border
HEART_BORDER_MAX_RUN = 1.73
#: above the right cardiophrenic angle's height the left border may run this oblique (70 degrees from
#: vertical): an enlarged heart's left ventricle bulges down and out there
ENLARGED_BORDER_MAX_RUN = 2.75
#: that far (mm) above the right angle at least: near its height the left dome begins, and a contour
#: running out there is the dome's, towards the lateral recess
ENLARGED_BORDER_ABOVE_MM = 5.0
#: the contour's run is measured over this height (mm): rib and vessel notches are shorter
BORDER_SLOPE_MM = 6.0
#: a silhouette this share of the thoracic width wider for following the left border below the left
#: field's corner is a caveat: about the classical ratio's error (`mmreason.backends.rules.ctr.CTR_MARGIN`)
HEART_BORDER_AMBIGUITY = 0.05
#: a medial contour beyond the silhouette shorter (mm, top to bottom) than this is the costophrenic
#: recess' tip, not a heart border
RECESS_MM = 20.0
#: the left border's stretch below the left field's lower inner corner (its extreme point towards
#: feet-and-midline) running outward is the left hemidiaphragm's medial slope when it is shorter (mm, top
#: to bottom) than this: under a normal heart the corner is the cardiophrenic angle and the contour goes
#: on down the dome towards the lateral recess, which lies about 2 cm lower (`RECESS_MM`); an enlarged
#: heart's oblique border reaching below that corner runs on for several cm (JSRT tuning films: 5-6 cm)
DOME_SLOPE_MM = 20.0
#: the lateral recess' edge is followed while it rises at least this share of the field's lateral edge
RECESS_EDGE_FRACTION = 0.3
#: and for at most this far (mm) below the field
RECESS_MAX_MM = 60.0
#: a heart is widest about this many thoracic widths below the lung apex (SCR masks of 57 JSRT tuning
#: films: 0.61-0.82, 5th-95th percentile, median 0.73)
HEART_WIDEST_DEPTH = 0.7
#: the second basin must hold at least this share of the first one's air (depth x area)
LUNG_CORE_BALANCE = 0.1

#: a silhouette more than this share of which is as dark as the lung fields' median holds lung, not heart
HEART_AERATED_FRACTION = 0.05
#: the right lung's level beside its medial edge is the median over this many mm of the field (per row)
LUNG_LEVEL_MM = 15.0
#: the right heart border is where the intensity has risen this share of the way from that lung level to
#: the heart's (the middle third of the span between the two borders): a half-maximum edge
HEART_EDGE_LEVEL = 0.5
#: the right heart border moves at most this share of the span between the borders medially from the field
HEART_EDGE_MAX_SHIFT = 0.4
#: it moves only when that edge lies more than this far (mm) beyond the field: a rounded heart's own edge,
#: blurred by `SMOOTH_MM`, rises to its half level within about this; further in, aerated lung lies between
HEART_EDGE_MIN_SHIFT_MM = 10.0

RIGHT, LEFT = 1, 2


@dataclass
class RadiographLabels:
    """Masks of one radiograph, each of the image's 2-D shape (rows, columns).

    Attributes:
        lung_left, lung_right: the patient's left and right lung fields.
        heart: the cardiac silhouette.
        thorax: the thoracic cavity (row-wise span of the lung fields).
        caveats: why a measurement on these masks may be wrong (e.g. the heart's left border
            could not be told from the diaphragm), for the evidence's quality.
    """

    lung_left: np.ndarray
    lung_right: np.ndarray
    heart: np.ndarray
    thorax: np.ndarray
    caveats: list[str] = field(default_factory=list)

    def mask(self, target: str) -> np.ndarray:
        """The 2-D mask of a canonical target (``lungs``, ``lung_left``, ``lung_right``, ``heart``, ``thorax``)."""
        if target == "lungs":
            return self.lung_left | self.lung_right
        return getattr(self, target)


def require_radiograph(volume: Volume, target: str) -> None:
    """Raise unless ``volume`` is a single-slice X-ray image."""
    if volume.modality != "XR":
        raise SegmentationError(
            f"classical '{target}' segmentation works on 2-D chest radiographs (XR), got {volume.modality}; "
            "on CT a model-based segmenter (totalsegmentator) provides the heart"
        )
    if not volume.is_2d:
        raise SegmentationError(
            f"classical '{target}' segmentation needs one 2-D chest radiograph, got {volume.shape[0]} X-ray "
            "frames; pick one frame"
        )


def analyze_radiograph(volume: Volume, work_pixels: int = WORK_PIXELS) -> RadiographLabels:
    """Lung fields, cardiac silhouette and thorax of a frontal chest radiograph (module docstring).

    Args:
        volume: a 2-D XR volume (shape ``(1, rows, columns)``), rows from head to feet.
        work_pixels: about this many pixels along the longer side of the working copy (default
            `WORK_PIXELS`; never more than the input's).

    Raises:
        SegmentationError: not a 2-D radiograph, or two lung fields not found.
    """
    require_radiograph(volume, "lungs")
    stride = max(1, max(volume.shape[1:]) // work_pixels)
    grid = CoarseGrid(volume.shape, (1, stride, stride))
    spacing = _analysis_spacing(volume, grid)
    image = volume.data[0].astype(np.float32)
    if not grid.is_identity:  # anti-alias before taking block centres
        image = ndimage.gaussian_filter(image, stride / 2.0)
    image = grid.sample(image[None])[0]
    lo, hi = np.percentile(image, PERCENTILES)
    if hi <= lo:
        raise SegmentationError("the radiograph is blank (no contrast): no lung fields to find")
    norm = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    smooth = ndimage.gaussian_filter(norm, [SMOOTH_MM / s for s in spacing])

    sides = _lung_fields(norm, smooth, spacing)
    columns = np.arange(norm.shape[1])
    zeros = np.zeros_like(columns)
    world_x = volume.voxel_to_world(grid.to_fine(np.column_stack([zeros, zeros, columns])))[:, 0]
    first, second = sides
    # the patient's left has the larger world x (LPS), whatever the display orientation
    x_first = float(world_x[np.nonzero(first)[1]].mean())
    x_second = float(world_x[np.nonzero(second)[1]].mean())
    left, right = (first, second) if x_first > x_second else (second, first)
    edges = ndimage.gaussian_filter1d(ndimage.gaussian_filter1d(norm, EDGE_SIGMA_MM / spacing[0], axis=0),
                                      EDGE_SIGMA_MM / spacing[1], axis=1, order=1)
    heart, borders, slope = _cardiac_silhouette(right, left, spacing, edges, smooth)
    # the lung fields take in the recesses behind the domes: their lateral extent is the thorax's
    left, right = (_with_recess(field, _lateral_recess(field, edges, spacing), spacing) for field in (left, right))
    thorax = span_last_axis(left | right)
    caveats = (_heart_border_caveats(borders, left, heart, thorax, spacing)
               + _dome_slope_caveats(slope, borders, heart, thorax, spacing)
               + _hidden_heart_caveats(borders, left | right, heart, thorax, norm, spacing)
               + _aerated_heart_caveats(heart, left | right, smooth))

    def full(mask: np.ndarray) -> np.ndarray:
        return grid.upsample(mask[None].astype(np.uint8))[0].astype(bool)

    return RadiographLabels(lung_left=full(left), lung_right=full(right), heart=full(heart), thorax=full(thorax),
                            caveats=caveats)


def _analysis_spacing(volume: Volume, grid: CoarseGrid) -> tuple[float, float]:
    """Pixel size (mm) of the working copy that the analysis' mm parameters are applied at.

    The file's spacing when it gave one; otherwise (a PNG, a DICOM without PixelSpacing) the
    assumed 1.0 mm says nothing of the anatomy's size in pixels, and a chest radiograph's field
    is the chest by design (a 35 x 43 cm detector), so the longer side is taken to span
    `NOMINAL_FIELD_MM`. Only the analysis' scale uses it: measurements keep the volume's spacing
    (and its "assumed" flag).
    """
    coarse = grid.coarse_spacing(volume.spacing)[1:]
    if not volume.facts["spacing"].assumed:
        return coarse
    size = NOMINAL_FIELD_MM / max(volume.shape[1:]) * grid.strides[1]
    return size, size


def _lung_fields(norm: np.ndarray, smooth: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two lung fields (image-left one first): dark basins enclosed by brighter tissue, grown
    to the steepest edge around them (module docstring, 2-3)."""
    from skimage.morphology import reconstruction
    from skimage.segmentation import watershed

    # grey-level hole filling: each pixel rises to the lowest rim it must cross to reach the image
    # border; air outside the body reaches the border (depth 0), a lung is walled in by the chest
    seed = np.full_like(smooth, smooth.max())
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        seed[edge] = smooth[edge]
    depth = reconstruction(seed, smooth, method="erosion") - smooth
    basins, n = ndimage.label(depth > BASIN_DEPTH)
    held = ndimage.sum(depth, basins, np.arange(1, n + 1)) if n else np.zeros(0)
    order = np.argsort(held)[::-1] + 1
    if n < 2 or held[order[1] - 1] < LUNG_CORE_BALANCE * held[order[0] - 1]:
        raise SegmentationError(
            "two lung fields were not found on the radiograph (need two dark regions walled in by "
            "brighter tissue); is this a frontal (PA/AP) chest radiograph?"
        )
    markers = np.zeros(norm.shape, dtype=np.int32)
    for value, label in ((1, order[0]), (2, order[1])):
        basin = basins == label
        deep = depth > CORE_FRACTION * np.percentile(depth[basin], 95)
        markers[ndimage.binary_fill_holes(basin & deep)] = value
    far = ndimage.distance_transform_edt(markers == 0, sampling=spacing) > GROW_MM
    # between the two lungs, tissue brighter than halfway from the lungs to what lies beyond their
    # reach is mediastinum or heart: a heart overlapping a lung field stops it at its own edge.
    # Only there: the lower lung zones, under more soft tissue, are as bright laterally
    beyond = smooth[far] if far.any() else smooth[markers == 0]  # a film hardly larger than the lungs
    level = (np.median(smooth[markers > 0]) + np.median(beyond)) / 2.0 if beyond.size else np.inf
    bright = (smooth >= level) & _between(markers == 1, markers == 2)
    markers[far | (bright & (ndimage.distance_transform_edt(bright, sampling=spacing) >= TISSUE_MARGIN_MM))] = 3
    edges = ndimage.gaussian_gradient_magnitude(norm, [EDGE_SIGMA_MM / s for s in spacing])
    grown = watershed(edges, markers)
    fields = [ndimage.binary_fill_holes(grown == value) for value in (1, 2)]
    fields.sort(key=lambda m: float(np.nonzero(m)[1].mean()))
    return fields[0], fields[1]


def _between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the pixels strictly between masks ``a`` and ``b`` (in either order) on rows holding both."""
    out = np.zeros(a.shape, dtype=bool)
    cols = np.arange(a.shape[1])
    for r in np.flatnonzero(a.any(axis=1) & b.any(axis=1)):
        ca, cb = np.flatnonzero(a[r]), np.flatnonzero(b[r])
        lo, hi = (ca[-1], cb[0]) if ca.mean() < cb.mean() else (cb[-1], ca[0])
        out[r] = (cols > lo) & (cols < hi)
    return out


def _cardiac_silhouette(
    right: np.ndarray, left: np.ndarray, spacing: tuple[float, float], column_rise: np.ndarray, smooth: np.ndarray
) -> tuple[np.ndarray, list[dict[int, float]]]:
    """The cardiac silhouette between the patient's ``right`` and ``left`` lung fields: the span
    between their medial edges below the ellipse fitted to the heart borders' centre, the ellipse
    above it (module docstring, 4); and the two borders (`_heart_borders`)."""
    lungs = right | left
    rows = np.flatnonzero(lungs.any(axis=1))
    mid = (rows[0] + rows[-1]) / 2.0
    borders = _heart_borders(right, left, spacing, mid, column_rise)
    # below the left field's lower inner corner a short outward contour is the dome's slope, not heart
    to_right = 1 if np.nonzero(right)[1].mean() > np.nonzero(left)[1].mean() else -1  # the left field's midline side
    slope = _dome_slope(borders[1], left, spacing, to_right)
    borders[1] = {r: c for r, c in borders[1].items() if r not in slope}
    if borders[0] and borders[1]:
        borders[0] = _aerated_edge(smooth, right, borders[0], borders[1], spacing)
    band = _cardiac_band(borders, lungs.shape)
    ellipse = _heart_ellipse(borders, spacing, lungs.shape)
    cols = np.flatnonzero(band.any(axis=0))
    if ellipse is not None:
        centre_row = int(np.flatnonzero(ellipse.any(axis=1)).mean())
        band[:centre_row] = False
        heart = band | ellipse
    else:  # too few border points for a fit: the span alone
        heart = band
    # the width a reader measures: the span the two heart borders bound
    heart[:, : cols[0]] = False
    heart[:, cols[-1] + 1:] = False
    # the heart rests on the diaphragm, which lies no lower than the lung fields' lowest point
    heart[rows[-1] + 1:] = False
    heart &= ~lungs
    labels, n = ndimage.label(heart)
    if n > 1:
        sizes = component_sizes(labels, n)
        sizes[0] = 0
        heart = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(heart), borders, slope


def _dome_slope(border: dict[int, float], field: np.ndarray, spacing: tuple[float, float],
                medial: int) -> dict[int, float]:
    """The rows of the left heart ``border`` (`_heart_borders`) that are the left hemidiaphragm's
    medial slope: those below the ``field``'s lower inner corner (its extreme point towards feet and
    ``medial``, the column direction to the midline) when they run outward beyond the border above
    that corner and span less than `DOME_SLOPE_MM` from the corner down; else none.

    Under a normal heart the corner is the cardiophrenic angle and the field's medial contour goes
    on below it down the dome towards the lateral recess, as obliquely as an enlarged heart's border
    (45-60 degrees from vertical), so the direction alone cannot tell them apart (nor, on tuning films,
    whether the border above the corner has turned vertical: a normal heart's apex region may do so
    too). Their height does: the dome's slope ends within about the dome's height (the recess lies
    about 2 cm lower), while an enlarged heart whose border reaches below the corner bulges out over
    several cm. A heart whose apex truly meets the dome keeps its width when its widest point is at
    or above the corner; an oblique apex ending less than `DOME_SLOPE_MM` below it is cut short, and
    `_dome_slope_caveats` then gives the wider ratio when it changes the answer.
    """
    if not border:
        return {}
    corner = _extreme_row(field, spacing, medial)
    tail = {r: c for r, c in border.items() if r > corner}
    above = [-medial * c for r, c in border.items() if r <= corner]
    if (not tail or not above or (max(tail) - corner) * spacing[0] >= DOME_SLOPE_MM
            or max(-medial * c for c in tail.values()) <= max(above)):
        return {}
    return tail


def _heart_borders(
    right: np.ndarray, left: np.ndarray, spacing: tuple[float, float], mid: float, column_rise: np.ndarray
) -> list[dict[int, float]]:
    """Per lung field (right, left), row -> column of the pixel edge between it and the heart: its
    medial edge from ``mid`` down to where the heart meets the diaphragm.

    On the right the heart border is steep and meets the flat dome in a corner, the lung's extreme
    point towards feet-and-midline. On the left the border of an enlarged heart runs obliquely down
    to the lung's lowest point, so that corner is ill-defined; there the border is followed down to
    the field's lowest row, but no further than `LEFT_DOME_BELOW_MM` below the right corner, so the
    lateral costophrenic recess (which reaches lower) is not taken for heart. On both sides, rows
    where the contour runs flatter than `HEART_BORDER_MAX_RUN` are the field's lower border (the
    diaphragm, or the edge of a lost faint lower zone) and are left out. Where the left field ends
    above that limit (a lower zone under soft tissue lost), the heart's own edge (brighter towards
    the midline, ``column_rise`` the derivative along columns) is followed on down (`_follow_edge`).
    """
    cols_right, cols_left = np.nonzero(right)[1], np.nonzero(left)[1]
    medial_right = 1 if cols_right.mean() < cols_left.mean() else -1  # column direction to the midline
    # the cardiophrenic angle lies in the field's medial half: a deep lateral recess under a high dome
    # reaches lower, and taking its tip would follow the dome out to the chest wall as heart border
    centre = (cols_right.min() + cols_right.max()) / 2.0
    medial_half = right & ((np.arange(right.shape[1]) - centre) * medial_right >= 0)[None, :]
    right_bottom = _extreme_row(medial_half, spacing, medial_right)
    left_bottom = min(int(np.flatnonzero(left.any(axis=1))[-1]),
                      right_bottom + int(round(LEFT_DOME_BELOW_MM / spacing[0])))
    half = max(1, int(round(BORDER_SLOPE_MM / 2.0 / spacing[0])))
    borders = []
    for mask, medial, bottom in ((right, medial_right, right_bottom), (left, -medial_right, left_bottom)):
        rows = np.arange(int(np.ceil(mid)), bottom + 1)
        rows = rows[mask[rows].any(axis=1)]
        if rows.size == 0:
            borders.append({})
            continue
        edge = np.array([np.flatnonzero(mask[r])[-1] + 1.0 if medial > 0 else float(np.flatnonzero(mask[r])[0])
                         for r in rows])
        # the contour's run across rows: a flat stretch is the field's lower border, not the heart's
        lo, hi = np.clip(np.arange(rows.size) - half, 0, rows.size - 1), np.clip(np.arange(rows.size) + half, 0,
                                                                                 rows.size - 1)
        run = np.abs(edge[hi] - edge[lo]) * spacing[1] / np.maximum((rows[hi] - rows[lo]) * spacing[0], 1e-6)
        steep = run <= HEART_BORDER_MAX_RUN
        if medial != medial_right:
            # above the right cardiophrenic angle's height the left hemidiaphragm is not yet reached
            # (it lies lower than the right): a more oblique contour there is an enlarged heart's border
            steep |= (run <= ENLARGED_BORDER_MAX_RUN) & (rows <= right_bottom - ENLARGED_BORDER_ABOVE_MM / spacing[0])
        if medial != medial_right:
            # a flat stretch followed by a contour shorter than `RECESS_MM`: the lower border, the
            # costophrenic recess' tip beyond it is not heart (an oblique heart border goes on longer)
            flat, _ = ndimage.label(~steep)
            for run in ndimage.find_objects(flat):
                start, stop = run[0].start, run[0].stop
                if start and (rows[-1] - rows[stop - 1]) * spacing[0] < RECESS_MM:
                    steep[start:] = False
                    break
        border = {int(r): float(c) for r, c in zip(rows[steep], edge[steep])}
        if medial != medial_right and border:
            rise = medial * column_rise
            end = max(border)
            strength = float(np.median([rise[r, int(min(c, rise.shape[1] - 1))] for r, c in border.items()]))
            limit = right_bottom + int(round(LEFT_DOME_BELOW_MM / spacing[0]))
            border.update(_follow_edge(rise, end, int(border[end]), limit, RECESS_EDGE_FRACTION * strength))
        borders.append(border)
    return borders


def _aerated_edge(smooth: np.ndarray, field: np.ndarray, border: dict[int, float], other: dict[int, float],
                  spacing: tuple[float, float]) -> dict[int, float]:
    """The right heart ``border`` (row -> column, `_heart_borders`) moved medially to where the film
    rises halfway from the aerated lung beside the field's medial edge to the heart
    (`HEART_EDGE_LEVEL`), at most `HEART_EDGE_MAX_SHIFT` of the span to the ``other`` border.

    The lower medial zone of the right lung (hilar and lower-lobe vessels, pericardial fat) is
    brighter than the rest of the field and the watershed often stops short of it, so the field's
    medial edge lies out in the lung, not on the right atrium's edge; the heart and the spine behind
    it are brighter still. A row's border moves only when the half level lies more than
    `HEART_EDGE_MIN_SHIFT_MM` beyond the field: where the field reaches the heart, the heart's edge
    rises right beyond it (at once on a sharp edge, over some mm on a rounded one) and the border
    stays. Rows are median-filtered over `BORDER_SLOPE_MM`.
    """
    medial = 1 if np.mean(list(other.values())) > np.mean(list(border.values())) else -1
    reach = max(1, int(round(LUNG_LEVEL_MM / spacing[1])))
    gap = int(round(HEART_EDGE_MIN_SHIFT_MM / spacing[1]))
    other_rows = np.array(sorted(other))
    moved = {}
    for r, c in border.items():
        start = int(c) if medial > 0 else int(c) - 1  # the first pixel beyond the lung field
        far = int(other[int(other_rows[np.argmin(np.abs(other_rows - r))])])
        lo, hi = sorted((start, far))
        beside = np.arange(start - reach, start) if medial > 0 else np.arange(start + 1, start + 1 + reach)
        beside = beside[(beside >= 0) & (beside < smooth.shape[1])]
        beside = beside[field[r, beside]]
        if hi - lo < 3 or beside.size == 0:
            moved[r] = c
            continue
        lung = float(np.median(smooth[r, beside]))
        third = (hi - lo) // 3
        heart = float(np.median(smooth[r, lo + third:hi - third + 1]))
        level = lung + HEART_EDGE_LEVEL * (heart - lung)
        col, limit = start, start + medial * int((hi - lo) * HEART_EDGE_MAX_SHIFT)
        while col != limit and smooth[r, col] < level:
            col += medial
        # a crossing close beyond the field is the heart's own rounded edge rising: the field's edge stays
        moved[r] = float(col if medial > 0 else col + 1) if abs(col - start) > gap else c
    rows = np.array(sorted(moved))
    size = max(3, int(round(BORDER_SLOPE_MM / spacing[0]))) | 1
    cols = ndimage.median_filter(np.array([moved[r] for r in rows]), size=size, mode="nearest")
    return {int(r): float(c) for r, c in zip(rows, cols)}


def _cardiac_band(borders: list[dict[int, float]], shape: tuple[int, int]) -> np.ndarray:
    """Row-wise span between the two heart borders, on the rows at least `HEART_MIN_FRACTION` as
    wide as the widest (the heart, not the narrower upper mediastinum). Below the end of the
    shorter border its last column is kept, so the other border is followed down to its own end."""
    spans = {}
    last: list[float | None] = [None, None]
    for r in range(min(min(b, default=shape[0]) for b in borders), max(max(b, default=-1) for b in borders) + 1):
        for side, border in enumerate(borders):
            last[side] = border.get(r, last[side])
        if None not in last:
            start, stop = int(min(last)), int(max(last))
            if stop > start:
                spans[r] = (start, stop)
    if not spans:
        raise SegmentationError("no cardiac silhouette between the lung fields in the lower chest")
    widest = max(stop - start for start, stop in spans.values())
    band = np.zeros(shape, dtype=bool)
    for r, (start, stop) in spans.items():
        if stop - start >= HEART_MIN_FRACTION * widest:
            band[r, start:stop] = True
    return band


def _heart_ellipse(
    borders: list[dict[int, float]], spacing: tuple[float, float], shape: tuple[int, int]
) -> np.ndarray | None:
    """The ellipse fitted (in mm) to the heart border points. None when the fit fails or does not
    lie between the borders."""
    from skimage.draw import ellipse as ellipse_pixels
    from skimage.measure import EllipseModel

    # (row, column) on the pixel edge between lung and heart
    pts = np.asarray([(r, c - 0.5) for border in borders for r, c in border.items()], dtype=float).reshape(-1, 2)
    if len(pts) < 6:
        return None
    model = EllipseModel.from_estimate(pts[:, ::-1] * np.array(spacing[::-1]))  # (x, y) in mm
    if not model:
        return None
    (xc, yc), (a, b), theta = model.center, model.axis_lengths, model.theta
    if not pts[:, 1].min() < xc / spacing[1] < pts[:, 1].max():
        return None
    mask = np.zeros(shape, dtype=bool)
    rr, cc = ellipse_pixels(yc / spacing[0], xc / spacing[1], b / spacing[0], a / spacing[1],
                            shape=mask.shape, rotation=-theta)
    mask[rr, cc] = True
    return mask if mask.any() else None


def _heart_border_caveats(
    borders: list[dict[int, float]], left: np.ndarray, heart: np.ndarray, thorax: np.ndarray,
    spacing: tuple[float, float]
) -> list[str]:
    """Why the silhouette's width may be too large: its left border was followed below the left
    field's corner towards feet-and-midline (`_heart_borders`), or below the right border's end (the
    right cardiophrenic angle: the heart's lower border lies about there), whichever is higher. An
    enlarged heart's oblique left border goes on there, but so does the left hemidiaphragm or the
    rib margin of a lateral recess under a normal heart, and the field's contour alone cannot tell
    them apart; when ending the border there would narrow the silhouette by more than
    `HEART_BORDER_AMBIGUITY` of the thoracic width, the evidence says so.
    """
    right_border, left_border = borders
    if not right_border or not left_border:
        return []
    outward = _left_outward(borders)
    corner = min(_extreme_row(left, spacing, -outward), max(right_border))
    out = {r: outward * c for r, c in left_border.items()}
    above = [c for r, c in out.items() if r <= corner]
    ratio, thorax_width = _silhouette_ratio(heart, thorax)
    narrower = (max(out.values()) - max(above, default=min(out.values()))) / thorax_width
    if not _ratio_would_change(ratio, ratio - narrower):
        return []
    return [f"the heart's left border was followed below the left lung field's lower inner corner or the right "
            f"cardiophrenic angle's height (an enlarged heart's oblique border goes on there, but so does the left "
            f"hemidiaphragm under a normal heart): if it ends there, the cardiothoracic ratio is "
            f"{ratio - narrower:.2f} instead of {ratio:.2f}"]


def _dome_slope_caveats(
    slope: dict[int, float], borders: list[dict[int, float]], heart: np.ndarray, thorax: np.ndarray,
    spacing: tuple[float, float]
) -> list[str]:
    """Why the silhouette's width may be too small: the left border's ``slope`` (`_dome_slope`) was
    taken for the left hemidiaphragm, and an enlarged heart's oblique border could also end that
    way; when counting it as heart changes the answer (`_ratio_would_change`), the evidence says so,
    with the ratio it would give."""
    right_border, left_border = borders
    if not slope or not right_border or not left_border:
        return []
    outward = _left_outward(borders)
    ratio, thorax_width = _silhouette_ratio(heart, thorax)
    wider = (max(outward * c for c in slope.values()) - max(outward * c for c in left_border.values())) / thorax_width
    if not _ratio_would_change(ratio, ratio + wider):
        return []
    height = (max(slope) - min(slope) + 1) * spacing[0]
    return [f"the heart's left border was ended at the left lung field's lower inner corner: the {height:.0f} mm of "
            f"contour running out below it were taken for the left hemidiaphragm's slope (under a normal heart the "
            f"dome goes on there; an enlarged heart's oblique border usually runs on longer): if they are heart, the "
            f"cardiothoracic ratio is {ratio + wider:.2f} instead of {ratio:.2f}"]


def _left_outward(borders: list[dict[int, float]]) -> int:
    """The column direction (+1 or -1) from the right heart border towards the left one (both non-empty)."""
    right_border, left_border = borders
    return 1 if np.mean(list(left_border.values())) > np.mean(list(right_border.values())) else -1


def _silhouette_ratio(heart: np.ndarray, thorax: np.ndarray) -> tuple[float, int]:
    """The cardiothoracic ratio of the masks (widest column spans) and the thorax's span in columns."""
    thorax_width = int(np.ptp(np.flatnonzero(thorax.any(axis=0)))) + 1
    return (int(np.ptp(np.flatnonzero(heart.any(axis=0)))) + 1) / thorax_width, thorax_width


def _ratio_would_change(ratio: float, other: float) -> bool:
    """Whether another reading ``other`` of the cardiothoracic ``ratio`` changes the answer: by more than
    `HEART_BORDER_AMBIGUITY`, or across the enlarged-heart cut-off (`CTR_ENLARGED`)."""
    return abs(other - ratio) > HEART_BORDER_AMBIGUITY or (ratio > CTR_ENLARGED) != (other > CTR_ENLARGED)


def _hidden_heart_caveats(
    borders: list[dict[int, float]], lungs: np.ndarray, heart: np.ndarray, thorax: np.ndarray, norm: np.ndarray,
    spacing: tuple[float, float]
) -> list[str]:
    """Why the silhouette's width may be too small: the lung fields' lower borders are faint (no
    diaphragm under them, `grounding.plausibility.XR_DIAPHRAGM_CONTRAST`: lower zones under soft
    tissue lost) and the right heart border ends less than `HEART_WIDEST_DEPTH` thoracic widths below
    the lung apex, above where a heart is widest. Its widest part may then lie hidden below the
    fields (JSRT tuning films: the width was short by 0.1-1.4 of the hidden height, in the same units).
    The caveat gives the ratio one thoracic width of heart width per thoracic width hidden would make,
    when that changes the answer (`_ratio_would_change`); with a clear diaphragm edge nothing is hidden.
    """
    right_border = borders[0]
    if not right_border or not heart.any() or lower_border_contrast(lungs, norm) >= XR_DIAPHRAGM_CONTRAST:
        return []
    ratio, thorax_width = _silhouette_ratio(heart, thorax)
    apex = int(np.flatnonzero(lungs.any(axis=1))[0])
    depth = (max(right_border) - apex) * spacing[0] / (thorax_width * spacing[1])
    hidden = HEART_WIDEST_DEPTH - depth
    if hidden <= 0 or not _ratio_would_change(ratio, ratio + hidden):
        return []
    return [f"the lung fields' lower borders are faint (their lower zones probably lost) and the heart's right "
            f"border ends {depth:.2f} thoracic widths below the lung apex, above where a heart is usually widest "
            f"(about {HEART_WIDEST_DEPTH}): its widest part may be hidden below the fields, and the cardiothoracic "
            f"ratio up to about {ratio + hidden:.2f} instead of {ratio:.2f}"]


def _aerated_heart_caveats(heart: np.ndarray, lungs: np.ndarray, smooth: np.ndarray) -> list[str]:
    """Why the silhouette may not be the heart: over `HEART_AERATED_FRACTION` of it is as dark as
    the lung fields' median, i.e. it holds aerated lung. The heart is brighter than any lung; a
    silhouette over lung means a lung field was mis-found (e.g. the dark gap between arm and chest
    taken for one), and so are the borders drawn between the fields."""
    if not heart.any() or not lungs.any():
        return []
    aerated = float(np.mean(smooth[heart] <= np.median(smooth[lungs])))
    if aerated <= HEART_AERATED_FRACTION:
        return []
    return [f"{aerated:.0%} of the cardiac silhouette is as dark as the lung fields (aerated lung, not heart): a lung "
            f"field was probably mis-found, so the heart's borders and the cardiothoracic ratio may be wrong"]


def _lateral_recess(field: np.ndarray, column_rise: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """The inner rib margin below a lung field's widest row, followed down into the lateral
    costophrenic recess (module docstring, 5); a mask of the traced edge pixels.

    The recess lies behind the dome and under the most soft tissue, so it is brighter than the field
    and the watershed seldom reaches it (the field's lateral contour curves in above it), but its
    lateral edge (lung darker than the chest wall outside it) goes on. From the field's most lateral
    edge pixel, each next row takes the column within a pixel whose intensity rises most steeply
    outwards (``column_rise``: the derivative along columns, sign flipped here for a field on the
    image's left), while that rise stays at least `RECESS_EDGE_FRACTION` of the field's own lateral
    edge in its lower half, for at most `RECESS_MAX_MM`; below the recess the edge is gone.
    """
    out = np.zeros(field.shape, dtype=bool)
    rows = np.flatnonzero(field.any(axis=1))
    outward = 1 if np.nonzero(field)[1].mean() > field.shape[1] / 2 else -1
    rise = outward * column_rise
    lateral = np.array([np.flatnonzero(field[r])[-1] if outward > 0 else np.flatnonzero(field[r])[0] for r in rows])
    lower = rows >= (rows[0] + rows[-1]) / 2.0
    strength = float(np.median(rise[rows[lower], lateral[lower]]))
    if strength <= 0:
        return out
    widest = int(np.argmax(outward * lateral))
    traced = _follow_edge(rise, int(rows[widest]), int(lateral[widest]),
                          int(rows[widest]) + int(RECESS_MAX_MM / spacing[0]), RECESS_EDGE_FRACTION * strength)
    for r, c in traced.items():
        out[r, c] = True
    return out


def _with_recess(field: np.ndarray, margin: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """``field`` widened to its traced rib ``margin`` (`_lateral_recess`): on the field's rows up to
    the margin, below it a wedge between the margin and the dome, taken to rise at 45 degrees
    towards the midline from the recess' tip (the dome itself is not visible there), no further in
    than the field's own lowest row reaches."""
    out = field.copy()
    rows = np.flatnonzero(margin.any(axis=1))
    if rows.size == 0:
        return out
    outward = 1 if np.nonzero(field)[1].mean() > field.shape[1] / 2 else -1
    # the wedge never reaches past the field's medial edge on its lowest row (nor the midline)
    base = np.flatnonzero(field[np.flatnonzero(field.any(axis=1))[-1]])
    medial_limit = int(base[0] if outward > 0 else base[-1])
    for r in rows:
        col = int(np.flatnonzero(margin[r])[0])
        cols = np.flatnonzero(field[r])
        if cols.size:
            inner = int(cols[-1] if outward > 0 else cols[0])
        else:
            inner = col - outward * int((rows[-1] - r) * spacing[0] / spacing[1])
            inner = max(inner, medial_limit) if outward > 0 else min(inner, medial_limit)
        lo, hi = sorted((col, inner))
        out[r, lo:hi + 1] = True
    return out


def _follow_edge(rise: np.ndarray, row: int, col: int, last_row: int, floor: float) -> dict[int, int]:
    """An edge followed down from (``row``, ``col``): each next row (to ``last_row`` at most) takes
    the column within a pixel of the last where ``rise`` is largest, while that stays above ``floor``;
    row -> column of the pixels taken."""
    out = {}
    for r in range(row + 1, min(rise.shape[0] - 1, last_row) + 1):
        window = np.arange(max(col - 1, 0), min(col + 2, rise.shape[1]))
        best = int(window[np.argmax(rise[r, window])])
        if rise[r, best] < floor:
            break
        out[r] = col = best
    return out


def _extreme_row(mask: np.ndarray, spacing: tuple[float, float], medial: int) -> int:
    """Row of the mask's extreme point towards the feet (row + 1) and ``medial`` (column sign)."""
    rows, cols = np.nonzero(mask)
    return int(rows[np.argmax(rows * spacing[0] + medial * cols * spacing[1])])
