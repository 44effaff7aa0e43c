"""NRRD, MetaImage and MGH/MGZ loading: the same voxels at the same LPS positions as the NIfTI of the same data."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from imaging.io import detect_format, load
from imaging.io.errors import CorruptFileError, FrameSelectionError
from imaging.io.orientation import RAS_TO_LPS
from mmreason.commands.measure import mask_on_grid, measure_mask

SHAPE_IJK = (7, 5, 4)  # index sizes along i, j, k (ITK order); the array is (k, j, i)


def _rotation(degrees: float, axis: int) -> np.ndarray:
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    a, b = [i for i in range(3) if i != axis]
    rot = np.eye(3)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
    return rot


#: ITK direction matrices (columns: LPS direction of index axes i, j, k)
GEOMETRIES = {
    "lps": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "coronal_flipped": np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]),
    "oblique": _rotation(25.0, 2) @ _rotation(-15.0, 0) @ np.array([[0, 1.0, 0], [0, 0, -1.0], [1.0, 0, 0]]),
}
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-40.0, 25.0, 110.0)


def _index_affine(direction: np.ndarray) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(SPACING)
    affine[:3, 3] = ORIGIN
    return affine


def _flat_index_image(direction: np.ndarray) -> sitk.Image:
    """Each voxel holds its own flat (i, j, k) index, so its source position can be recovered."""
    values = np.arange(np.prod(SHAPE_IJK), dtype=np.int32).reshape(SHAPE_IJK, order="F")  # [i, j, k]
    image = sitk.GetImageFromArray(values.transpose(2, 1, 0).copy())  # sitk arrays are (k, j, i)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction.ravel().tolist())
    return image


def _nifti_twin(tmp_path, direction: np.ndarray):
    values = np.arange(np.prod(SHAPE_IJK), dtype=np.int32).reshape(SHAPE_IJK, order="F")
    path = tmp_path / "twin.nii.gz"
    img = nib.Nifti1Image(values, RAS_TO_LPS @ _index_affine(direction))
    img.set_sform(img.affine, code="scanner")
    nib.save(img, str(path))
    return load(path)


def _assert_world_positions(volume, direction: np.ndarray) -> None:
    """Every canonical voxel sits where its source voxel (i, j, k) sits under the header's geometry."""
    zyx = np.indices(volume.shape).reshape(3, -1)
    ijk = np.vstack(np.unravel_index(volume.data.reshape(-1).astype(np.int64), SHAPE_IJK, order="F"))
    expected = _index_affine(direction) @ np.vstack([ijk, np.ones(ijk.shape[1])])
    found = volume.affine @ np.vstack([zyx, np.ones(zyx.shape[1])])
    np.testing.assert_allclose(found[:3], expected[:3], atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_itk_formats_match_the_nifti_of_the_same_data(tmp_path, suffix, geometry):
    direction = GEOMETRIES[geometry]
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(_flat_index_image(direction), str(path))
    volume = load(path)
    twin = _nifti_twin(tmp_path, direction)
    assert detect_format(path) == "itk"
    assert volume.shape == twin.shape
    np.testing.assert_allclose(volume.affine, twin.affine, atol=1e-5)
    np.testing.assert_allclose(volume.spacing, twin.spacing, atol=1e-6)
    np.testing.assert_array_equal(volume.data, twin.data)
    _assert_world_positions(volume, direction)
    assert volume.facts["orientation"].source == "header" and volume.facts["spacing"].source == "header"
    assert not volume.facts["orientation"].assumed


@pytest.mark.parametrize("suffix", [".mgz", ".mgh"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_mgh_matches_the_nifti_of_the_same_data(tmp_path, suffix, geometry):
    direction = GEOMETRIES[geometry]
    values = np.arange(np.prod(SHAPE_IJK), dtype=np.int32).reshape(SHAPE_IJK, order="F")
    path = tmp_path / f"scan{suffix}"
    nib.save(nib.MGHImage(values, RAS_TO_LPS @ _index_affine(direction)), str(path))
    volume = load(path)
    twin = _nifti_twin(tmp_path, direction)
    assert detect_format(path) == "mgh"
    np.testing.assert_allclose(volume.affine, twin.affine, atol=1e-4)
    np.testing.assert_array_equal(volume.data, twin.data)
    _assert_world_positions(volume, direction)
    assert volume.facts["orientation"].source == "header" and volume.facts["spacing"].source == "header"


def _raw_nrrd(path, fields: str, data: np.ndarray) -> None:
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\n" + fields.encode()
                     + b"encoding: raw\nendian: little\n\n" + data.astype("<i2").tobytes())


def test_nrrd_without_space_directions_reports_orientation_and_spacing_as_assumed(tmp_path):
    data = np.arange(24)
    _raw_nrrd(tmp_path / "bare.nrrd", "", data)
    bare = load(tmp_path / "bare.nrrd")
    assert bare.facts["orientation"].assumed and bare.facts["spacing"].assumed
    assert "states no axis directions" in bare.facts["orientation"].detail
    _raw_nrrd(tmp_path / "spaced.nrrd", "spacings: 0.5 0.5 2\n", data)
    spaced = load(tmp_path / "spaced.nrrd")
    assert spaced.spacing == (2.0, 0.5, 0.5)
    assert spaced.facts["spacing"].source == "header" and spaced.facts["orientation"].assumed
    _raw_nrrd(tmp_path / "stated.nrrd", "space: right-anterior-superior\n"
              "space directions: (0.5,0,0) (0,0.5,0) (0,0,2)\nspace origin: (10,20,30)\n", data)
    stated = load(tmp_path / "stated.nrrd")
    assert not stated.facts["orientation"].assumed
    # RAS origin (10, 20, 30) is LPS (-10, -20, 30); the first RAS voxel is the canonical far corner
    corner = stated.affine @ np.array([0, 2, 3, 1.0])
    np.testing.assert_allclose(corner[:3], [-10.0, -20.0, 30.0])


def test_metaimage_modality_tag_sets_the_modality(tmp_path):
    # SimpleITK does not write the Modality field: add it to the header as scanners' tools do
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 4, 5), 40, dtype=np.int16)), str(tmp_path / "ct.mhd"))
    header = (tmp_path / "ct.mhd").read_text()
    (tmp_path / "ct.mhd").write_text(header.replace("ElementSpacing", "Modality = MET_MOD_CT\nElementSpacing"))
    volume = load(tmp_path / "ct.mhd")
    assert volume.modality == "CT" and volume.facts["modality"].source == "header"


