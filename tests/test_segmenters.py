"""Segmenters: the interface, classical accuracy on phantoms, tiny SAM/MedSAM, TotalSegmentator glue."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from grounding.segmenters import (
    TARGETS,
    ClassicalSegmenter,
    Prompt,
    SegmentationError,
    Segmenter,
    get_segmenter,
    normalize_target,
)
from grounding.segmenters.agreement import dice
from imaging.phantoms import NoduleSpec, abdomen_ct, brain_mr, chest_ct
from imaging.volume import Volume

NODULES = [NoduleSpec(diameter_mm=10.0, side="right"), NoduleSpec(diameter_mm=8.0, side="left")]
STRUCTURES = ("body", "lungs", "lung_left", "lung_right")


def centroid_world_x(volume: Volume, mask: np.ndarray) -> float:
    return float(volume.voxel_to_world(np.argwhere(mask).mean(axis=0, keepdims=True))[0, 0])


def with_data(volume: Volume, data: np.ndarray, affine: np.ndarray | None = None, modality: str = "CT") -> Volume:
    return Volume(data=np.ascontiguousarray(data), spacing=volume.spacing,
                  affine=volume.affine if affine is None else affine, modality=modality)


@pytest.fixture(scope="module")
def chest():
    """3 x 2 x 2 mm chest phantom with two nodules (connectivity runs at full resolution)."""
    return chest_ct(seed=1, spacing=(3.0, 2.0, 2.0), nodules=NODULES)


@pytest.fixture(scope="module")
def chest_fine():
    """2 x 1 x 1 mm: the coarse-grid path (analysis at 2 mm, boundaries refined at 1 mm)."""
    return chest_ct(seed=2, spacing=(2.0, 1.0, 1.0), fov_mm=(200.0, 320.0, 320.0), nodules=NODULES[:1])


# -- interface ------------------------------------------------------------------------------

def test_get_segmenter_and_protocol():
    seg = get_segmenter()
    assert isinstance(seg, Segmenter) and seg.name == "classical"
    assert set(seg.targets) == set(TARGETS)
    with pytest.raises(SegmentationError, match="auto, classical, totalseg, monai, sam, medsam"):
        get_segmenter("nnunet")
    with pytest.raises(SegmentationError, match="needs weights"):
        get_segmenter("sam")


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("left lung", "lung_left"), ("Right-Lung", "lung_right"), ("trachea", "airways"), ("LUNGS", "lungs"),
     ("nodules", "nodule"), ("tumour", "lesion")],
)
def test_target_aliases(alias, canonical):
    assert normalize_target(alias) == canonical


def test_unknown_target_lists_known_targets(chest):
    with pytest.raises(SegmentationError) as err:
        ClassicalSegmenter().segment(chest.volume, "pancreas")
    assert "pancreas" in str(err.value)
    for name in TARGETS:
        assert name in str(err.value)


def test_prompt_box_outside_volume_is_an_error(chest):
    prompt = Prompt(box_zyx=(slice(500, 501), slice(0, 10), slice(0, 10)))
    with pytest.raises(SegmentationError, match="outside the volume"):
        ClassicalSegmenter().segment(chest.volume, "lungs", prompt)


# -- classical: CT structures --------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["chest", "chest_fine"])
def test_structures_match_phantom(fixture, request):
    phantom = request.getfixturevalue(fixture)
    seg = ClassicalSegmenter()
    for target in STRUCTURES:
        mask = seg.segment(phantom.volume, target)
        assert mask.shape == phantom.volume.shape and mask.dtype == bool
        assert dice(mask, phantom.labels[target]) >= 0.95, target
    airways = seg.segment(phantom.volume, "airways")
    assert dice(airways, phantom.labels["trachea"]) >= 0.85
    lungs = seg.segment(phantom.volume, "lungs")
    for nodule in phantom.truth["nodules"]:  # nodules lie inside the lung masks
        assert lungs[phantom.labels[nodule["label"]]].mean() > 0.99


def test_left_is_patient_left(chest):
    seg = ClassicalSegmenter()
    left, right = seg.segment(chest.volume, "lung_left"), seg.segment(chest.volume, "lung_right")
    assert centroid_world_x(chest.volume, left) > 0 > centroid_world_x(chest.volume, right)  # LPS +x = left
    assert not (left & right).any()


def test_left_right_follow_the_affine_not_the_index(chest):
    """Mirror the array in x and flip the affine's x column: same patient, same sides."""
    vol = chest.volume
    affine = vol.affine.copy()
    affine[:3, 2] *= -1
    affine[:3, 3] = vol.voxel_to_world([[0, 0, vol.shape[2] - 1]])[0]
    flipped = with_data(vol, vol.data[:, :, ::-1], affine)
    seg = ClassicalSegmenter()
    for target in ("lung_left", "lung_right"):
        assert dice(seg.segment(flipped, target), chest.labels[target][:, :, ::-1]) >= 0.95


