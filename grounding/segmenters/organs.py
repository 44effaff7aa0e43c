"""Classical abdominal organs on CT: liver, spleen, left and right kidney. A heuristic.

The method uses attenuation and position only, so it suits non-contrast CT of a normal-looking
abdomen (and the `imaging.phantoms.abdomen_ct` phantom); on real scans, contrast phases,
fatty liver, cysts, splenomegaly or organs touching at similar HU defeat it. For real data the
TotalSegmentator adapter (``get_segmenter("totalsegmentator")``) is the recommended path.

1. The CT is smoothed (Gaussian, `SMOOTH_MM`: noise of 15 HU drops to about 4 HU).
2. Each organ's **core** is the smoothed voxels of the body (`grounding.segmenters.chest`) in
   the organ's HU band (`ORGAN_HU`), opened with a ball of `OPENING_MM` to cut thin bridges to
   neighbours of similar HU, then one connected component chosen by position in world mm (LPS;
   the midline is the body's centre in x), and at least `MIN_CORE_ML` in volume:

   * liver: the largest component whose centroid is on the patient's right;
   * spleen (liver excluded): the largest on the patient's left, at least `LATERAL_MM` from
     the midline and posterior to the body's centre;
   * kidneys (liver and spleen excluded): on each side the largest component posterior to the
     body's centre and at least `KIDNEY_LATERAL_MM` from the midline (beside the spine).

3. The core is **grown** back by up to `GROW_MM` into body voxels whose smoothed HU lies
   between `FAT_EDGE_HU` (halfway from fat to soft tissue: the organ-fat edge) and the top of the
   organ's band, not into organs found before; holes are filled slice by slice, so a lesion
   inside the liver is part of the liver.

Raises `SegmentationError` when no component fits (e.g. a chest CT without the abdomen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from grounding.segmenters.base import SegmentationError
from grounding.segmenters.morphology import component_sizes, ellipsoid, fill_holes_slicewise
from imaging.volume import Volume

#: smoothed-HU band of each organ's core (non-contrast CT)
ORGAN_HU: dict[str, tuple[float, float]] = {
    "liver": (50.0, 90.0),
    "spleen": (43.0, 57.0),
    "kidney": (25.0, 38.0),
}
#: Gaussian smoothing (mm) before thresholding
SMOOTH_MM = 2.0
#: radius (mm) of the opening that separates a core from touching tissue of similar HU
OPENING_MM = 3.0
#: how far (mm) a core is grown back to the organ's edge
GROW_MM = 4.0
#: smoothed HU halfway between fat (-90) and soft tissue (+40): the edge of an organ in fat
FAT_EDGE_HU = -25.0
#: the spleen's centroid lies at least this far (mm) left of the midline
LATERAL_MM = 40.0
#: a kidney's centroid lies at least this far (mm) from the midline (the spine is between them)
KIDNEY_LATERAL_MM = 20.0
#: components examined per organ, largest first
CANDIDATES = 8
#: smallest core (mL) taken for each organ: less is a fragment of something else, or an organ
#: at the edge of the field of view too small to measure
MIN_CORE_ML: dict[str, float] = {"liver": 100.0, "spleen": 20.0, "kidney": 20.0}

ABDOMEN_TARGETS = ("liver", "spleen", "kidney_left", "kidney_right")


@dataclass
class AbdomenOrgans:
    """The organs found on one CT (full-resolution boolean masks; missing ones are absent).

    Attributes:
        masks: target name -> mask.
        errors: target name -> why it was not found.
    """

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def mask(self, target: str) -> np.ndarray:
        """The mask of ``target``; raises `SegmentationError` with the reason when it was not found."""
        if target not in self.masks:
            raise SegmentationError(self.errors[target])
        return self.masks[target]


def find_abdominal_organs(volume: Volume, body: np.ndarray) -> AbdomenOrgans:
    """Liver, spleen and kidneys of a CT volume (see the module docstring).

    Args:
        volume: CT in HU, canonical LPS.
        body: the body mask on the volume's grid.
    """
    spacing = volume.spacing
    smooth = ndimage.gaussian_filter(volume.data.astype(np.float32), [SMOOTH_MM / s for s in spacing])
    mid_x, mid_y, _ = volume.voxel_to_world([ndimage.center_of_mass(body)])[0]
    where = {
        "liver": lambda x, y: x < mid_x,
        "spleen": lambda x, y: x > mid_x + LATERAL_MM and y > mid_y,
        "kidney_left": lambda x, y: x > mid_x + KIDNEY_LATERAL_MM and y > mid_y,
        "kidney_right": lambda x, y: x < mid_x - KIDNEY_LATERAL_MM and y > mid_y,
    }
    out = AbdomenOrgans()
    taken = np.zeros(volume.shape, dtype=bool)
    for band, targets in (("liver", ("liver",)), ("spleen", ("spleen",)), ("kidney", ("kidney_left", "kidney_right"))):
        low, high = ORGAN_HU[band]
        cores = _cores(volume, smooth, body & ~ndimage.binary_dilation(taken), (low, high), MIN_CORE_ML[band])
        for target in targets:
            core = next((mask for mask, (x, y, _) in cores if where[target](x, y)), None)
            if core is None:
                name = " ".join(reversed(target.split("_")))  # kidney_left -> left kidney
                out.errors[target] = (
                    f"no {name} found: no soft-tissue component of {low:g} to {high:g} HU and "
                    f"at least {MIN_CORE_ML[band]:g} mL where it should lie; is the upper abdomen in the field of "
                    "view? (the classical organ "
                    "segmenter is a heuristic; use --segmenter totalsegmentator on real scans)"
                )
                continue
            near = ndimage.distance_transform_edt(~core, sampling=spacing) <= GROW_MM
            grown = core | (near & body & ~taken & (smooth > FAT_EDGE_HU) & (smooth <= high))
            out.masks[target] = fill_holes_slicewise(grown) & ~taken
            taken |= out.masks[target]
    return out


def _cores(
    volume: Volume, smooth: np.ndarray, allowed: np.ndarray, band: tuple[float, float], min_ml: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Opened components of ``band`` within ``allowed`` of at least ``min_ml``, largest first, with
    their centroids (LPS mm)."""
    inside = (smooth >= band[0]) & (smooth <= band[1]) & allowed
    inside = ndimage.binary_opening(inside, ellipsoid(OPENING_MM, volume.spacing))
    labels, n = ndimage.label(inside)
    sizes = component_sizes(labels, n)
    sizes[0] = 0
    out = []
    for label in np.argsort(sizes)[::-1][:CANDIDATES]:
        if sizes[label] * volume.voxel_volume_mm3 < 1000.0 * min_ml:
            break
        mask = labels == label
        out.append((mask, volume.voxel_to_world(np.argwhere(mask).mean(axis=0, keepdims=True))[0]))
    return out
