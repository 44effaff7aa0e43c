"""Synthetic phantoms: determinism, anatomy and laterality, HU, sampling invariance, truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from imaging.phantoms import (
    NoduleSpec,
    OrganScales,
    PhantomError,
    abdomen_ct,
    brain_mr,
    chest_ct,
    chest_xray,
    followup_pair,
)
from imaging.phantoms.make_examples import CHEST_NOISE_HU, CHEST_SPACING, EXAMPLE_HEART_SCALE, EXAMPLE_SEED, NODULE
from imaging.phantoms.xray import mask_width_mm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def centroid_mm(volume, mask: np.ndarray) -> np.ndarray:
    """Centroid (x, y, z) LPS mm of a mask through the volume's own affine."""
    return volume.voxel_to_world(np.argwhere(mask).mean(axis=0))[0]


@pytest.fixture(scope="module")
def chest():
    return chest_ct(seed=7, nodules=[NoduleSpec(diameter_mm=12.0, side="right"),
                                     NoduleSpec(diameter_mm=10.0, side="left")])


def test_chest_is_deterministic_under_seed():
    a, b = chest_ct(seed=4), chest_ct(seed=4)
    assert np.array_equal(a.volume.data, b.volume.data)
    assert json.dumps(a.truth) == json.dumps(b.truth)
    assert all(np.array_equal(a.labels[k], b.labels[k]) for k in a.labels)
    c = chest_ct(seed=5)
    assert not np.array_equal(a.volume.data, c.volume.data)
    assert a.truth["nodules"][0]["center_mm"] != c.truth["nodules"][0]["center_mm"]


def test_chest_labels_and_laterality(chest):
    vol, lab = chest.volume, chest.labels
    assert vol.modality == "CT" and vol.shape == (80, 170, 170)
    assert set(lab) == {"body", "lung_left", "lung_right", "lungs", "trachea", "heart", "spine", "nodule_1", "nodule_2"}
    assert all(m.dtype == bool and m.shape == vol.shape for m in lab.values())
    assert np.array_equal(lab["lungs"], lab["lung_left"] | lab["lung_right"])
    assert not (lab["lung_left"] & lab["lung_right"]).any()
    # separate objects: no voxel of one lung touches the other (6-connectivity)
    assert not (ndimage.binary_dilation(lab["lung_left"]) & lab["lung_right"]).any()
    assert not (lab["trachea"] & lab["lungs"]).any()
    # patient's right lung: negative x in mm, lower x index (image left on an axial view)
    right, left = centroid_mm(vol, lab["lung_right"]), centroid_mm(vol, lab["lung_left"])
    assert right[0] < -30 < 30 < left[0]
    assert np.argwhere(lab["lung_right"])[:, 2].mean() < vol.shape[2] / 2 < np.argwhere(lab["lung_left"])[:, 2].mean()
    heart, spine, body = (centroid_mm(vol, lab[k]) for k in ("heart", "spine", "body"))
    assert heart[0] > 5.0, "heart sits to the patient's left of the midline"
    assert heart[1] < body[1] < spine[1], "heart anterior, spine posterior"
    assert abs(spine[0]) < 1.0
    for nod in chest.truth["nodules"]:
        mask = lab[nod["label"]]
        lung = lab[f"lung_{nod['side']}"]
        assert mask.any() and (mask & ~lung).sum() == 0, f"{nod['label']} must lie inside the {nod['side']} lung"
        assert np.allclose(centroid_mm(vol, mask), nod["center_mm"], atol=max(vol.spacing) / 2)
        assert mask[tuple(nod["center_voxel"])]
        assert nod["side"] == ("right" if nod["center_mm"][0] < 0 else "left")
    assert [n["side"] for n in chest.truth["nodules"]] == ["right", "left"]


def test_chest_hounsfield_units(chest):
    hu, lab = chest.volume.data, chest.labels
    assert np.array_equal(hu, np.rint(hu))
    assert -880 < hu[lab["lungs"]].mean() < -780
    assert hu[lab["trachea"]].mean() < -950
    assert 30 < hu[lab["heart"]].mean() < 60
    assert hu[lab["spine"]].mean() > 300
    for nod in chest.truth["nodules"]:
        core = hu[tuple(nod["center_voxel"])]
        assert -30 < core < 90, "solid nodule core is soft tissue"
    outside = ~lab["body"]
    table = outside & (hu > 150)
    assert table.any(), "the CT table is present, outside the body"
    table_y = np.argwhere(table)[:, 1].min()
    assert table_y > np.argwhere(lab["body"])[:, 1].max(), "table lies posterior to the body"
    air = outside & ~table
    assert -1010 < hu[air].mean() < -990
    assert 12 < hu[air].std() < 18  # the requested 15 HU noise


