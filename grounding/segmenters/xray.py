"""Classical analysis of a frontal (PA/AP) chest radiograph: lung fields, cardiac silhouette, thorax.

Works on a 2-D volume (one slice) whose rows run from head to feet, as radiographs are stored
and shown; left and right come from the affine (world ``x``, LPS: +x is the patient's left), so
a PA film with the patient's right on the image left and a mirrored film both come out right.
The analysis runs on a copy with pixels of about `WORK_MM` (anti-aliased block-centre samples)
and the masks are brought back to the input's pixels by nearest-block upsampling.

1. **normalise**: intensities mapped to 0..1 between the 1st and 99th percentile (robust to
   burnt-in labels and collimator edges), then smoothed (Gaussian, `SMOOTH_MM`).
2. **body**: everything except the dark background connected to the image border (below
   `BACKGROUND_LEVEL`); an image filled by the patient is all body.
3. **lung seeds**: the lung/tissue threshold is Otsu's within the body. Dark pixels deeper than
   `LUNG_CORE_MM` inside the dark region are lung cores; thin dark bands (the soft tissue along
   the body edge, intercostal gaps) never are. The two largest cores are the two lungs.
4. **lung fields**: a marker watershed on the gradient magnitude (Gaussian, `EDGE_SIGMA_MM`)
   grows the cores to the steepest surrounding edge: the inner rib margins, the diaphragm domes
   and the heart borders (a projected organ's silhouette is its steepest edge). Markers of
   "not lung" are tissue brighter than the threshold (deeper than `TISSUE_MARGIN_MM`), the
   background, and a `SKIN_BAND_MM` band inside the body edge. Holes are filled.
5. **heart**: between the lungs, from the lungs' mid-height down to the higher of the two
   cardiophrenic angles (each lung's extreme point towards feet-and-midline), the row-wise span
   between the medial lung edges; rows where the span is at least `HEART_MIN_FRACTION` of its
   widest are the cardiac silhouette (the narrower upper mediastinum is not), filled.
6. **thorax**: per row, the span from the outermost lung edge on one side to the other: the
   thoracic cavity between the inner rib margins, lung apex to base.

Limits: the lung fields are what a reader sees: lung hidden behind the heart or below the
diaphragm domes is not in them. Widths are biased by about +1 pixel of `WORK_MM` per edge
(the steepest edge of a blurred silhouette lies just outside it). Consolidation, effusion or a
large mass that erases a lung field, lateral views, and rotated or AP supine films can defeat
it; a `SegmentationError` says so when two lung fields are not found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from grounding.segmenters.base import SegmentationError
from grounding.segmenters.morphology import CoarseGrid, component_sizes, span_last_axis
from imaging.volume import Volume

#: working pixel size (mm) of the analysis
WORK_MM = 1.0
#: intensity percentiles mapped to 0 and 1
PERCENTILES = (1.0, 99.0)
#: Gaussian smoothing (mm) before thresholding: rib stripes and noise
SMOOTH_MM = 3.0
#: Gaussian scale (mm) of the gradient the lung fields are grown on
EDGE_SIGMA_MM = 1.0
#: normalised intensity below which border-connected pixels are background (outside the body)
BACKGROUND_LEVEL = 0.1
#: dark pixels this deep (mm) inside the dark region seed the lungs
LUNG_CORE_MM = 12.0
#: bright pixels this deep (mm) inside the bright region are "not lung" markers
TISSUE_MARGIN_MM = 2.0
#: a band this wide (mm) inside the body edge is "not lung" (skin and subcutaneous tissue)
SKIN_BAND_MM = 10.0
#: rows whose silhouette span is at least this fraction of the widest are heart
HEART_MIN_FRACTION = 0.5
#: the smaller lung core must be at least this fraction of the larger
LUNG_CORE_BALANCE = 0.1

RIGHT, LEFT = 1, 2


@dataclass
class RadiographLabels:
    """Masks of one radiograph, each of the image's 2-D shape (rows, columns).

    Attributes:
        lung_left, lung_right: the patient's left and right lung fields.
        heart: the cardiac silhouette.
        thorax: the thoracic cavity (row-wise span of the lung fields).
    """

    lung_left: np.ndarray
    lung_right: np.ndarray
    heart: np.ndarray
    thorax: np.ndarray

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


def analyze_radiograph(volume: Volume, work_mm: float = WORK_MM) -> RadiographLabels:
    """Lung fields, cardiac silhouette and thorax of a frontal chest radiograph (module docstring).

    Args:
        volume: a 2-D XR volume (shape ``(1, rows, columns)``), rows from head to feet.
        work_mm: pixel size (mm) of the working copy (default `WORK_MM`).

    Raises:
        SegmentationError: not a 2-D radiograph, or two lung fields not found.
    """
    require_radiograph(volume, "lungs")
    grid = CoarseGrid.for_spacing(volume.shape, volume.spacing, work_mm)
    spacing = grid.coarse_spacing(volume.spacing)[1:]
    image = volume.data[0].astype(np.float32)
    if not grid.is_identity:  # anti-alias before taking block centres
        image = ndimage.gaussian_filter(image, [s / 2.0 for s in grid.strides[1:]])
    image = grid.sample(image[None])[0]
    lo, hi = np.percentile(image, PERCENTILES)
    if hi <= lo:
        raise SegmentationError("the radiograph is blank (no contrast): no lung fields to find")
    norm = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    smooth = ndimage.gaussian_filter(norm, [SMOOTH_MM / s for s in spacing])

    body = _body(smooth)
    sides = _lung_fields(norm, smooth, body, spacing)
    columns = np.arange(norm.shape[1])
    zeros = np.zeros_like(columns)
    world_x = volume.voxel_to_world(grid.to_fine(np.column_stack([zeros, zeros, columns])))[:, 0]
    first, second = sides
    # the patient's left has the larger world x (LPS), whatever the display orientation
    x_first = float(world_x[np.nonzero(first)[1]].mean())
    x_second = float(world_x[np.nonzero(second)[1]].mean())
    left, right = (first, second) if x_first > x_second else (second, first)
    heart = _cardiac_silhouette(first, second, spacing)
    thorax = span_last_axis(first | second)

    def full(mask: np.ndarray) -> np.ndarray:
        return grid.upsample(mask[None].astype(np.uint8))[0].astype(bool)

    return RadiographLabels(lung_left=full(left), lung_right=full(right), heart=full(heart), thorax=full(thorax))


def _body(smooth: np.ndarray) -> np.ndarray:
    """Everything but the dark background connected to the image border."""
    labels, _ = ndimage.label(smooth < BACKGROUND_LEVEL)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    body = ndimage.binary_fill_holes(~outside)
    if not body.any():
        raise SegmentationError("no body found on the radiograph (the image is all background)")
    return body


def _lung_fields(
    norm: np.ndarray, smooth: np.ndarray, body: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The two lung fields (image-left one first) by a marker watershed on the gradient."""
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    threshold = float(threshold_otsu(smooth[body]))
    dark = (smooth < threshold) & body
    core_labels, n = ndimage.label(ndimage.distance_transform_edt(dark, sampling=spacing) >= LUNG_CORE_MM)
    sizes = component_sizes(core_labels, n)
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    if n < 2 or sizes[order[1]] < LUNG_CORE_BALANCE * sizes[order[0]]:
        raise SegmentationError(
            "two lung fields were not found on the radiograph (need two dark regions at least "
            f"{2 * LUNG_CORE_MM:g} mm wide inside the body); is this a frontal (PA/AP) chest radiograph?"
        )
    bright = smooth >= threshold
    markers = np.zeros(norm.shape, dtype=np.int32)
    markers[bright & (ndimage.distance_transform_edt(bright, sampling=spacing) >= TISSUE_MARGIN_MM)] = 3
    markers[ndimage.distance_transform_edt(body, sampling=spacing) <= SKIN_BAND_MM] = 3
    markers[core_labels == order[0]] = 1
    markers[core_labels == order[1]] = 2
    edges = ndimage.gaussian_gradient_magnitude(norm, [EDGE_SIGMA_MM / s for s in spacing])
    grown = watershed(edges, markers)
    fields = [ndimage.binary_fill_holes(grown == value) for value in (1, 2)]
    fields.sort(key=lambda m: float(np.nonzero(m)[1].mean()))
    return fields[0], fields[1]


