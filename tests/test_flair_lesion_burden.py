"""FLAIR lesion burden on a brain whose lesions are no brighter than its brightest normal tissue.

Real FLAIRs (3-D, skull-stripped, N4-corrected) differ from the project's phantoms: white matter
is textured (its spread is several times the noise), grey matter is a shoulder about one spread
above it, and small MS lesions sit at the brain's 98th percentile, level with the bright tail of
the cortex. A threshold on the brain's percentiles finds nothing there (or the cortex). The
reproduction below is built here, not taken from any scan.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.segmenters.lesions import BrainTissue, MRLesions
from grounding.tool import ToolContext
from grounding.tools import default_registry
from imaging.locate import voxels_on_view
from imaging.volume import Volume

SPACING = (1.5, 1.5, 1.5)


def textured_brain(rng: np.random.Generator, shape: tuple[int, int, int], voxel_mm: float,
                   radii: tuple[float, float, float], grain: float, ventricle: tuple[float, ...]):
    """Coordinates (mm from the centre), an ellipsoidal brain of ``radii`` (x, y, z) with its depth
    below the surface, textured white matter at 90 (smooth random structure of ``grain`` voxels,
    SD 9, plus noise of SD 5, as N4-corrected white matter shows) and two dark ventricles
    (``ventricle``: lateral offset, then x, y, z radii and z centre, in mm)."""
    z, y, x = (np.indices(shape).astype(np.float32) - np.array(shape, np.float32)[:, None, None, None] / 2) * voxel_mm
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    brain = r <= 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), grain)
    texture *= 9.0 / texture[brain].std()
    img = (90.0 + texture + rng.normal(0, 5.0, shape)).astype(np.float32)
    offset, rx, ry, rz, cz = ventricle
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        ventricles |= ((x - side * offset) / rx) ** 2 + (y / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1
    img[ventricles] = 25.0 + rng.normal(0, 5.0, int(ventricles.sum()))
    return (z, y, x), brain, (1 - r) * min(radii), img, ventricles


def textured_flair(seed: int = 0, lesions: int = 8, cortex_gain: float = 7.0,
                   caps: bool = False) -> tuple[Volume, np.ndarray]:
    """A skull-stripped FLAIR (background exactly 0): textured white matter (level 90, spread about 9),
    a 3 mm cortical ribbon (along the surface and the sulci) ``cortex_gain`` brighter (about one
    spread), dark ventricles and sulci, and ``lesions`` periventricular and deep white-matter
    lesions (radius 3-4.5 mm) brightest at their centre (135) and fading to 108 at their edge, as
    real ones do (the truth is their half-maximum contour, at 112.5). ``caps`` adds confluent
    periventricular lesions: bands 8 mm thick along the ventricles' walls (lateral, and across the
    midline between them), 40 mm long, with that profile across their thickness (not compact, but
    thick)."""
    rng = np.random.default_rng(seed)
    shape = (80, 100, 84)
    (z, y, x), brain, depth, img, ventricles = textured_brain(rng, shape, 1.5, (60, 74, 55), 1.2, (10, 6, 26, 10, 6))
    sulci = brain & (depth < 6.0) & (np.abs(np.sin(x / 7.0) * np.sin(y / 9.0)) > 0.93)
    img[sulci] = 30.0
    beside_sulci = ndimage.distance_transform_edt(~sulci, sampling=SPACING) < 3.0
    cortex = brain & ~sulci & ((depth < 3.0) | (depth < 9.0) & beside_sulci)
    img[cortex] += cortex_gain
    truth = np.zeros(shape, bool)
    centres: list[np.ndarray] = []
    while len(centres) < lesions:
        if len(centres) % 2:  # periventricular: beside a ventricle's lateral wall
            side = rng.choice([-1, 1])
            c = np.array([side * rng.uniform(16.0, 19.0), rng.uniform(-20, 20), rng.uniform(2, 10)])
        else:  # deep white matter
            c = rng.uniform([-35, -45, -15], [35, 45, 30])
        inside = (c[0] / 60) ** 2 + (c[1] / 74) ** 2 + (c[2] / 55) ** 2 < 0.45
        if inside and all(np.linalg.norm(c - o) > 14 for o in centres):
            centres.append(c)
    for cx, cy, cz in centres:
        rad = rng.uniform(3.0, 4.5)
        ball = (((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / rad**2 <= 1) & ~ventricles
        inner = ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)[ball] / rad**2
        img[ball] = 90.0 + 45.0 * (1.0 - 0.6 * inner) + rng.normal(0, 5.0, int(ball.sum()))
        truth |= ball & (((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / rad**2 <= 0.83)  # half maximum
    if caps:
        for side in (-1, 1):
            # distance from the ventricle's wall, outwards, over its 8 mm thickness, along a 40 mm stretch
            across = (np.abs(x - side * 10) - 6.0) / 8.0
            band = (across >= 0) & (across <= 1) & (np.abs(y) <= 20) & (np.abs(z - 6) <= 9) & ~ventricles
            img[band] = 90.0 + 45.0 * (1.0 - 0.6 * (2 * across[band] - 1) ** 2) + rng.normal(0, 5.0, int(band.sum()))
            truth |= band & ((2 * across - 1) ** 2 <= 0.83)
    img[~brain] = 0.0
    volume = Volume.from_array(img, spacing=SPACING, origin=(0.0, 0.0, 0.0), modality="MR",
                               metadata={"modality_source": "dicom"})
    return volume, truth & brain


def rimmed_flair(seed: int = 0, slice_mm: float = 1.0, lesions: int = 5) -> tuple[Volume, np.ndarray]:
    """A skull-stripped FLAIR at 1 mm (textured white matter at 90, spread about 10, cortical
    ribbon, dark ventricles) whose lesions are drawn as raters draw them: a core fading from 135
    at its centre to 117 at its edge (radius 5-7 mm), then a 1 mm rim at 108, under two of the
    white matter spreads (the level the grow threshold misses), and one periventricular lesion on
    a ventricle's lateral wall with a 1 mm layer averaged with the CSF beside it (white-matter
    level). The truth holds rims and layer. ``slice_mm`` > 1 averages that many slices (thick
    slices: partial volume across them), the truth then being voxels at least half lesion."""
    rng = np.random.default_rng(seed)
    shape = (100, 120, 104)
    (z, y, x), brain, depth, img, ventricles = textured_brain(rng, shape, 1.0, (48, 57, 46), 1.8, (8, 5, 20, 8, 4))
    img[brain & (depth < 3.0)] += 7.0  # cortex about one spread brighter
    truth = np.zeros(shape, bool)
    centres: list[np.ndarray] = []
    wall = ndimage.distance_transform_edt(~ventricles)
    while len(centres) < lesions:
        c = rng.uniform([-28, -35, -20], [28, 35, 25])
        clear = wall[tuple((c + np.array(shape[::-1]) / 2).astype(int)[::-1])]
        if (c[0] / 48) ** 2 + (c[1] / 57) ** 2 + (c[2] / 46) ** 2 < 0.4 and clear > 10 \
                and all(np.linalg.norm(c - o) > 18 for o in centres):
            centres.append(c)
    for cx, cy, cz in centres:
        rad = rng.uniform(5.0, 7.0)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
        core = d <= rad
        img[core] = 135.0 - 18.0 * (d[core] / rad) ** 2 + rng.normal(0, 5.0, int(core.sum()))
        rim = (d > rad) & (d <= rad + 1.0)
        img[rim] = 108.0 + rng.normal(0, 5.0, int(rim.sum()))
        truth |= core | rim
    # periventricular: a lesion on the left ventricle's lateral wall, its inner millimetre averaged with CSF
    d = np.sqrt(((x - 16) / 7) ** 2 + (y / 9) ** 2 + ((z - 4) / 7) ** 2)
    cap = (d <= 1) & ~ventricles
    img[cap] = 130.0 + rng.normal(0, 5.0, int(cap.sum()))
    layer = cap & (wall <= 1.0)
    img[layer] = 88.0 + rng.normal(0, 5.0, int(layer.sum()))
    truth |= cap
    img[~brain] = 0.0
    truth &= brain
    if slice_mm > 1:
        k = int(slice_mm)
        n = shape[0] // k * k
        img = img[:n].reshape(n // k, k, *shape[1:]).mean(axis=1)
        truth = truth[:n].reshape(n // k, k, *shape[1:]).mean(axis=1) >= 0.5
    spacing = (float(slice_mm), 1.0, 1.0)
    volume = Volume.from_array(img.astype(np.float32), spacing=spacing, origin=(0.0, 0.0, 0.0), modality="MR",
                               metadata={"modality_source": "dicom"})
    return volume, truth


def test_lesions_as_faint_as_real_ones_are_found_and_the_cortex_is_not():
    """Failed before: a threshold at the brain's 98th percentile plus three noise SDs missed most
    of these lesions (Dice 0.44 and 0.32 on seeds 0 and 2) and a burden was never within 30 %."""
    found = expected = 0
    for seed in range(4):
        volume, truth = textured_flair(seed)
        brain = volume.data != 0
        mask = ClassicalSegmenter().segment(volume, "lesion")
        assert dice(mask, truth) >= 0.6, seed
        cortex_ribbon = brain & (ndimage.distance_transform_edt(brain, sampling=SPACING) < 3.0)
        assert (mask & cortex_ribbon & ~truth).sum() * np.prod(SPACING) < 50.0  # mm3
        found, expected = found + int(mask.sum()), expected + int(truth.sum())
    assert found == pytest.approx(expected, rel=0.30)


def test_confluent_periventricular_lesions_are_kept_whole():
    """Thick confluent bands along the ventricles sprawl (not compact) but are lesions; a large
    load must not be taken for grey matter either (which would lift the thresholds above it)."""
    volume, truth = textured_flair(seed=1, caps=True)
    mask = ClassicalSegmenter().segment(volume, "lesion")
    assert mask.sum() == pytest.approx(truth.sum(), rel=0.30)
    assert dice(mask, truth) >= 0.8


def test_lesion_free_textured_flair_gives_no_burden():
    volume, _ = textured_flair(seed=1, lesions=0)
    mask = ClassicalSegmenter().segment(volume, "lesion")
    assert mask.sum() * np.prod(SPACING) / 1000.0 < 0.1  # mL


def test_doubt_when_lesions_barely_pass_grey_matter_or_cover_a_tenth_of_the_brain():
    peak = BrainTissue(white=90.0, spread=7.0, grey=130.0, grey_spread=4.0, grey_share=0.4)  # a peak of its own
    labels = np.zeros((10, 10, 10), np.int32)
    labels[2:4, 2:4, 2:4] = 1
    assert MRLesions(labels, [1], peak, brain_voxels=1000, lesion_median=160.0).doubt() is None
    faint = MRLesions(labels, [1], peak, brain_voxels=1000, lesion_median=140.0)  # 1.4 SDs above grey
    assert "brighter than grey matter" in faint.doubt()
    wide = MRLesions(labels, [1], peak, brain_voxels=60, lesion_median=160.0)  # 8 of 60 voxels
    assert "of the brain region" in wide.doubt()
    assert MRLesions(labels, [], peak, brain_voxels=60, lesion_median=None).doubt() is None
    shoulder = BrainTissue(white=90.0, spread=7.0, grey=98.0, grey_spread=5.0, grey_share=0.09)  # real FLAIR
    assert "no separate grey-matter peak" in MRLesions(labels, [1], shoulder, 1000, 125.0).doubt()


@pytest.mark.parametrize("segmenter", ["classical", "auto"])
def test_segment_evidence_passes_the_doubt_on(segmenter):
    volume, _ = textured_flair(seed=0)
    context = ToolContext(volumes={"0": volume}, segmenter=segmenter)
    ev = default_registry().run(context, "segment", {"target": "lesion"})
    assert ev.mask.any()
    assert ev.quality.level == "doubtful"
    assert any("no separate grey-matter peak" in r for r in ev.quality.reasons), ev.quality.reasons
    # one lesion picked from that search by a point keeps the doubt (it was "ok" on a real FLAIR)
    shown = voxels_on_view(ev.views[0].geometry, np.argwhere(ev.mask))
    point = shown[~np.isnan(shown[:, 0])][0]
    picked = default_registry().run(context, "segment", {"target": "lesion", "view_id": ev.views[0].view_id,
                                                         "point_2d": [float(point[0]), float(point[1])]})
    assert 0 < picked.mask.sum() < ev.mask.sum()
    assert picked.quality.level == "doubtful" and picked.quality.reasons == ev.quality.reasons


@pytest.mark.parametrize("slice_mm", [1.0, 5.0])
def test_faint_rims_that_raters_include_are_counted(slice_mm):
    """Failed before (burden -25 % to -38 % on these seeds): the growth stopped at 2.25 white-matter
    SDs and a rim of 1.8 SDs, or a layer averaged with the CSF of a ventricle, was left out. The
    rims are grown from the confident lesions, also across thick slices; the extent is doubtful
    and the doubt gives the burden's range."""
    found = expected = 0
    for seed in range(3):
        volume, truth = rimmed_flair(seed, slice_mm)
        result = ClassicalSegmenter().mr_lesions(volume)
        mask = result.labels > 0
        assert mask.sum() == pytest.approx(truth.sum(), rel=0.20), seed
        assert dice(mask, truth) >= 0.8, seed
        assert result.rim_voxels > 0.1 * mask.sum()
        reason = result.doubt()
        assert "extent is uncertain" in reason and " mL)" in reason
        found, expected = found + int(mask.sum()), expected + int(truth.sum())
    assert found == pytest.approx(expected, rel=0.15)