def test_same_anatomy_at_isotropic_and_anisotropic_spacing():
    specs = [NoduleSpec(diameter_mm=12.0, side="right"), NoduleSpec(diameter_mm=14.0, side="left")]
    iso = chest_ct(seed=5, spacing=(1.5, 1.5, 1.5), nodules=specs, noise_hu=0.0)
    aniso = chest_ct(seed=5, spacing=(5.0, 0.7, 0.7), nodules=specs, noise_hu=0.0)
    coarse = np.array([5.0, 1.5, 1.5])[::-1]  # (x, y, z) mm: the coarser spacing per world axis
    for a, b in zip(iso.truth["nodules"], aniso.truth["nodules"]):
        assert a["center_mm"] == b["center_mm"]
        analytic = math.pi * a["diameter_mm"] ** 3 / 6
        assert a["volume_mm3"] == pytest.approx(analytic, rel=1e-3)
        va, vb = a["volume_mm3_voxels"], b["volume_mm3_voxels"]
        assert abs(va - vb) / analytic < 0.10
        assert abs(va - analytic) / analytic < 0.10 and abs(vb - analytic) / analytic < 0.10
        ca = centroid_mm(iso.volume, iso.labels[a["label"]])
        cb = centroid_mm(aniso.volume, aniso.labels[b["label"]])
        assert np.all(np.abs(ca - cb) <= coarse)
    assert iso.truth["lung_volume_ml"] == pytest.approx(aniso.truth["lung_volume_ml"], rel=0.02)
    hi, ha = (p.truth["structures"]["heart"] for p in (iso, aniso))
    assert hi["volume_ml"] == pytest.approx(ha["volume_ml"], rel=0.02)
    assert np.allclose(hi["centroid_mm"], ha["centroid_mm"], atol=1.0)


def test_explicit_nodule_positions_and_errors():
    ph = chest_ct(seed=1, nodules=[NoduleSpec(center_mm=(-80.0, 10.0, 30.0), diameter_mm=8.0)], noise_hu=0.0)
    nod = ph.truth["nodules"][0]
    assert nod["side"] == "right" and nod["center_mm"] == [-80.0, 10.0, 30.0]
    assert ph.volume.voxel_to_world([nod["center_voxel_float"]])[0] == pytest.approx([-80.0, 10.0, 30.0], abs=0.01)
    assert chest_ct(seed=1, nodules=[], noise_hu=0.0).truth["nodules"] == []
    with pytest.raises(PhantomError, match="not inside the right lung"):
        chest_ct(nodules=[NoduleSpec(center_mm=(-5.0, 80.0, 0.0))])
    with pytest.raises(PhantomError, match="patient's right"):
        chest_ct(nodules=[NoduleSpec(center_mm=(-80.0, 10.0, 30.0), side="left")])
    with pytest.raises(PhantomError, match="smaller diameter"):
        chest_ct(nodules=[NoduleSpec(diameter_mm=150.0)])
    with pytest.raises(PhantomError, match="coarser spacing"):
        chest_ct(spacing=(0.2, 0.2, 0.2))
    with pytest.raises(PhantomError, match="positive"):
        chest_ct(spacing=(0.0, 1.0, 1.0))


def test_abdomen_organs_and_lesion():
    ph = abdomen_ct(seed=2)
    vol, lab, truth = ph.volume, ph.labels, ph.truth
    assert set(lab) == {"body", "liver", "liver_lesion", "spleen", "kidney_left", "kidney_right", "spine"}
    lesion = lab["liver_lesion"]
    assert lesion.any() and not (lesion & ~lab["liver"]).any()
    assert centroid_mm(vol, lab["liver"])[0] < 0 < centroid_mm(vol, lab["spleen"])[0]
    assert centroid_mm(vol, lab["kidney_right"])[0] < 0 < centroid_mm(vol, lab["kidney_left"])[0]
    for a, b in [("liver", "spleen"), ("liver", "kidney_right"), ("spleen", "kidney_left")]:
        assert not (lab[a] & lab[b]).any()
    hu = vol.data
    liver_only = lab["liver"] & ~lesion
    assert 50 < hu[liver_only].mean() < 70
    assert hu[lesion].mean() < hu[liver_only].mean() - 25, "the lesion is hypodense"
    assert 40 < hu[lab["spleen"]].mean() < 60 and 25 < hu[lab["kidney_left"]].mean() < 45
    t = truth["liver_lesion"]
    assert t["label"] == "liver_lesion" and lesion[tuple(t["center_voxel"])]
    assert t["volume_mm3_voxels"] == pytest.approx(t["volume_mm3"], rel=0.1)
    assert truth["liver_volume_ml"] == pytest.approx(lab["liver"].sum() * vol.voxel_volume_mm3 / 1000, abs=0.01)
    assert 1000 < truth["liver_volume_ml"] < 3000
    assert json.loads(json.dumps(truth)) == truth