def test_2d_metaimage_is_one_slice(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    image.SetSpacing((0.2, 0.3))
    sitk.WriteImage(image, str(tmp_path / "plane.mha"))
    volume = load(tmp_path / "plane.mha")
    assert volume.shape == (1, 3, 4) and volume.spacing[1:] == pytest.approx((0.3, 0.2))
    np.testing.assert_array_equal(volume.data[0], np.arange(12).reshape(3, 4))


def test_4d_and_vector_images_need_a_frame(tmp_path):
    series = sitk.JoinSeries([sitk.GetImageFromArray(np.full((2, 3, 4), t, dtype=np.int16)) for t in range(3)])
    sitk.WriteImage(series, str(tmp_path / "series.nrrd"))
    with pytest.raises(FrameSelectionError, match="3 time points.*frame=0..2"):
        load(tmp_path / "series.nrrd")
    assert float(load(tmp_path / "series.nrrd", frame=2).data.max()) == 2.0
    with pytest.raises(FrameSelectionError, match="out of range"):
        load(tmp_path / "series.nrrd", frame=3)
    vectors = sitk.GetImageFromArray(np.stack([np.full((2, 3, 4), c, np.float32) for c in (5, 6, 7)], axis=-1),
                                     isVector=True)
    sitk.WriteImage(vectors, str(tmp_path / "vectors.mha"))
    with pytest.raises(FrameSelectionError, match="3 components per voxel"):
        load(tmp_path / "vectors.mha")
    assert float(load(tmp_path / "vectors.mha", frame=1).data.mean()) == 6.0
    frames = np.stack([np.full((4, 3, 2), t, np.float32) for t in range(2)], axis=-1)
    nib.save(nib.MGHImage(frames, np.eye(4)), str(tmp_path / "frames.mgz"))
    with pytest.raises(FrameSelectionError, match="4-D MGH with 2 frames"):
        load(tmp_path / "frames.mgz")
    assert float(load(tmp_path / "frames.mgz", frame=1).data.max()) == 1.0


def test_truncated_and_damaged_files_raise_corrupt(tmp_path):
    image = sitk.GetImageFromArray(np.arange(2000, dtype=np.int16).reshape(10, 10, 20))
    for name in ("cut.nrrd", "cut.mha"):
        sitk.WriteImage(image, str(tmp_path / name))
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(raw[: len(raw) - 1500])
        with pytest.raises(CorruptFileError, match="truncated or damaged"):
            load(tmp_path / name)
    sitk.WriteImage(image, str(tmp_path / "split.mhd"))
    (tmp_path / "split.raw").unlink()
    with pytest.raises(CorruptFileError, match="data file its header names is missing"):
        load(tmp_path / "split.mhd")
    (tmp_path / "junk.nrrd").write_bytes(b"not an image at all\n" * 10)
    with pytest.raises(CorruptFileError, match="cannot read the NRRD header"):
        load(tmp_path / "junk.nrrd")
    nib.save(nib.MGHImage(np.ones((20, 20, 20), np.float32), np.eye(4)), str(tmp_path / "cut.mgz"))
    packed = (tmp_path / "cut.mgz").read_bytes()
    (tmp_path / "cut.mgz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorruptFileError):
        load(tmp_path / "cut.mgz")
    (tmp_path / "cut.mgh").write_bytes(gzip.decompress(packed)[:400])
    with pytest.raises(CorruptFileError):
        load(tmp_path / "cut.mgh")


def test_measure_reads_a_nrrd_mask_on_a_nifti_image(tmp_path):
    direction = GEOMETRIES["oblique"]
    image = _nifti_twin(tmp_path, direction)
    mask = sitk.GetImageFromArray((np.arange(np.prod(SHAPE_IJK)).reshape(SHAPE_IJK[::-1]) % 3 == 0).astype(np.uint8))
    mask.SetSpacing(SPACING)
    mask.SetOrigin(ORIGIN)
    mask.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    record = measure_mask(image, mask_on_grid(image, load(tmp_path / "mask.nrrd")))
    assert record["voxels"] == int(np.ceil(np.prod(SHAPE_IJK) / 3))