def test_periventricular_layer_averaged_with_csf_is_kept():
    """The lesion's millimetre on the ventricle wall is at white-matter level (lesion and CSF
    averaged): grown as part of the lesion, while the CSF itself is not."""
    volume, truth = rimmed_flair(0)
    mask = ClassicalSegmenter().segment(volume, "lesion")
    z, y, x = (np.indices(volume.shape) - np.array(volume.shape)[:, None, None, None] / 2)
    ventricles = ((x - 8) / 5) ** 2 + (y / 20) ** 2 + ((z - 4) / 8) ** 2 <= 1
    layer = truth & ~ndimage.binary_erosion(~ventricles, iterations=1) & (volume.data < 100)
    assert layer.sum() > 20
    assert (mask & layer).sum() >= 0.5 * layer.sum()
    assert (mask & ventricles).sum() <= 0.05 * layer.sum()  # a boundary voxel the smoothing brightens at most


def test_a_lesion_in_bright_surroundings_gets_no_rim_and_is_doubtful():
    """A lesion whose surroundings are all at rim level (a cap of bright tissue around it): the rim
    would be larger than the lesion, so it is left out and the extent called uncertain."""
    volume, _ = textured_flair(seed=3, lesions=0)
    data = volume.data.copy()
    z, y, x = np.indices(data.shape)
    d = np.sqrt((z - 40.0) ** 2 + (y - 60.0) ** 2 + (x - 42.0) ** 2) * SPACING[0]
    rng = np.random.default_rng(0)
    data[d <= 12.0] = 107.0 + rng.normal(0, 3.0, int((d <= 12.0).sum()))  # a wide halo at about 1.8 SDs
    data[d <= 4.5] = 135.0
    bright = Volume.from_array(data, spacing=SPACING, origin=(0.0, 0.0, 0.0), modality="MR",
                               metadata={"modality_source": "dicom"})
    result = ClassicalSegmenter().mr_lesions(bright)
    assert result.kept and result.rim_voxels == 0 and result.left_out_rim_voxels > (result.labels > 0).sum()
    assert (result.labels > 0).sum() * np.prod(SPACING) < 1.3 * 4 / 3 * np.pi * 4.5**3
    assert "left out where the surroundings are as bright" in result.doubt()


def test_segment_evidence_carries_the_burden_range():
    """The rules planner hedges a burden on a doubtful evidence: the rims' reason, with the range
    (confident part alone to every faint voxel around it), reaches the segment tool's evidence."""
    volume, _ = rimmed_flair(seed=1)
    ev = default_registry().run(ToolContext(volumes={"0": volume}), "segment", {"target": "lesion"})
    assert ev.mask.any() and ev.quality.level == "doubtful"
    assert any("extent is uncertain" in r and "between" in r for r in ev.quality.reasons), ev.quality.reasons