def test_brain_sequences_contrast():
    ph = brain_mr(seed=3)
    assert list(ph.volumes) == ["t1", "t2", "flair"] and ph.volume is ph.volumes["t1"]
    shapes = {v.shape for v in ph.volumes.values()}
    assert len(shapes) == 1 and all(v.modality == "MR" for v in ph.volumes.values())
    lab = ph.labels
    assert not (lab["lesion"] & ~lab["brain"]).any() and not (lab["brain"] & ~lab["head"]).any()
    brain = lab["brain"] & ~lab["lesion"]
    mean = {k: (v.data[lab["lesion"]].mean(), np.median(v.data[brain])) for k, v in ph.volumes.items()}
    assert mean["flair"][0] > 1.5 * mean["flair"][1]
    assert mean["t2"][0] > 1.3 * mean["t2"][1]
    assert mean["t1"][0] < 0.8 * mean["t1"][1]
    assert ph.truth["lesion"]["sequence_bright"] == ["t2", "flair"]
    for v in ph.volumes.values():
        assert v.data.min() >= 0 and v.data.max() < 1200
    assert 1000 < ph.truth["brain_volume_ml"] < 1800
    assert json.loads(json.dumps(ph.truth)) == ph.truth


def test_chest_xray_widths_and_orientation():
    ph = chest_xray(seed=0)
    vol, lab, truth = ph.volume, ph.labels, ph.truth
    assert vol.modality == "XR" and vol.is_2d and vol.spacing[1] == vol.spacing[2]
    assert all(m.shape == vol.shape for m in lab.values())
    ps = vol.spacing[2]
    assert truth["heart_width_mm"] == mask_width_mm(lab["heart"][0], ps)
    assert truth["thorax_width_mm"] == mask_width_mm(lab["thorax"][0], ps)
    assert 0.35 < truth["ctr"] < 0.65
    assert truth["ctr"] == pytest.approx(truth["heart_width_mm"] / truth["thorax_width_mm"], abs=1e-4)
    # PA display: the patient's right lung on the image left; heart bulges to the patient's left
    cols = lambda m: np.argwhere(m[0])[:, 1].mean()  # noqa: E731
    assert cols(lab["lung_right"]) < vol.shape[2] / 2 < cols(lab["lung_left"])
    assert cols(lab["heart"]) > vol.shape[2] / 2
    # superior at the top: lung apices above the heart
    rows = lambda m: np.argwhere(m[0])[:, 0]  # noqa: E731
    assert rows(lab["lung_right"]).min() < rows(lab["heart"]).min()
    img = vol.data[0]
    lung_only = (lab["lung_right"][0] | lab["lung_left"][0]) & ~lab["heart"][0]
    assert img[lab["heart"][0]].mean() > img[lung_only].mean() + 100, "heart bright, lungs dark"
    assert not (lab["heart"][0] & ~lab["thorax"][0]).any()
    assert json.loads(json.dumps(truth)) == truth


def test_followup_growth():
    prior, current = followup_pair(seed=2, diameter_mm=(8.0, 12.0), shift_mm=(1.5, 0.0, -2.0))
    p, c = prior.truth["nodules"][0], current.truth["nodules"][0]
    assert (p["diameter_mm"], c["diameter_mm"]) == (8.0, 12.0) and p["side"] == c["side"] == "right"
    assert current.truth["growth_mm"] == pytest.approx(4.0)
    assert current.truth["growth_pct"] == pytest.approx(50.0)
    assert current.truth["volume_growth_pct"] == pytest.approx(237.5)
    assert current.truth["volume_doubling_time_days"] == pytest.approx(90 * math.log(2) / math.log(1.5**3), abs=0.1)
    assert np.allclose(np.subtract(c["center_mm"], p["center_mm"]), [1.5, 0.0, -2.0], atol=0.02)
    assert current.truth["prior_center_mm"] == p["center_mm"]
    assert c["volume_mm3_voxels"] / p["volume_mm3_voxels"] == pytest.approx(1.5**3, rel=0.25)
    # same patient: identical lungs up to the shift, different noise
    assert prior.truth["lung_volume_ml"] == pytest.approx(current.truth["lung_volume_ml"], rel=0.01)
    assert not np.array_equal(prior.volume.data, current.volume.data)