def _cardiac_silhouette(
    image_left: np.ndarray, image_right: np.ndarray, spacing: tuple[float, float]
) -> np.ndarray:
    """Row-wise span between the medial lung edges over the cardiac rows (module docstring, 5)."""
    both = np.flatnonzero(image_left.any(axis=1) & image_right.any(axis=1))
    rows = np.flatnonzero((image_left | image_right).any(axis=1))
    mid = (rows[0] + rows[-1]) / 2.0
    # cardiophrenic angles: each lung's extreme point towards the feet and the midline (mm)
    bottom = min(_extreme_row(image_left, spacing, +1), _extreme_row(image_right, spacing, -1))
    heart = np.zeros(image_left.shape, dtype=bool)
    spans = {}
    for r in both[(both >= mid) & (both <= bottom)]:
        start = int(np.flatnonzero(image_left[r])[-1]) + 1
        stop = int(np.flatnonzero(image_right[r])[0])
        if stop > start:
            spans[int(r)] = (start, stop)
    if not spans:
        raise SegmentationError("no cardiac silhouette between the lung fields in the lower chest")
    widest = max(stop - start for start, stop in spans.values())
    for r, (start, stop) in spans.items():
        if stop - start >= HEART_MIN_FRACTION * widest:
            heart[r, start:stop] = True
    labels, n = ndimage.label(heart)
    if n > 1:
        sizes = component_sizes(labels, n)
        sizes[0] = 0
        heart = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(heart)


def _extreme_row(mask: np.ndarray, spacing: tuple[float, float], medial: int) -> int:
    """Row of the mask's extreme point towards the feet (row + 1) and ``medial`` (column sign)."""
    rows, cols = np.nonzero(mask)
    return int(rows[np.argmax(rows * spacing[0] + medial * cols * spacing[1])])
