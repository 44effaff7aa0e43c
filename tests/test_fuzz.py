"""Property-based fuzzing (hypothesis): malformed NIfTI headers, DICOM datasets, images and model
outputs end in a `Volume`, a clean `MMReasonError`, or a bounded episode; never another exception.

Example counts are small and the examples derandomized, so the module runs in well under a minute
and the same way on every machine; to hunt, raise ``max_examples`` locally (200 per test found the
bugs this suite now pins: an inf vox_offset, empty pixel data, a one-value PixelSpacing, NaN
positions, a palette image without its table, non-finite rescale tags).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from benchmarks.bad_inputs import ReplayBackend
from imaging.errors import MMReasonError
from imaging.io import load
from imaging.volume import Volume
from imaging.writers import write_dicom_series
from mmreason.loop import LoopConfig, run_episode
from mmreason.parsing import parse_answer, parse_tool_calls

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_cleanly(path: Path) -> Volume | None:
    """``load(path)``: a finite volume, or None after a clean `MMReasonError`; no warning either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            volume = load(path)
        except MMReasonError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return None
    assert np.isfinite(volume.data).all() and all(np.isfinite(volume.spacing)) and min(volume.spacing) > 0
    assert np.isfinite(volume.affine).all()
    return volume


# ------------------------------------------------------------------------------------- NIfTI

def _nifti_bytes() -> bytes:
    img = nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), np.diag([2.0, 3.0, 4.0, 1.0]))
    return img.to_bytes()


NIFTI = _nifti_bytes()
#: header fields worth hitting: dim, datatype, bitpix, pixdim, vox_offset, scl, qform/sform codes, quatern, srow
NIFTI_OFFSETS = (40, 42, 44, 46, 70, 72, 76, 80, 84, 88, 108, 112, 116, 252, 254, 256, 260, 264, 268, 280, 284,
                 296, 312, 324)
odd_floats = st.sampled_from([0.0, -0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 3.5])


@FUZZ
@given(patches=st.lists(st.tuples(st.sampled_from(NIFTI_OFFSETS),
                                  st.one_of(odd_floats.map(lambda v: np.float32(v).tobytes()),
                                            st.integers(-32768, 32767).map(lambda v: np.int16(v).tobytes()),
                                            st.binary(min_size=1, max_size=4))), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(NIFTI))))
def test_malformed_nifti_headers(tmp_path, patches, cut):
    raw = bytearray(NIFTI)
    for offset, data in patches:
        raw[offset:offset + len(data)] = data
    path = tmp_path / "fuzz.nii"
    path.write_bytes(bytes(raw[:cut]))
    _load_cleanly(path)


# ------------------------------------------------------------------------------------- DICOM

@pytest.fixture(scope="module")
def dicom_slice(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("dcm")
    return write_dicom_series(Volume.from_array(np.zeros((1, 8, 8)) - 500.0, modality="CT"), folder)[0].read_bytes()


DICOM_VALUES = {
    "Rows": st.sampled_from([0, 1, 8, 9, 65535]),
    "Columns": st.sampled_from([0, 8, 7, 40000]),
    "PixelSpacing": st.sampled_from([["0", "0"], ["-1", "1"], ["nan", "1"], ["inf", "inf"], ["1"], ["0.5", "0.5"]]),
    "ImageOrientationPatient": st.sampled_from([[0] * 6, [1, 0, 0, 1, 0, 0], ["nan"] * 6, [1, 0, 0, 0, 1, 0],
                                                [1, 0]]),
    "ImagePositionPatient": st.sampled_from([["nan", 0, 0], [0, 0], [1e30, 0, 0], [0, 0, 0]]),
    "BitsAllocated": st.sampled_from([1, 8, 12, 16, 32, 64]),
    "BitsStored": st.sampled_from([0, 8, 16, 40]),
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "SamplesPerPixel": st.sampled_from([0, 1, 3, 4]),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", "nonsense"]),
    "RescaleSlope": st.sampled_from(["0", "nan", "-1", "1e30"]),
    "RescaleIntercept": st.sampled_from(["nan", "-1024", "inf"]),
    "NumberOfFrames": st.sampled_from([0, 1, 2, 1000]),
    "Modality": st.sampled_from(["", "SEG", "RTSTRUCT", "XX", "MR", "CR"]),
    "SliceThickness": st.sampled_from(["0", "-5", "nan", "abc"]),
    "KVP": st.sampled_from(["12x", "", "120"]),
    "WindowCenter": st.sampled_from(["40\\x", "nan", "40"]),
    "SeriesDescription": st.text(max_size=40),
}


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(sorted(DICOM_VALUES)), st.none(), min_size=1, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: DICOM_VALUES[k] for k in keys})),
    pixels=st.sampled_from([None, b"", b"\0" * 10, b"\0" * 128]))