def test_save_round_trip(tmp_path):
    from imaging.io import load

    ph = chest_ct(seed=1, spacing=(6.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=14.0, side="left")])
    folder = ph.save(tmp_path / "case", format="nifti")
    loaded = load(folder / "ct.nii.gz")
    assert loaded.modality == "CT" and np.array_equal(loaded.data, ph.volume.data)
    assert np.allclose(loaded.affine, ph.volume.affine, atol=1e-4)
    nodule = load(folder / "labels" / "nodule_1.nii.gz").data > 0.5
    assert np.array_equal(nodule, ph.labels["nodule_1"])
    truth = json.loads((folder / "truth.json").read_text())
    assert truth == json.loads(json.dumps(ph.truth))
    assert loaded.voxel_to_world([truth["nodules"][0]["center_voxel_float"]])[0] == pytest.approx(
        truth["nodules"][0]["center_mm"], abs=0.02)
    xr = chest_xray(pixel_spacing=3.0)
    xr.save(tmp_path / "xr", format="png")
    assert (tmp_path / "xr" / "xr.png").exists() and (tmp_path / "xr" / "labels" / "heart.nii.gz").exists()
    with pytest.raises(PhantomError, match="unknown save format"):
        ph.save(tmp_path / "bad", format="mha")


def test_committed_example_matches_generator():
    ct_path, truth_path = EXAMPLES / "chest_ct.nii.gz", EXAMPLES / "chest_ct_truth.json"
    assert ct_path.stat().st_size < 2.5e6
    truth = json.loads(truth_path.read_text())
    fresh = chest_ct(EXAMPLE_SEED, CHEST_SPACING, [NODULE], noise_hu=CHEST_NOISE_HU, heart_scale=EXAMPLE_HEART_SCALE)
    assert truth == json.loads(json.dumps(fresh.truth)), "regenerate with python -m imaging.phantoms.make_examples"
    from imaging.io import load

    assert np.array_equal(load(ct_path).data, fresh.volume.data)
    nod = truth["nodules"][0]
    assert nod["side"] == "right" and nod["diameter_mm"] == 12.0
    assert (EXAMPLES / "chest_xray.png").stat().st_size < 300_000


def test_organ_sizes_vary_with_the_seed_and_truth_stays_exact():
    # heart: the radiograph's cardiothoracic ratio follows the seeded heart size, both sides of 0.5
    xrays = [chest_xray(seed=s, pixel_spacing=2.0) for s in range(6)]
    ctrs = [x.truth["ctr"] for x in xrays]
    assert min(ctrs) < 0.47 and max(ctrs) > 0.51 and all(0.40 < c < 0.60 for c in ctrs)
    for x in xrays:
        t = x.truth
        assert t["heart_width_mm"] == mask_width_mm(x.labels["heart"][0], 2.0)
        assert t["ctr"] == pytest.approx(t["heart_width_mm"] / t["thorax_width_mm"], abs=1e-4)
        assert t["ctr"] == pytest.approx(0.4833 * t["heart_scale"], abs=0.02)
    # the CT of the same seed has the same heart; the reference heart is still there on request
    ct = chest_ct(seed=3, spacing=(6.0, 4.0, 4.0), nodules=[])
    assert ct.truth["heart_scale"] == xrays[3].truth["heart_scale"]
    assert chest_ct(seed=3, spacing=(6.0, 4.0, 4.0), nodules=[], heart_scale=1.0).truth["heart_scale"] == 1.0
    assert not (ct.labels["heart"] & ct.labels["lungs"]).any()
    # abdomen: spleen (and kidney) sizes differ between patients; volumes are the label counts
    abdomens = [abdomen_ct(seed=s, spacing=(6.0, 4.0, 4.0), lesion_diameter_mm=0.0) for s in range(4)]
    spleens = [a.truth["spleen_volume_ml"] for a in abdomens]
    assert max(spleens) > 1.2 * min(spleens) and all(120 < v < 600 for v in spleens)
    for a in abdomens:
        vox_ml = a.volume.voxel_volume_mm3 / 1000
        assert a.truth["spleen_volume_ml"] == pytest.approx(a.labels["spleen"].sum() * vox_ml, abs=0.01)
        assert set(a.truth["organ_scales"]) == {"liver", "spleen", "kidneys"}
    ref = abdomen_ct(seed=0, spacing=(6.0, 4.0, 4.0), lesion_diameter_mm=0.0, organ_scales=OrganScales())
    big = abdomen_ct(seed=0, spacing=(6.0, 4.0, 4.0), lesion_diameter_mm=0.0, organ_scales=OrganScales(spleen=1.2))
    assert big.truth["spleen_volume_ml"] > 1.5 * ref.truth["spleen_volume_ml"]
    # the spleen grows downwards: its top stays
    top = lambda m: np.flatnonzero(m.any(axis=(1, 2))).max()  # noqa: E731
    assert top(big.labels["spleen"]) == top(ref.labels["spleen"])
    with pytest.raises(PhantomError, match="between 0.5 and 1.5"):
        OrganScales(spleen=2.0)
    with pytest.raises(PhantomError, match="heart_scale"):
        chest_ct(seed=0, spacing=(6.0, 4.0, 4.0), heart_scale=0.1)
