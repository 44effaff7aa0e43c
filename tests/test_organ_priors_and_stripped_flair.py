"""Failure classes of the classical organ and MR lesion search, each reproduced by a construction in
the test: a liver and a spleen with the lungs' basal recesses wrapped around them (both were refused
as "thoracic"), an enhanced spleen touching the left kidney, a liver cut by the field of view, a skull-stripped FLAIR (a 10 mm scalp margin took the outer brain and its lesions
away) and a lesion found on an MR whose modality was guessed (stated as fact)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from grounding.segmenters.agreement import dice
from grounding.tool import ToolContext
from grounding.tools import default_registry
from imaging.volume import Volume
from tests.helpers.abdomen import synthetic_abdomen


def _world(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (LPS mm) of every voxel of an axis-aligned volume, broadcastable to its shape."""
    a = volume.affine
    nz, ny, nx = volume.shape
    z = (a[2, 0] * np.arange(nz) + a[2, 3])[:, None, None]
    y = (a[1, 1] * np.arange(ny) + a[1, 3])[None, :, None]
    x = (a[0, 2] * np.arange(nx) + a[0, 3])[None, None, :]
    return x, y, z


def _wrap_in_basal_recesses(case, spine_gap_mm: float = 30.0, depth_mm: float = 14.0) -> np.ndarray:
    """Paint aerated lung (-850 HU) in a gutter along the inside of the body wall, lateral and
    posterior, down to the lower third of the liver: the costophrenic recesses around the liver and
    the spleen. Returns the painted mask (organ labels lose those voxels)."""
    data = case.volume.data
    x, y, z = _world(case.volume)
    cavity = ndimage.binary_fill_holes(data > -200, structure=np.ones((1, 3, 3), bool))
    wall = ndimage.distance_transform_edt(cavity, sampling=case.volume.spacing)
    liver_z = z[:, 0, 0][case.labels["liver"].any(axis=(1, 2))]
    low = float(liver_z.min() + 0.3 * (liver_z.max() - liver_z.min()))
    # 10-24 mm inside the skin: inside the muscle wall, outside the organs' cores
    gutter = (wall > 10.0) & (wall <= 10.0 + depth_mm) & (z >= low) & (y > -20.0)
    spine_x = float(np.median(x[0, 0][data[data.shape[0] // 2].max(axis=0) > 400]))
    gutter &= np.abs(x - spine_x) > spine_gap_mm
    data[gutter] = -850.0
    for name in case.labels:
        case.labels[name] &= ~gutter
    return gutter


def test_liver_and_spleen_inside_the_basal_recesses_are_not_thoracic():
    """The lungs' posterior-lateral recesses reach down around the liver and the spleen: both lie
    between the two lungs' centroids in their slices, which the heart test took for the chest."""
    case = synthetic_abdomen(3, "portal-venous")
    _wrap_in_basal_recesses(case)
    seg = ClassicalSegmenter()
    analysis = seg.analysis(case.volume)
    from grounding.segmenters.chest import LEFT, RIGHT

    assert (analysis.labels == LEFT).any() and (analysis.labels == RIGHT).any()  # the recesses are lungs
    organs = seg.organs(case.volume)
    assert dice(organs.mask("liver"), case.labels["liver"]) >= 0.85
    assert organs.mask("liver").sum() == pytest.approx(case.labels["liver"].sum(), rel=0.10)
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.75


def test_liver_cut_by_the_field_of_view():
    """A targeted scan of 40 mm through the upper liver, with the body's right side cut by the
    field of view: the liver is found as far as it is seen."""
    full = synthetic_abdomen(4, "portal-venous", spacing=(2.0, 1.5, 1.5), z_range_mm=(-60.0, -20.0))
    # the field of view begins 15 mm inside the liver's right edge (low x on LPS)
    cut = int(np.flatnonzero(full.labels["liver"].any(axis=(0, 1)))[0]) + 10
    data = full.volume.data[:, :, cut:].copy()
    affine = full.volume.affine.copy()
    affine[0, 3] += cut * affine[0, 2]
    volume = Volume(data=data, spacing=full.volume.spacing, affine=affine, modality="CT",
                    metadata=dict(full.volume.metadata))
    truth = full.labels["liver"][:, :, cut:]
    assert truth[:, :, 0].any()  # the liver reaches the cut edge
    liver = ClassicalSegmenter().segment(volume, "liver")
    assert dice(liver, truth) >= 0.85
    assert liver.sum() == pytest.approx(truth.sum(), rel=0.10)


def test_enhanced_spleen_touching_the_left_kidney():
    """An enhanced spleen (120 HU) pressed against the left kidney over a broad contact: the two
    are told apart (the kidney is brighter) and neither takes the other."""
    case = synthetic_abdomen(3, "portal-venous")
    data = case.volume.data
    x, y, z = _world(case.volume)
    kidney = case.labels["kidney_left"]
    kz, ky, kx = (np.argwhere(kidney).mean(axis=0)).round().astype(int)
    kc = np.array([float(x[0, 0, kx]), float(y[0, ky, 0]), float(z[kz, 0, 0])])
    spleen = case.labels["spleen"]
    sz, sy, sx = (np.argwhere(spleen).mean(axis=0)).round().astype(int)
    sc = np.array([float(x[0, 0, sx]), float(y[0, sy, 0]), float(z[sz, 0, 0])])
    # a lower pole of spleen filling the gap between the spleen and the kidney's lateral side
    centre = (kc + sc) / 2
    bridge = ((x - centre[0]) / 28) ** 2 + ((y - centre[1]) / 22) ** 2 + ((z - centre[2]) / 30) ** 2 <= 1
    bridge &= (data > -200) & ~kidney & ~case.labels["liver"]
    bridge &= ndimage.distance_transform_edt(~kidney, sampling=case.volume.spacing) > 0
    data[bridge] = 120.0
    spleen |= bridge
    assert (ndimage.binary_dilation(spleen) & kidney).sum() > 200  # a broad contact
    organs = ClassicalSegmenter().organs(case.volume)
    assert dice(organs.mask("spleen"), spleen) >= 0.8
    assert dice(organs.mask("kidney_left"), kidney) >= 0.8


def skull_stripped_flair(seed: int = 0) -> tuple[Volume, np.ndarray]:
    """A skull-stripped FLAIR (arbitrary units, the background exactly 0): a 3 mm bright cortex over
    white matter, ventricles, a bias field, noise in the brain, and juxtacortical lesions 5-9 mm
    below the brain's surface (where a 10 mm scalp margin removes them)."""
    rng = np.random.default_rng(seed)
    n, nz, dxy, dz = 120, 90, 1.5, 1.5
    z, y, x = np.meshgrid((np.arange(nz) - nz / 2) * dz, (np.arange(n) - n / 2) * dxy,
                          (np.arange(n) - n / 2) * dxy, indexing="ij")
    radii = np.array([66.0, 80.0, 55.0])
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    brain = r <= 1
    depth = (1 - r) * radii.min()  # about the distance (mm) below the brain's surface
    img = np.zeros(x.shape, np.float32)
    img[brain] = 300.0
    img[brain & (depth < 3.0)] = 380.0  # cortex
    img[((np.abs(x) - 9) / 6) ** 2 + (y / 24) ** 2 + (z / 10) ** 2 <= 1] = 90.0
    truth = np.zeros(x.shape, bool)
    centres: list[np.ndarray] = []
    while len(centres) < 10:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        c = direction * radii * (1 - rng.uniform(5.0, 9.0) / radii.min())
        if all(np.linalg.norm(c - o) > 14 for o in centres):
            centres.append(c)
    for cx, cy, cz in centres:
        rad = rng.uniform(2.5, 4.0)
        truth |= (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= rad * rad
    truth &= brain
    img[truth] = 550.0
    img *= (1 + 0.1 * x / 80).astype(np.float32)
    img[brain] += rng.normal(0, 12, int(brain.sum())).astype(np.float32)
    img[~brain] = 0.0
    volume = Volume.from_array(img, spacing=(dz, dxy, dxy), origin=(-n / 2 * dxy, -n / 2 * dxy, -nz / 2 * dz),
                               modality="MR", metadata={"modality_source": "dicom"})
    return volume, truth


def test_skull_stripped_flair_lesion_burden():
    volume, truth = skull_stripped_flair()
    mask = ClassicalSegmenter().segment(volume, "lesion")
    assert mask.sum() == pytest.approx(truth.sum(), rel=0.30)
    assert dice(mask, truth) >= 0.7


def test_lesion_found_on_a_guessed_mr_is_doubtful():
    """The sequence of a guessed MR is unknown: a found lesion is doubtful, not only an empty search."""
    volume, _ = skull_stripped_flair(seed=1)
    stated = default_registry().run(ToolContext(volumes={"0": volume}), "segment", {"target": "lesion"})
    assert stated.mask.any() and not any("guessed" in r for r in stated.quality.reasons)
    guessed = Volume.from_array(volume.data, spacing=volume.spacing, origin=tuple(volume.affine[:3, 3]),
                                modality="MR", metadata={"modality_source": "heuristic"})
    ev = default_registry().run(ToolContext(volumes={"0": guessed}), "segment", {"target": "lesion"})
    assert ev.mask.any()
    assert ev.quality.level == "doubtful"
    assert any("sequence is" in r and "unknown" in r for r in ev.quality.reasons), ev.quality.reasons
