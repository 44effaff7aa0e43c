"""NIfTI loading: canonical orientation, exact world coordinates, frames, damaged files, round trips."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from imaging.io import load
from imaging.io.errors import (
    CorruptFileError,
    EmptyImageError,
    FrameSelectionError,
    ImageTooLargeError,
    NonFiniteValuesError,
)
from imaging.io.orientation import RAS_TO_LPS
from imaging.writers import write_nifti
from tests.helpers.io import ct_phantom, nibabel_file, oblique_affine

LPS = np.diag([-1.0, -1.0, 1.0])


def _save(tmp_path, data, affine, name="x.nii.gz", **header):
    img = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        img.header[key] = value
    path = tmp_path / name
    nib.save(img, str(path))
    return path


def _check_world(volume, source_affine_ras, source_shape, n=50, seed=0):
    """Each canonical voxel holds its source voxel's flat index: both must map to the same LPS point."""
    rng = np.random.default_rng(seed)
    zyx = np.column_stack([rng.integers(0, s, n) for s in volume.shape])
    flat = volume.data[tuple(zyx.T)].astype(np.int64)
    ijk = np.column_stack(np.unravel_index(flat, source_shape))
    expected = (LPS @ (ijk @ source_affine_ras[:3, :3].T + source_affine_ras[:3, 3]).T).T
    np.testing.assert_allclose(volume.voxel_to_world(zyx), expected, atol=1e-4)