def test_lungs_cut_by_the_field_of_view(chest):
    vol = chest.volume
    cut = 40  # 80 mm off the patient's right side: the right lung touches the image border
    affine = vol.affine.copy()
    affine[:3, 3] = vol.voxel_to_world([[0, 0, cut]])[0]
    cropped = with_data(vol, vol.data[:, :, cut:], affine)
    assert chest.labels["lung_right"][:, :, 0 : cut + 1].any()
    seg = ClassicalSegmenter()
    for target in STRUCTURES:
        assert dice(seg.segment(cropped, target), chest.labels[target][:, :, cut:]) >= 0.95, target


def test_touching_lungs_are_split(chest):
    """An air bridge across the anterior mediastinum joins the lungs into one component."""
    vol = chest.volume
    nz, ny, nx = vol.shape
    world = vol.voxel_to_world(np.argwhere(np.ones(vol.shape, dtype=bool))).reshape(nz, ny, nx, 3)
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    bridge = (np.abs(x) < 70) & (y > -70) & (y < -55) & (z > 0) & (z < 30) & ~chest.labels["lungs"]
    assert ndimage.binary_dilation(bridge)[chest.labels["lung_left"]].any()
    assert ndimage.binary_dilation(bridge)[chest.labels["lung_right"]].any()
    data = vol.data.copy()
    data[bridge] = -840.0
    seg = ClassicalSegmenter()
    joined = with_data(vol, data)
    for target in ("lung_left", "lung_right"):
        assert dice(seg.segment(joined, target), chest.labels[target]) >= 0.95


def test_single_slice_ct(chest):
    z = chest.volume.shape[0] // 2
    vol = chest.volume
    slice_volume = with_data(vol, vol.data[z : z + 1])
    seg = ClassicalSegmenter()
    for target in STRUCTURES:
        mask = seg.segment(slice_volume, target)
        assert mask.shape == (1,) + vol.shape[1:]
        assert dice(mask, chest.labels[target][z : z + 1]) >= 0.95, target


def test_anisotropic_thick_slices():
    phantom = chest_ct(seed=1, spacing=(5.0, 0.7, 0.7), nodules=NODULES[:1])
    seg = ClassicalSegmenter()
    for target in STRUCTURES:
        assert dice(seg.segment(phantom.volume, target), phantom.labels[target]) >= 0.95, target
    nodule = phantom.truth["nodules"][0]
    found = ndimage.label(seg.segment(phantom.volume, "nodule"), np.ones((3, 3, 3)))[0]
    label = found[tuple(nodule["center_voxel"])]
    assert label > 0
    assert abs((found == label).sum() - nodule["voxels"]) <= 0.1 * nodule["voxels"]


def test_bone_inside_body(chest):
    seg = ClassicalSegmenter()
    bone = seg.segment(chest.volume, "bone")
    assert bone[chest.labels["spine"]].mean() > 0.9
    assert not (bone & ~seg.segment(chest.volume, "body")).any()
    assert np.all(chest.volume.data[bone] >= 200.0)


def test_real_ct_slice_without_lungs():
    """pydicom's CT_small.dcm (a real 128x128 CT slice, no chest): body yes, lungs refused."""
    from pydicom.data import get_testdata_file

    from imaging.io import load

    volume = load(get_testdata_file("CT_small.dcm"))
    body = ClassicalSegmenter().segment(volume, "body")
    assert body.shape == volume.shape and 0.5 < body.mean() < 0.95
    assert np.all(volume.data[body & ~ndimage.binary_erosion(body, iterations=3)] > -1000)
    with pytest.raises(SegmentationError, match="too little to be lung"):
        ClassicalSegmenter().segment(volume, "lungs")