def test_malformed_dicom_datasets(tmp_path, dicom_slice, changes, pixels):
    config = pydicom.config.settings
    modes = config.reading_validation_mode, config.writing_validation_mode
    config.reading_validation_mode = config.writing_validation_mode = pydicom.config.IGNORE
    try:  # write values as given, as a broken exporter would
        ds = pydicom.dcmread(io.BytesIO(dicom_slice))
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        if pixels is not None:
            ds.PixelData = pixels
        path = tmp_path / "fuzz.dcm"
        ds.save_as(str(path), enforce_file_format=True)
    except (ValueError, TypeError, OverflowError, struct_error()):
        return  # pydicom cannot write such a dataset: not an input a user can have
    finally:
        config.reading_validation_mode, config.writing_validation_mode = modes
    _load_cleanly(path)
    _load_cleanly(tmp_path)  # the same file as a one-file series folder


def struct_error() -> type[Exception]:
    import struct

    return struct.error


# ------------------------------------------------------------------------------------- images

def _png(mode: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color=7 if mode in ("L", "I;16", "1") else (7,) * len(mode)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(image=st.sampled_from([("L", (5, 7)), ("RGBA", (3, 3)), ("I;16", (4, 2)), ("1", (9, 1)), ("LA", (2, 2))]),
       cut=st.one_of(st.none(), st.integers(0, 200)),
       flips=st.lists(st.tuples(st.integers(0, 150), st.integers(0, 255)), max_size=3),
       suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]))
def test_malformed_images(tmp_path, image, cut, flips, suffix):
    raw = bytearray(_png(*image))
    for offset, value in flips:
        if offset < len(raw):
            raw[offset] = value
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(bytes(raw[:cut]))
    _load_cleanly(path)


# ------------------------------------------------------------------------------------- model outputs

PIECES = ['<tool_call>', '</tool_call>', '{', '}', '[', ']', '"', ':', ',', '"name"', '"arguments"', '"view"',
          '"crop"', '"segment"', '"measure"', '"view_id"', '"V1"', '"bbox_2d"', '"margin"', '"target"', '"lungs"',
          '"evidence_id"', '"E1"', 'NaN', 'Infinity', '-1e400', '1e308', '0', '12', 'null', 'true', '<think>',
          '</think>', '<answer>', '</answer>', '<function=view>', '<parameter=plane>', '</parameter>', '</function>',
          "'", '\\', '\x00', 'é', ' ', '\n']
model_text = st.lists(st.sampled_from(PIECES), max_size=60).map("".join) | st.text(max_size=80)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(text=model_text)
def test_parsers_never_raise(text):
    for call in parse_tool_calls(text):
        assert isinstance(call.name, str) and isinstance(call.arguments, dict)
        json.dumps(call.arguments, default=str)
    parse_answer(text, ["yes", "no"])


XRAY = Volume.from_array(np.random.default_rng(0).random((32, 40)).astype(np.float32) * 1000, modality="XR")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(turns=st.lists(model_text, min_size=1, max_size=3))
def test_episodes_stay_bounded_and_never_crash(turns):
    config = LoopConfig(max_turns=3, max_tool_calls=4, max_prompt_chars=20_000)
    trace = run_episode(XRAY, "Is there an abnormality?", ReplayBackend(turns), config=config)
    assert trace.status in ("answered", "abstained", "max_turns", "limit"), trace.meta.get("error")
    assert sum(t.role == "assistant" for t in trace.turns) <= 3
    assert all(len(t.tool_calls) <= 60 and sum(c.error is None for c in t.tool_calls) <= 4 for t in trace.turns)
    json.dumps(trace.to_dict(False))