ODD_AFFINES = {
    "ras": np.diag([1.5, 2.0, 3.0, 1.0]),
    "flipped_x_and_z": np.diag([-1.5, 2.0, -3.0, 1.0]),
    "permuted_axes": np.array([[0, 0, 3.0, 10], [2.0, 0, 0, -5], [0, -1.5, 0, 7], [0, 0, 0, 1]]),
    "oblique_30deg": np.array([[1.3, -0.75, 0, 1], [0.75, 1.3, 0, 2], [0, 0, 3.0, 3], [0, 0, 0, 1]]),
    "sheared": np.array([[1.5, 0, 0.4, 0], [0, 2.0, 0.5, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", sorted(ODD_AFFINES))
def test_odd_affines_keep_exact_world_coordinates(tmp_path, name):
    shape = (7, 5, 4)
    affine = ODD_AFFINES[name]
    data = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    vol = load(_save(tmp_path, data, affine))
    _check_world(vol, affine, shape)
    assert vol.metadata["orientation_codes"] == "SPL"
    # every canonical axis points mostly along its patient axis, increasing
    assert np.all(np.diag(vol.affine[[2, 1, 0], :3]) > 0)
    assert vol.data.flags.c_contiguous and vol.data.dtype == np.float32


@pytest.mark.parametrize("name", ["anatomical.nii", "reoriented_anat_moved.nii", "standard.nii.gz"])
def test_real_nibabel_files_map_voxels_like_nibabel(name):
    path = nibabel_file(name)
    img = nib.load(str(path))
    shape = img.shape[:3]
    vol = load(path)
    assert sorted(vol.shape) == sorted(shape)
    # compare the value at canonical voxels with nibabel's data at the voxel of the same world point
    src = np.asanyarray(img.dataobj, dtype=np.float32).reshape(shape)
    rng = np.random.default_rng(1)
    zyx = np.column_stack([rng.integers(0, s, 40) for s in vol.shape])
    world_lps = vol.voxel_to_world(zyx)
    ras = np.column_stack([world_lps @ LPS, np.ones(len(world_lps))])
    ijk = np.rint((np.linalg.inv(img.affine) @ ras.T).T[:, :3]).astype(int)
    np.testing.assert_allclose(vol.data[tuple(zyx.T)], src[tuple(ijk.T)])
    np.testing.assert_allclose(np.prod(vol.spacing), np.prod(img.header.get_zooms()[:3]), rtol=1e-5)


def test_anatomical_is_mr_by_heuristic_with_header_spacing():
    vol = load(nibabel_file("anatomical.nii"))
    assert vol.modality == "MR" and vol.metadata["modality_source"] == "heuristic"
    assert vol.spacing == (2.0, 2.0, 2.0)
    assert vol.name == "anatomical"


def test_4d_needs_frame_and_frame_selects_the_volume():
    path = nibabel_file("example4d.nii.gz")
    with pytest.raises(FrameSelectionError, match=r"2 frames.*frame=0\.\.1"):
        load(path)
    img = nib.load(str(path))
    vol = load(path, frame=1)
    assert vol.metadata["frame"] == 1
    assert np.isclose(vol.data.sum(), np.asanyarray(img.dataobj[..., 1], dtype=np.float64).sum(), rtol=1e-6)
    with pytest.raises(FrameSelectionError, match="out of range"):
        load(path, frame=2)


def test_nifti2_frame():
    vol = load(nibabel_file("example_nifti2.nii.gz"), frame=0)
    assert vol.metadata["format"] == "NIfTI-2"
    assert vol.shape == (12, 20, 32)


def test_2d_nifti_is_one_slice(tmp_path):
    data = np.arange(12, dtype=np.int16).reshape(4, 3)
    vol = load(_save(tmp_path, data, np.diag([0.5, 0.6, 1.0, 1.0])))
    assert vol.shape == (1, 3, 4) and vol.is_2d
    assert vol.spacing == pytest.approx((1.0, 0.6, 0.5))
    # RAS +x/+y (indices i/j) point Right/Anterior, so both canonical in-plane axes run the other way
    np.testing.assert_array_equal(vol.data[0], data.T[::-1, ::-1])


def test_scaled_int16_applies_slope_and_intercept(tmp_path):
    data = np.array([[[0, 10], [20, 30]]], dtype=np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.0, -1024.0)
    path = tmp_path / "s.nii"
    nib.save(img, str(path))
    vol = load(path)
    assert sorted(vol.data.ravel().tolist()) == [-1024.0, -1004.0, -984.0, -964.0]


def test_truncated_gzip_raises_corrupt(tmp_path):
    good = _save(tmp_path, np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4))
    raw = good.read_bytes()
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        load(bad)
    header_only = tmp_path / "hdr.nii.gz"
    header_only.write_bytes(gzip.compress(gzip.decompress(raw)[:200]))
    with pytest.raises(CorruptFileError):
        load(header_only)


def test_nonfinite_policies(tmp_path):
    data = np.ones((3, 3, 3), dtype=np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, np.inf
    data[2, 2, 2] = -5.0
    path = _save(tmp_path, data, np.eye(4))
    with pytest.raises(NonFiniteValuesError, match="nonfinite='zero'"):
        load(path)
    zero = load(path, nonfinite="zero")
    assert np.isfinite(zero.data).all() and (zero.data == 0).sum() == 2
    assert zero.metadata["nonfinite_replaced"] == {"count": 2, "policy": "zero"}
    low = load(path, nonfinite="min")
    assert (low.data == -5.0).sum() == 3


def test_zero_sized_and_oversized_are_refused_before_reading(tmp_path):
    with pytest.raises(EmptyImageError):
        load(_save(tmp_path, np.zeros((0, 4, 4), dtype=np.float32), np.eye(4), name="e.nii"))
    # a header announcing 2000^3 voxels with no data behind it: refused from the header alone
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2000, 2000, 2000))
    hdr.set_data_dtype(np.int16)
    huge = tmp_path / "huge.nii"
    huge.write_bytes(hdr.binaryblock + b"\0" * 4)
    with pytest.raises(ImageTooLargeError, match="max_voxels"):
        load(huge)
    small = _save(tmp_path, np.zeros((10, 10, 10), dtype=np.int16), np.eye(4), name="small.nii")
    with pytest.raises(ImageTooLargeError):
        load(small, max_voxels=999)
    assert load(small, max_voxels=1000).shape == (10, 10, 10)


@pytest.mark.parametrize("affine", [None, oblique_affine()], ids=["axis_aligned", "oblique_sheared"])
def test_write_nifti_round_trip_ct_int16(tmp_path, affine):
    vol = ct_phantom(affine=affine)
    path = write_nifti(vol, tmp_path / "ct.nii.gz")
    assert nib.load(str(path)).get_data_dtype() == np.int16
    back = load(path)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    assert back.modality == "CT" and back.metadata["modality_source"] == "file note"
    # the file's own RAS affine is the LPS one with x and y negated
    np.testing.assert_allclose(nib.load(str(path)).affine, RAS_TO_LPS @ vol.affine[:, [2, 1, 0, 3]], atol=1e-4)


def test_write_nifti_float_mr_round_trip(tmp_path):
    vol = ct_phantom()
    vol.modality = "MR"
    vol.data = vol.data * 0.37 + 1000.0
    path = write_nifti(vol, tmp_path / "mr.nii")
    assert nib.load(str(path)).get_data_dtype() == np.float32
    back = load(path)
    np.testing.assert_array_equal(back.data, vol.data)
    assert back.modality == "MR" and back.spacing == pytest.approx(vol.spacing)


def test_ct_heuristic_on_untagged_nifti(tmp_path):
    vol = ct_phantom()
    path = _save(tmp_path, vol.data.transpose(2, 1, 0).astype(np.int16), np.eye(4))
    loaded = load(path)
    assert loaded.modality == "CT" and loaded.metadata["modality_source"] == "heuristic"
    assert load(path, modality="mr").modality == "MR"