def test_non_ct_structures_are_refused(chest):
    mr = brain_mr(seed=0, spacing=(6.0, 3.0, 3.0)).volumes["flair"]
    for target in ("body", "lungs", "lung_left", "liver"):
        with pytest.raises(SegmentationError, match="Hounsfield.*CT"):
            ClassicalSegmenter().segment(mr, target)
    for target in ("heart", "thorax"):  # classical cardiac silhouette and thorax: radiographs only
        with pytest.raises(SegmentationError, match="chest radiographs.*totalsegmentator"):
            ClassicalSegmenter().segment(chest.volume, target)


# -- classical: prompts and lesions ---------------------------------------------------------

def test_box_restricts_and_point_picks_a_component(chest):
    seg = ClassicalSegmenter()
    vol = chest.volume
    lungs = seg.segment(vol, "lungs")
    z = vol.shape[0] // 2
    box = (slice(z, z + 1), slice(40, 120), slice(10, 90))
    boxed = seg.segment(vol, "lungs", Prompt(box_zyx=box, plane_axis=0))
    # a box drawn on one slice of a 3-D volume searches the slab as deep as the box is wide
    half = int(np.ceil(80 * vol.spacing[2] / vol.spacing[0]))
    slab = (slice(max(z - half, 0), z + 1 + half), box[1], box[2])
    assert np.array_equal(boxed[box], lungs[box]) and lungs[box].sum() > 0
    assert not (boxed & ~lungs).any() and boxed[slab].sum() == boxed.sum() > lungs[box].sum()
    flat = seg.segment(vol, "lungs", Prompt(box_zyx=box))  # a 3-D box (no view plane) clips as given
    assert np.array_equal(flat[box], lungs[box]) and flat.sum() == lungs[box].sum()
    left_point = tuple(int(v) for v in np.argwhere(chest.labels["lung_left"])[0])
    picked = seg.segment(vol, "lungs", Prompt(point_zyx=left_point))
    assert dice(picked, chest.labels["lung_left"]) >= 0.95


def test_nodule_candidates_match_truth(chest):
    seg = ClassicalSegmenter()
    candidates = seg.segment(chest.volume, "nodule")
    labels, n = ndimage.label(candidates, np.ones((3, 3, 3)))
    assert n == len(chest.truth["nodules"])
    for nodule in chest.truth["nodules"]:
        label = labels[tuple(nodule["center_voxel"])]
        assert label > 0
        volume_mm3 = (labels == label).sum() * chest.volume.voxel_volume_mm3
        assert volume_mm3 == pytest.approx(nodule["volume_mm3_voxels"], rel=0.10)
    point = chest.truth["nodules"][1]["center_voxel"]
    one = seg.segment(chest.volume, "lesion", Prompt(point_zyx=tuple(point)))
    assert dice(one, chest.labels[chest.truth["nodules"][1]["label"]]) >= 0.8


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chest_ct.nii.gz"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="bundled example not present")
def test_thick_slices_give_the_nodule_and_no_vessel_pieces():
    """5 mm slices: vessel pieces crossing one slice were candidates; only the 12 mm nodule remains."""
    from imaging.io import load

    volume = load(EXAMPLE)
    truth = json.loads(EXAMPLE.with_name("chest_ct_truth.json").read_text())["nodules"][0]
    labels, n = ndimage.label(ClassicalSegmenter().segment(volume, "nodule"), np.ones((3, 3, 3)))
    assert n == 1 and labels[tuple(truth["center_voxel"])] == 1
    assert (labels == 1).sum() * volume.voxel_volume_mm3 == pytest.approx(truth["volume_mm3"], rel=0.1)


