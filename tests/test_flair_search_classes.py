"""FLAIR lesion search on failure classes the brain-MR stress benchmark showed (issue 11).

Each brain is built here (not with the stress generator nor the project's phantoms): an
ellipsoidal brain of textured white matter with dark ventricles and MS-like lesions, then the
class: a head whose scalp and skull are thicker than the fixed margin the search removed, or a
2-D FLAIR whose cortex, lining deep sulci, is as bright as a faint lesion.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters.lesions import MR_THICK_MM, MR_THICK_SHARE, _thick_share, mr_hyperintense_lesion

VOXEL = 1.5
SPACING = (VOXEL, VOXEL, VOXEL)


def _grid(shape: tuple[int, int, int]):
    return (np.indices(shape).astype(np.float32) - np.array(shape, np.float32)[:, None, None, None] / 2) * VOXEL


def _brain(rng: np.random.Generator, shape, radii, lesions):
    """(z, y, x) mm, normalised brain radius, textured white matter (90, spread about 6), ventricles
    (25) and the truth of ``lesions`` ((x, y, z) centre mm, radius mm), 140 at their centre fading to
    115 at their edge."""
    z, y, x = _grid(shape)
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0)
    img = (90.0 + 5.0 * texture / texture.std() + rng.normal(0, 3.0, shape)).astype(np.float32)
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        ventricles |= ((x - side * 9) / 5) ** 2 + (y / 22) ** 2 + ((z - 4) / 8) ** 2 <= 1
    img[ventricles] = 25.0 + rng.normal(0, 3.0, int(ventricles.sum()))
    truth = np.zeros(shape, bool)
    for (cx, cy, cz), rad in lesions:
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / rad
        inside = d <= 1
        img[inside] = np.maximum(img[inside], (140 - 25 * d[inside] ** 2).astype(np.float32))
        truth |= inside
    return (z, y, x), r, img, truth


LESIONS = [((16, -10, 6), 4.5), ((-17, 12, 8), 4.0), ((20, 25, -6), 3.5), ((-8, -30, 14), 4.0)]


def _folded(rng: np.random.Generator, lesions, cortex: tuple[float, float], sulci: tuple[float, float],
            cortex_values) -> tuple[np.ndarray, np.ndarray]:
    """(image, truth) of a `_brain` (80 x 104 x 92 voxels) folded near its surface: cortex (values
    from ``cortex_values(mask)``) where a wave field lies within ``cortex[1]`` of zero down to
    ``cortex[0]`` mm (and the outer 2.5 mm), sulcal CSF (20) within ``sulci[1]`` down to ``sulci[0]``
    mm, outside 0 (skull-stripped). Depths are normalised radius times 52 mm."""
    (z, y, x), r, img, truth = _brain(rng, (80, 104, 92), (56, 70, 52), lesions)
    depth = (1.0 - r) * 52.0
    brain = r <= 1.0
    wave = np.abs(np.sin(x / 4.0) * np.cos(y / 5.0) + 0.6 * np.sin((x + z) / 3.3))
    cortex_mask = ((brain & (depth < cortex[0]) & (wave < cortex[1])) | (brain & (depth < 2.5))) & ~truth
    sulcal = brain & (depth < min(cortex[0], sulci[0])) & (wave < sulci[1]) & ~truth
    img[cortex_mask] = cortex_values(cortex_mask)
    img[sulcal] = 20.0 + rng.normal(0, 3.0, int(sulcal.sum()))
    img[~brain] = 0.0
    return img, truth


def _burden(found, truth) -> float:
    mask = np.isin(found.labels, found.kept)
    return mask.sum() / truth.sum() - 1.0


def test_thick_scalp_and_skull_do_not_swamp_the_brain():
    """A head that keeps its scalp and skull, 20 mm of them around a small brain: the fixed 10 mm
    margin left a shell of bone and CSF larger than the white matter, the histogram's mode was bone
    and the lesion levels fell to grey matter (hundreds of mL found)."""
    rng = np.random.default_rng(3)
    shape = (84, 108, 96)
    (z, y, x), r, img, truth = _brain(rng, shape, (48, 60, 42), LESIONS)
    outside_mm = (r - 1.0) * 42.0
    img[(outside_mm > 0) & (outside_mm <= 3)] = 20.0  # CSF
    img[(outside_mm > 3) & (outside_mm <= 11)] = 8.0  # skull
    img[(outside_mm > 11) & (outside_mm <= 20)] = 105.0  # scalp (fat is bright on FLAIR)
    img[outside_mm > 20] = 0.0
    img = np.abs(img + rng.normal(0, 3.0, shape)).astype(np.float32)
    found = mr_hyperintense_lesion(img, SPACING, np.ones(shape, bool))
    # the faint rims the search adds around each lesion make it somewhat larger; the old margin
    # found about 80 times the burden
    assert abs(_burden(found, truth)) <= 0.5
    assert found.tissue.white > 70  # white matter, not bone, is the brain's level


def test_bright_cortex_along_deep_sulci_is_not_lesion():
    """2-D FLAIR with high grey-white contrast: cortex (110, spread 8: a shoulder about three
    white-matter SDs up, no peak of its own, its tail as bright as lesion) lines sulci reaching
    15 mm into the brain; two of the six lesions lie beside it. A lesion there grew into the whole
    cortical network: fifty times the burden was found. Those two lie within a few mm of the sulci
    that cut the brain region's edge: one had no core far enough inside it, the other was dropped
    as a piece of the cortex; their cores, brighter than any cortex, now find them."""
    rng = np.random.default_rng(5)
    lesions = LESIONS + [((0, -58, 8), 4.0), ((45, 0, 0), 4.0)]
    img, truth = _folded(rng, lesions, (15.0, 0.5), (12.0, 0.2),
                         lambda cortex: 110.0 + rng.normal(0, 8.0, int(cortex.sum())))
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    assert not found.tissue.grey_peak
    assert abs(_burden(found, truth)) <= 0.3
    mask = np.isin(found.labels, found.kept)
    labels, n = ndimage.label(truth)
    assert all((mask & (labels == k)).any() for k in range(1, n + 1))  # the two beside the sulci too



def test_bright_gradually_fading_lesion_is_cut_at_half_maximum():
    """Bright lesions (peak 150 above white matter, about thirty SDs) that fade over a third of
    their radius: the edge was drawn half way to the median of their cores (every voxel above four
    SDs, far below the peak), well outside the half-maximum contour."""
    rng = np.random.default_rng(7)
    shape = (72, 96, 84)
    (z, y, x), r, img, _ = _brain(rng, shape, (52, 66, 48), [])
    img[r > 1.0] = 0.0
    truth = np.zeros(shape, bool)
    for (cx, cy, cz), rad in [((0, 35, 22), 8.0), ((-25, -30, 10), 7.0), ((24, 20, -14), 6.0)]:
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / rad
        img += (150.0 / (1.0 + np.exp((d - 1.0) / 0.3))).astype(np.float32)
        truth |= d <= 1.0
    found = mr_hyperintense_lesion(img, SPACING, np.ones(shape, bool))
    assert abs(_burden(found, truth)) <= 0.3


def test_bright_csf_that_hides_lesions_is_a_doubt():
    """On T2 the CSF (ventricles, sulci) is three times as bright as white matter: it becomes the
    'grey matter' peak the lesions must clear, no lesion can, and 'no lesion' came without a doubt."""
    rng = np.random.default_rng(11)
    shape = (72, 96, 84)
    (z, y, x), r, img, truth = _brain(rng, shape, (52, 66, 48), LESIONS)
    csf = (img < 40) | ((r > 0.93) & (r <= 1.0))  # ventricles and the CSF around the brain
    img[csf] = 280.0 + rng.normal(0, 6.0, int(csf.sum()))
    img[r > 1.0] = 0.0
    found = mr_hyperintense_lesion(img, SPACING, np.ones(shape, bool))
    assert not found.kept  # the lesions (140) lie far below the level bright CSF sets
    doubt = found.doubt()
    assert doubt is not None and "fainter lesions are missed" in doubt


def test_lesion_joined_to_a_structure_cut_by_the_field_of_view_is_kept():
    """A bright lesion joined, at the level lesions grow to, to a faint band (a periventricular
    lining, a vessel) running out of the scan's range: the whole component touched the field of
    view's edge and was dropped as cut anatomy (stress tuning seed 36: a 22 mm confluent plaque and a
    7 mm lesion, contrast 0.9, not found). The lesion itself, above its half-maximum edge, lies
    inside the scan."""
    rng = np.random.default_rng(0)
    shape = (80, 104, 92)
    (z, y, x), r, img, truth = _brain(rng, shape, (56, 70, 52), [((0, 20, -30), 6.0)])
    band = (np.hypot(x, y - 20) <= 2.0) & (z < -30) & ~truth
    img[band] = 106.0 + rng.normal(0, 3.0, int(band.sum()))  # above the grow level, below half maximum
    img[r > 1.0] = 0.0
    img, truth = img[10:], truth[10:]  # the scan's range cuts the brain (and the band) below
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    mask = np.isin(found.labels, found.kept)
    assert (mask & truth).sum() >= 0.7 * truth.sum()
    assert not mask[0].any()  # nothing kept on the cut slice


def test_folded_cortex_network_is_not_thick_and_a_confluent_plaque_is():
    """A lesion is kept though it sprawls when it is thick. The test was a ball of `MR_THICK_MM`
    fitting anywhere in it, and a cortex network folded by sulci holds one where its sheets meet: on
    stress brains 5-90 mL of cortex were counted as one lesion. Now such balls must cover
    `MR_THICK_SHARE` of it: the network's junctions do not, a plaque of overlapping ovoids does."""
    spacing = (1.0, 1.0, 1.0)
    z, y, x = np.indices((80, 80, 80)).astype(float) - 40
    radius = np.sqrt(x**2 + y**2 + z**2)
    sheets = (np.abs(x % 14 - 7) < 2) | (np.abs(y % 14 - 7) < 2) | (np.abs(z % 14 - 7) < 2)  # 4 mm cortex
    network = sheets & (radius > 26) & (radius < 36)
    assert ndimage.distance_transform_edt(np.pad(network, 1)).max() >= MR_THICK_MM  # the old test: thick
    assert _thick_share(network, spacing) < MR_THICK_SHARE
    plaque = np.zeros(x.shape, bool)
    for cx in (-10, -3, 4, 11):
        plaque |= ((x - cx) / 6) ** 2 + (y / 3.5) ** 2 + (z / 3.5) ** 2 <= 1
    assert _thick_share(plaque, spacing) >= 0.5


def test_cortex_specks_beyond_the_dark_sulci_are_not_lesions():
    """Cortex as a bright shoulder (two white-matter SDs up, textured) lining sulci too thin to be
    dark along their whole depth: its brightest specks, a few mm from the nearest dark CSF, outside
    the cortex band, cleared the seed level and were counted as lesions (the stress benchmark's
    commonest false positive). Near sulcal CSF cores must now clear the cortex's tail; the four deep
    lesions are still found."""
    rng = np.random.default_rng(5)

    def textured(cortex: np.ndarray) -> np.ndarray:
        texture = ndimage.gaussian_filter(rng.normal(0, 1, cortex.shape), 1.0)
        return (101.0 + 8.0 * texture / texture.std() + rng.normal(0, 2.0, cortex.shape))[cortex]

    img, truth = _folded(rng, LESIONS, (18.0, 0.9), (15.0, 0.12), textured)
    found = mr_hyperintense_lesion(img, SPACING, np.ones(img.shape, bool))
    mask = np.isin(found.labels, found.kept)
    assert not (mask & ~ndimage.binary_dilation(truth, iterations=2)).any()
    labels, n = ndimage.label(truth)
    assert all((mask & (labels == k)).any() for k in range(1, n + 1))
