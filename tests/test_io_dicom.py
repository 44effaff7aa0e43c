"""DICOM loading: real pydicom files, codecs, non-image objects, series assembly and round trips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest

from imaging.io import list_series, load
from imaging.io.errors import (
    CorruptFileError,
    FrameSelectionError,
    ImageTooLargeError,
    InconsistentSeriesError,
    MissingCodecError,
    MultipleSeriesError,
    NoDicomError,
    NonImageDicomError,
    SeriesNotFoundError,
    UnevenSlicesError,
)
from imaging.volume import Volume
from imaging.writers import WriteError, write_dicom_image, write_dicom_series
from tests.helpers.io import ct_phantom, oblique_affine, pydicom_dir, pydicom_file

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
               "StudyDate", "StudyInstanceUID", "SOPInstanceUID", "ReferringPhysicianName")


def test_ct_small_values_geometry_and_no_identifiers():
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(str(path))
    vol = load(path)
    assert vol.modality == "CT" and vol.metadata["modality_source"] == "dicom"
    assert vol.shape == (1, 128, 128)
    assert vol.spacing[1:] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert vol.metadata["pixel_spacing_source"] == "PixelSpacing"
    np.testing.assert_allclose(vol.affine[:3, 3], [float(v) for v in ds.ImagePositionPatient], atol=1e-5)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(vol.data[0], hu)
    assert -1100 < vol.data.min() < -800 and 500 < vol.data.max() < 3000  # air .. bone, in HU
    assert vol.metadata["KVP"] == 120.0 and vol.metadata["ConvolutionKernel"] == "STANDARD"
    text = repr(vol.metadata) + vol.name + json.dumps(vol.summary())
    for keyword in IDENTIFYING:
        assert keyword not in text
        if keyword in ds and str(ds.get(keyword)):
            assert str(ds.get(keyword)) not in text
    assert str(ds.PatientName) not in text


@pytest.mark.parametrize("twin", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_compressed_and_other_syntaxes_decode_to_the_uncompressed_twin(twin):
    reference = load(pydicom_file("MR_small.dcm"))
    vol = load(pydicom_file(twin))
    np.testing.assert_array_equal(vol.data, reference.data)
    np.testing.assert_allclose(vol.affine, reference.affine)
    assert vol.modality == "MR" and vol.data.max() == 2145.0


def test_truncated_pixel_data():
    with pytest.raises(CorruptFileError, match="truncated"):
        load(pydicom_file("MR_truncated.dcm"))


def test_missing_codec_names_the_extra(monkeypatch):
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(MissingCodecError, match=r"pip install 'mmreason\[dicom-codecs\]'"):
        load(pydicom_file("MR_small_jp2klossless.dcm"))


@pytest.mark.parametrize("name, word", [("rtstruct.dcm", "RTSTRUCT"), ("rtplan.dcm", "RTPLAN"),
                                        ("test-SR.dcm", "SR"), ("liver_1frame.dcm", "SEG"),
                                        ("rtdose.dcm", "RTDOSE"), ("waveform_ecg.dcm", "waveform")])
def test_non_image_objects_are_refused_by_name(name, word):
    with pytest.raises(NonImageDicomError, match=word):
        load(pydicom_file(name))


def test_multiframe_needs_frame_and_colour_is_kept_on_request():
    path = pydicom_file("examples_ybr_color.dcm")
    with pytest.raises(FrameSelectionError, match=r"30 frames"):
        load(path)
    vol = load(path, frame=3, color=True)
    assert vol.modality == "US" and vol.shape == (1, 240, 320)
    assert vol.color is not None and vol.color.shape == (1, 240, 320, 3) and vol.color.dtype == np.uint8
    expected = vol.color[0].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(vol.data[0], expected, atol=0.5)


def test_size_limit_checked_from_header():
    with pytest.raises(ImageTooLargeError, match="max_voxels"):
        load(pydicom_file("CT_small.dcm"), max_voxels=100)


# -- series ---------------------------------------------------------------------------------

@pytest.mark.parametrize("affine", [None, oblique_affine()], ids=["axial", "oblique_tilted"])
def test_series_round_trip_shuffled(tmp_path, affine):
    vol = ct_phantom(affine=affine)
    write_dicom_series(vol, tmp_path / "s", rescale=(1.0, -1024.0), shuffle=True)
    ds = pydicom.dcmread(str(sorted((tmp_path / "s").iterdir())[0]))
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.PatientName == "ANONYMOUS"
    assert float(ds.RescaleIntercept) == -1024.0 and ds.pixel_array.min() >= 0  # stored = HU + 1024
    back = load(tmp_path / "s")
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert back.spacing[1:] == pytest.approx(vol.spacing[1:])
    # slice spacing is the distance between slices along the normal (2.5 mm even when sheared)
    assert back.spacing[0] == pytest.approx(2.5)
    assert back.modality == "CT" and back.metadata["slice_spacing_source"] == "ImagePositionPatient"


def test_series_with_a_missing_slice_is_detected_then_resampled(tmp_path):
    vol = ct_phantom(shape=(8, 6, 5))
    paths = write_dicom_series(vol, tmp_path / "s")
    paths[4].unlink()
    with pytest.raises(UnevenSlicesError, match=r"5\.00 mm between .* 1 missing slice.*allow_uneven=True"):
        load(tmp_path / "s")
    fixed = load(tmp_path / "s", allow_uneven=True)
    assert fixed.shape == vol.shape
    np.testing.assert_allclose(fixed.affine, vol.affine, atol=1e-5)
    np.testing.assert_allclose(fixed.data[4], (vol.data[3] + vol.data[5]) / 2, atol=1e-4)
    np.testing.assert_array_equal(fixed.data[5:], vol.data[5:])
    assert fixed.metadata["uneven_slices"]["gaps"][0]["gap_mm"] == pytest.approx(5.0)


def test_resampled_series_keeps_the_median_step_when_the_span_is_not_a_multiple(tmp_path):
    # slices at 0, 2.5, ..., 15 mm along the normal, the last moved to 16 mm: the regular grid ends
    # at 15 mm, and its step must stay 2.5 mm (not the acquired span over the grid's span)
    vol = ct_phantom(shape=(7, 6, 5))
    paths = write_dicom_series(vol, tmp_path / "s")
    last = pydicom.dcmread(str(paths[-1]))
    position = [float(v) for v in last.ImagePositionPatient]
    last.ImagePositionPatient = [position[0], position[1], position[2] + 1.0]
    last.save_as(str(paths[-1]))
    fixed = load(tmp_path / "s", allow_uneven=True)
    assert fixed.shape == vol.shape
    assert fixed.spacing[0] == pytest.approx(2.5)
    np.testing.assert_allclose(fixed.affine, vol.affine, atol=1e-5)
    # the last grid slice (15 mm) lies 1 mm before the moved slice (16 mm), 2.5 mm after slice 5
    np.testing.assert_allclose(fixed.data[6], vol.data[5] + (vol.data[6] - vol.data[5]) * 2.5 / 3.5, atol=1e-3)


def test_float_mr_series_rescale_rounding(tmp_path):
    vol = ct_phantom()
    vol.modality = "MR"
    vol.data = (vol.data + 1100.0) * 0.731
    write_dicom_series(vol, tmp_path / "mr")
    back = load(tmp_path / "mr")
    slope = float(pydicom.dcmread(str(next((tmp_path / "mr").iterdir()))).RescaleSlope)
    assert np.abs(back.data - vol.data).max() <= slope / 2 + 1e-3
    assert back.modality == "MR"


def test_several_series_listed_and_selected(tmp_path):
    a, b = ct_phantom(seed=1), ct_phantom(shape=(4, 10, 12), seed=2)
    write_dicom_series(a, tmp_path / "study" / "a", series_description="Doe^Jane Chest Axial 5mm")
    write_dicom_series(b, tmp_path / "study" / "b", series_description="MRN-88231 Lung Kernel")
    series = list_series(tmp_path / "study")
    # only the technical words of a description survive; the UID is shown as a salted token
    assert sorted((s.description, s.n_slices, s.modality) for s in series) == [
        ("Chest Axial 5mm", 6, "CT"), ("Lung Kernel", 4, "CT")]
    with pytest.raises(MultipleSeriesError, match=r"2 series.*series=INDEX.*Chest Axial 5mm.*6 slice") as info:
        load(tmp_path / "study")
    assert all(s.uid not in str(info.value) and s.token in str(info.value) for s in series)
    assert "Doe" not in str(info.value) and "88231" not in str(info.value)
    assert all(s.summary()["uid"] == s.token and s.token.startswith("uid-") for s in series)
    by_uid = load(tmp_path / "study", series=series[0].uid)
    by_token = load(tmp_path / "study", series=series[0].token)
    by_index = load(tmp_path / "study", series=str(series[0].index))
    np.testing.assert_array_equal(by_uid.data, by_index.data)
    np.testing.assert_array_equal(by_token.data, by_index.data)
    with pytest.raises(SeriesNotFoundError):
        load(tmp_path / "study", series="1.2.3")


def test_folder_without_dicom_and_with_only_non_image(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NoDicomError):
        load(tmp_path)
    rt = tmp_path / "rt"
    rt.mkdir()
    shutil.copy(pydicom_file("liver_1frame.dcm"), rt / "seg.dcm")
    shutil.copy(pydicom_file("rtstruct.dcm"), rt / "rtstruct.dcm")  # no DICM preamble, read by its name
    with pytest.raises(NonImageDicomError, match=r"SEG.*RTSTRUCT|RTSTRUCT.*SEG"):
        load(rt)


def test_series_ignores_a_segmentation_next_to_the_images(tmp_path):
    write_dicom_series(ct_phantom(), tmp_path / "s")
    shutil.copy(pydicom_file("liver_1frame.dcm"), tmp_path / "s" / "zz_seg.dcm")
    vol = load(tmp_path / "s")
    assert vol.shape == (6, 10, 12)
    assert sum(vol.metadata["ignored_objects"].values()) == 1


def test_inconsistent_slice_sizes(tmp_path):
    write_dicom_series(ct_phantom(), tmp_path / "s")
    odd = tmp_path / "s" / "slice_0002.dcm"
    ds = pydicom.dcmread(str(odd))
    ds.Rows, ds.Columns = 5, 24  # same number of pixels, different size
    ds.save_as(str(odd))
    with pytest.raises(InconsistentSeriesError, match="slice_0002"):
        load(tmp_path / "s")


def test_real_multislice_ct_series_from_pydicom():
    folder = pydicom_dir() / "dicomdirtests"
    if not folder.exists():
        pytest.skip("pydicom test folder dicomdirtests is not installed")
    uid = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"
    if uid not in {s.uid for s in list_series(folder)}:
        pytest.skip("the SmartScore CT series is not in this pydicom version")
    vol = load(folder, series=uid)
    assert vol.shape == (5, 16, 16) and vol.modality == "CT"
    assert vol.spacing[0] == pytest.approx(2.5)
    assert -1100 < vol.data.min() and vol.data.max() < 3100


# -- X-ray ----------------------------------------------------------------------------------

@pytest.mark.parametrize("photometric, tag", [("MONOCHROME1", "ImagerPixelSpacing"), ("MONOCHROME2", "PixelSpacing")])
def test_xray_round_trip(tmp_path, photometric, tag):
    data = np.random.default_rng(0).integers(0, 4096, (1, 30, 20)).astype(np.float32)
    xr = Volume.from_array(data, spacing=(1.0, 0.143, 0.15), modality="XR")
    path = write_dicom_image(xr, tmp_path / "cxr.dcm", photometric=photometric, modality="CR", spacing_tag=tag)
    ds = pydicom.dcmread(str(path))
    assert ds.PhotometricInterpretation == photometric and tag in ds
    back = load(path)
    np.testing.assert_array_equal(back.data, xr.data)
    assert back.modality == "XR" and back.metadata["Modality"] == "CR"
    assert back.spacing == pytest.approx((1.0, 0.143, 0.15))
    assert back.metadata["pixel_spacing_source"] == tag
    assert back.metadata.get("inverted_from") == ("MONOCHROME1" if photometric == "MONOCHROME1" else None)


@pytest.mark.parametrize("orientation, flipped", [(["L", "F"], ()), (["R", "F"], (1,)), (["R", "H"], (0, 1)),
                                                  (None, ())])
def test_xray_patient_orientation_puts_the_patients_left_at_plus_x(tmp_path, orientation, flipped):
    data = np.zeros((1, 30, 20), np.float32)
    data[0, 5, 15] = 1000.0  # towards the top right of the stored pixels
    path = write_dicom_image(Volume.from_array(data, spacing=(1.0, 0.2, 0.2), modality="XR"), tmp_path / "cxr.dcm")
    ds = pydicom.dcmread(str(path))
    if orientation is None:
        del ds.PatientOrientation
    else:
        ds.PatientOrientation = orientation
    ds.save_as(str(path))
    back = load(path)
    np.testing.assert_array_equal(back.data, np.flip(data, tuple(a + 1 for a in flipped)))
    note = back.metadata["display_orientation"]
    assert ("assumed" in note) if orientation is None else (("flipped" in note) == bool(flipped))


def test_writers_refuse_wrong_inputs(tmp_path):
    with pytest.raises(WriteError):
        write_dicom_image(ct_phantom(), tmp_path / "x.dcm")
    xr = Volume.from_array(np.zeros((4, 4)), modality="XR")
    with pytest.raises(WriteError, match="write_dicom_image"):
        write_dicom_series(xr, tmp_path / "s")


def _expected_slices(folder) -> np.ndarray:
    """What pydicom itself makes of each file (full read, modality LUT), in slice order."""
    from pydicom.pixels import apply_modality_lut

    datasets = [pydicom.dcmread(str(p)) for p in folder.iterdir()]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    out = []
    for ds in datasets:
        values = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            values = (float(values.min()) + float(values.max())) - values
        out.append(values)
    return np.stack(out)


def test_series_slices_stored_every_way_decode_as_pydicom_does(tmp_path):
    # 20 slices (enough for the thread pool): plain ones read straight from the file, and one each
    # implicit VR, RLE, deflated, 12 bits stored in 16 with junk high bits, MONOCHROME1, a
    # fractional rescale: every one must equal pydicom's own decoding of that file
    vol = ct_phantom(shape=(20, 10, 12))
    paths = write_dicom_series(vol, tmp_path / "s", rescale=(1.0, -1024.0), shuffle=True)
    edits = {
        1: lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian),
        2: lambda ds: ds.compress(pydicom.uid.RLELossless),
        3: lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", pydicom.uid.DeflatedExplicitVRLittleEndian),
        5: lambda ds: (setattr(ds, "BitsStored", 12), setattr(ds, "HighBit", 11),
                       setattr(ds, "PixelData", (ds.pixel_array.view(np.uint16) | 0xA000).tobytes())),
        7: lambda ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1"),
        9: lambda ds: (setattr(ds, "RescaleSlope", 0.5), setattr(ds, "RescaleIntercept", -1024.25)),
    }
    for k, edit in edits.items():
        ds = pydicom.dcmread(str(paths[k]))
        edit(ds)
        ds.save_as(str(paths[k]), enforce_file_format=True)
    back = load(tmp_path / "s")
    np.testing.assert_array_equal(back.data, _expected_slices(tmp_path / "s"))
    assert back.metadata["rescale_varies_per_slice"] is True


def test_series_parses_each_file_once(tmp_path, monkeypatch):
    import imaging.io.dicom as dicom

    paths = write_dicom_series(ct_phantom(shape=(20, 10, 12)), tmp_path / "s", shuffle=True)
    calls = []
    real = dicom.pydicom.dcmread
    monkeypatch.setattr(dicom.pydicom, "dcmread", lambda *a, **k: calls.append(k) or real(*a, **k))
    back = load(tmp_path / "s")
    assert len(calls) == len(paths) and all(k["stop_before_pixels"] for k in calls)
    np.testing.assert_array_equal(back.data, _expected_slices(tmp_path / "s"))