@pytest.mark.parametrize("spacing", [(3.0, 2.0, 2.0), (2.0, 1.0, 1.0), (1.0, 1.0, 1.0)])
def test_small_nodules_survive_the_vessel_filters(spacing):
    """5 mm nodules on 1-3 mm slices are kept; nothing else is called a nodule."""
    phantom = chest_ct(seed=1, spacing=spacing, fov_mm=(160.0, 320.0, 320.0),
                       nodules=[NoduleSpec(diameter_mm=5.0, side="right"), NoduleSpec(diameter_mm=5.0, side="left")])
    labels, n = ndimage.label(ClassicalSegmenter().segment(phantom.volume, "nodule"), np.ones((3, 3, 3)))
    assert n == 2
    for nodule in phantom.truth["nodules"]:
        assert labels[phantom.labels[nodule["label"]]].any()


def test_plausible_nodule_rejects_streaks_and_thin_blobs():
    from grounding.segmenters.lesions import plausible_nodule

    disc = np.zeros((1, 9, 9), dtype=bool)
    yy, xx = np.mgrid[0:9, 0:9]
    disc[0] = (yy - 4) ** 2 + (xx - 4) ** 2 <= 9  # a 7-pixel-wide disc
    assert plausible_nodule(np.repeat(disc, 3, axis=0), (1.0, 1.0, 1.0))
    assert not plausible_nodule(disc, (1.0, 1.0, 1.0))  # one thin slice: a vessel crossing it
    assert plausible_nodule(disc, (1.0, 1.0, 1.0), planar=True)  # a single-slice image has no slices to span
    assert not plausible_nodule(disc, (5.0, 0.6, 0.6))  # 4.3 mm wide on a 5 mm slice
    streak = np.zeros((2, 9, 9), dtype=bool)
    streak[:, np.arange(9), np.arange(9)] = True  # an oblique vessel cut
    assert not plausible_nodule(streak, (1.0, 1.0, 1.0))


def test_box_on_a_lung_mass_that_is_no_nodule():
    """A 34 mm mass is too big for a nodule candidate; a box on it still segments it."""
    phantom = chest_ct(seed=3, spacing=(3.0, 2.0, 2.0), nodules=[NoduleSpec(diameter_mm=34.0, side="left")])
    seg = ClassicalSegmenter()
    assert not seg.segment(phantom.volume, "nodule").any()
    cz, cy, cx = phantom.truth["nodules"][0]["center_voxel"]
    box = (slice(cz, cz + 1), slice(cy - 12, cy + 12), slice(cx - 12, cx + 12))
    mask = seg.segment(phantom.volume, "lesion", Prompt(box_zyx=box, plane_axis=0))
    assert dice(mask[cz], phantom.labels["nodule_1"][cz]) >= 0.9
    # drawn on one slice, the box asks for the whole mass in 3-D
    assert dice(mask, phantom.labels["nodule_1"]) >= 0.85 and mask.sum() > 3 * mask[cz].sum()


def test_liver_lesion_in_a_box_prompt():
    phantom = abdomen_ct(seed=0)
    truth = phantom.truth["liver_lesion"]
    cz, cy, cx = truth["center_voxel"]
    half = int(truth["diameter_mm"] / 2 / phantom.volume.spacing[1]) + 6
    box = (slice(cz, cz + 1), slice(cy - half, cy + half), slice(cx - half, cx + half))
    seg = ClassicalSegmenter()
    for target in ("lesion", None):  # a prompt alone segments what stands out in the box
        mask = seg.segment(phantom.volume, target, Prompt(box_zyx=box, plane_axis=0))
        assert dice(mask[cz], phantom.labels["liver_lesion"][cz]) >= 0.85
        assert dice(mask, phantom.labels["liver_lesion"]) >= 0.85  # the whole lesion, not one slice
        flat = seg.segment(phantom.volume, target, Prompt(box_zyx=box))  # a 3-D box one slice thick
        assert not flat[: cz].any() and not flat[cz + 1 :].any()
    whole = seg.segment(phantom.volume, "lesion", Prompt(point_zyx=(cz, cy, cx)))
    assert dice(whole, phantom.labels["liver_lesion"]) >= 0.85
    # a box on plain liver, well inside the organ and away from the lesion: nothing to find
    deep = ndimage.distance_transform_edt(phantom.labels["liver"], sampling=phantom.volume.spacing) > 25
    deep &= ndimage.distance_transform_edt(~phantom.labels["liver_lesion"], sampling=phantom.volume.spacing) > 25
    z, y, x = np.argwhere(deep)[0]
    with pytest.raises(SegmentationError, match="differs from its surroundings"):
        box = (slice(z, z + 1), slice(y - 4, y + 4), slice(x - 4, x + 4))
        seg.segment(phantom.volume, "lesion", Prompt(box_zyx=box))


def test_mr_hyperintense_lesion():
    phantom = brain_mr(seed=0)
    seg = ClassicalSegmenter()
    mask = seg.segment(phantom.volumes["flair"], "lesion")
    assert dice(mask, phantom.labels["lesion"]) >= 0.8
    with pytest.raises(SegmentationError, match="need CT"):
        seg.segment(phantom.volumes["flair"], "nodule")


@pytest.mark.parametrize("seed, diameter_mm", [(13, 17.0), (29, 15.0), (12, 12.0), (20, 10.0), (6, 8.0), (3, 15.0)])
def test_mr_lesion_over_seeds_on_bias_bright_side(seed, diameter_mm):
    # these seeds put the lesion where grey matter (brightened by the bias field) passes a
    # median + MAD threshold: the lesion was lost among noise specks, a speck was returned
    phantom = brain_mr(seed=seed, spacing=(3.0, 2.0, 2.0), lesion_diameter_mm=diameter_mm)
    flair, truth = phantom.volumes["flair"], phantom.labels["lesion"]
    mask = ClassicalSegmenter().segment(flair, "lesion")
    assert dice(mask, truth) >= 0.8
    midline = flair.shape[2] / 2
    assert (np.argwhere(mask)[:, 2].mean() > midline) == (np.argwhere(truth)[:, 2].mean() > midline)


def test_mr_lesion_absent_gives_empty_mask():
    phantom = brain_mr(seed=1, spacing=(3.0, 2.0, 2.0), lesion_diameter_mm=0)
    assert not ClassicalSegmenter().segment(phantom.volumes["flair"], "lesion").any()


# -- SAM / MedSAM ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from grounding.segmenters.tiny import save_tiny_sam

    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


def test_tiny_sam_architecture_is_inferred_from_weights(tiny_checkpoint):
    from grounding.segmenters.tiny import TINY_SAM

    from grounding.segmenters.sam import SamConfig, infer_config, read_state_dict

    assert infer_config(read_state_dict(tiny_checkpoint)) == SamConfig.from_dict(TINY_SAM)


def test_sam_box_prompt_on_a_slice(tiny_checkpoint, chest):
    vol = chest.volume
    z = vol.shape[0] // 2
    box = (slice(z, z + 1), slice(40, 90), slice(20, 70))
    outputs = []
    for _ in range(2):  # loaded twice through the same path real checkpoints take
        seg = get_segmenter("sam", checkpoint=str(tiny_checkpoint))
        assert seg.name == "sam" and not seg.medsam
        mask = seg.segment(vol, "lung_right", Prompt(box_zyx=box, plane_axis=0))
        assert mask.shape == vol.shape and mask.dtype == bool
        outside = mask.copy()
        outside[box] = False
        assert not outside.any()
        outputs.append(mask)
    assert np.array_equal(outputs[0], outputs[1])
    point = seg.segment(vol, None, Prompt(point_zyx=(z, 60, 40), plane_axis=1))
    assert point.shape == vol.shape and not np.delete(point, 60, axis=1).any()


def test_medsam_is_detected_from_the_file_name(tiny_checkpoint, tmp_path, chest):
    medsam_path = shutil.copy(tiny_checkpoint, tmp_path / "medsam_tiny.pth")
    seg = get_segmenter("sam", checkpoint=str(medsam_path))
    assert seg.medsam and seg.name == "medsam"
    vol = chest.volume
    box = (slice(10, 60), slice(50, 51), slice(20, 100))  # a coronal box
    mask = seg.segment(vol, "lungs", Prompt(box_zyx=box, plane_axis=1))
    outside = mask.copy()
    outside[box] = False
    assert mask.dtype == bool and not outside.any()
    with pytest.raises(SegmentationError, match="box or a point"):
        seg.segment(vol, "lungs")
    with pytest.raises(SegmentationError, match="known targets"):
        seg.segment(vol, "pancreas", Prompt(box_zyx=box, plane_axis=1))
    assert get_segmenter("medsam", checkpoint=str(tiny_checkpoint)).medsam


def test_sam_checkpoint_errors(tiny_checkpoint, tmp_path, monkeypatch):
    import importlib.util

    from grounding.segmenters.sam import load_sam

    with pytest.raises(SegmentationError, match="do not fit.*model_type"):
        load_sam(tiny_checkpoint, model_type="vit_b")
    with pytest.raises(SegmentationError, match="not found"):
        load_sam(tmp_path / "missing.pth")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "segment_anything" else real_find_spec(name, *a)
    )
    with pytest.raises(SegmentationError, match=r"pip install 'mmreason\[sam\]'"):
        load_sam(tiny_checkpoint)


# -- TotalSegmentator -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("cls", "targets"),
    [("lung_upper_lobe_left", ("lung_upper_lobe_left", "lung_left", "lungs")),
     ("lung_middle_lobe_right", ("lung_middle_lobe_right", "lung_right", "lungs")),
     ("trachea", ("airways",)), ("vertebrae_T7", ("vertebrae", "bone")), ("rib_left_3", ("bone",)), ("sternum", ("bone",)),
     ("liver", ("liver",)), ("kidney_right", ("kidney_right",)), ("heart", ("heart",)), ("esophagus", ())],
)
def test_totalseg_class_mapping(cls, targets):
    from grounding.segmenters.totalseg import targets_for_class

    assert targets_for_class(cls) == targets


def test_totalseg_missing_package_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def fail(name, *args, **kwargs):
        if name.startswith("totalsegmentator"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fail)
    with pytest.raises(SegmentationError, match=r"pip install 'mmreason\[totalseg\]'"):
        get_segmenter("totalsegmentator")


def test_totalseg_missing_weights_and_nifti_round_trip(monkeypatch, tmp_path, chest):
    from grounding.segmenters.volume_io import labels_from_nifti, to_nifti

    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path))
    with pytest.raises(SegmentationError, match="totalseg_download_weights.*TOTALSEG_HOME_DIR"):
        get_segmenter("totalseg")
    vol = chest.volume
    image = to_nifti(vol)
    ras = image.affine @ np.array([5, 7, 3, 1.0])  # NIfTI voxel (i=x, j=y, k=z)
    lps = vol.voxel_to_world([[3, 7, 5]])[0]
    assert np.allclose(ras[:3], [-lps[0], -lps[1], lps[2]])
    assert np.array_equal(labels_from_nifti(np.asarray(image.dataobj), vol.shape, "test"), np.rint(vol.data))


def test_sam_sees_coronal_slices_of_thick_ct_with_square_pixels():
    from grounding.segmenters.sam import render_slice

    data = np.full((8, 20, 30), -1000.0, np.float32)
    data[2, 9, 12] = 1000.0  # one bright voxel on coronal slice y=9, 5 mm slices, 1 mm pixels
    vol = Volume.from_array(data, spacing=(5.0, 1.0, 1.0), modality="CT")
    image = render_slice(vol, 1, 9, "bone")
    assert image.rgb.shape[:2] == (40, 30) and image.scale == (5.0, 1.0)  # 8 slices x 5 mm -> 40 rows
    x, y = image.to_pixel(2, 12)  # voxel (z=2, x=12), superior up
    gray = image.rgb[..., 0].astype(float)
    assert gray[int(round(y)), int(round(x))] == gray.max()
    x0, y0, x1, y1 = image.box_to_pixels(slice(2, 3), slice(12, 13))
    assert (x0, x1) == (12, 12) and y1 - y0 == 4 and y0 <= y <= y1
    # a mask drawn on the image comes back to the voxel grid of the slice
    mask = np.zeros(image.rgb.shape[:2], bool)
    mask[int(y0):int(y1) + 1, int(x0):int(x1) + 1] = True
    back = image.to_slab(mask)
    assert back.shape == (8, 30) and np.argwhere(back).tolist() == [[2, 12]]
