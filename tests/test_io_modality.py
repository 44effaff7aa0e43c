"""The modality heuristic: CT recognised by its value signature, MR and X-ray never taken for CT."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from imaging.io import load
from imaging.io.metadata import guess_modality, looks_like_ct


def _rng() -> np.random.Generator:
    return np.random.default_rng(11)


def _hu_blob_in_air() -> np.ndarray:
    """The reported failure: HU values, air -1000 around a 250 HU blob."""
    data = np.full((24, 48, 48), -1000.0, dtype=np.float32)
    data[8:16, 16:32, 16:32] = 250.0
    return data


def _abdomen_inside_body(rng: np.random.Generator) -> np.ndarray:
    """A field of view cut inside the body: fat and soft tissue, no air at all."""
    data = rng.normal(-100.0, 15.0, (20, 64, 64))
    data[:, 10:54, 10:54] = rng.normal(55.0, 15.0, (20, 44, 44))
    data[:, 28:36, 28:36] = 400.0  # a little bone
    return data.astype(np.float32)


def _padded_ct(rng: np.random.Generator, fill: float) -> np.ndarray:
    """A CT whose reconstruction circle is padded with a constant below any HU."""
    data = rng.normal(40.0, 20.0, (10, 64, 64))
    data[:, :6, :] = rng.normal(-1000.0, 10.0, (10, 6, 64))
    yy, xx = np.mgrid[:64, :64]
    data[:, (yy - 32) ** 2 + (xx - 32) ** 2 > 31 ** 2] = fill
    return data.astype(np.float32)


@pytest.mark.parametrize("make", [
    lambda rng: _hu_blob_in_air(),
    lambda rng: np.where(_hu_blob_in_air() < 0, -1024.0, 250.0).astype(np.float32),  # air clipped at -1024
    _abdomen_inside_body,
    lambda rng: _padded_ct(rng, -3024.0),
    lambda rng: _padded_ct(rng, -32768.0),
])
def test_ct_value_signatures(make):
    data = make(_rng())
    assert looks_like_ct(data) and guess_modality(data) == "CT"


@pytest.mark.parametrize("make, expected", [
    # MR magnitude: non-negative arbitrary units, however bright
    (lambda rng: np.abs(rng.normal(300.0, 200.0, (20, 48, 48))), "MR"),
    (lambda rng: rng.uniform(0.0, 4095.0, (20, 48, 48)), "MR"),
    # MR after resampling: a little negative ringing near zero
    (lambda rng: rng.normal(0.0, 10.0, (20, 48, 48)) + np.where(rng.random((20, 48, 48)) > 0.5, 600.0, 0.0), "MR"),
    # z-scored MR
    (lambda rng: rng.normal(0.0, 1.0, (20, 48, 48)), "MR"),
    # subtraction image: symmetric about 0, densest where CT has its fat/soft-tissue trough
    (lambda rng: rng.normal(0.0, 120.0, (20, 48, 48)), "MR"),
    # phase image, signed, spread evenly
    (lambda rng: rng.uniform(-4096.0, 4095.0, (20, 48, 48)), "MR"),
    # radiographs: one slice of non-negative values, 8- and 12-bit
    (lambda rng: rng.uniform(0.0, 255.0, (1, 64, 64)), "XR"),
    (lambda rng: rng.uniform(0.0, 4095.0, (1, 64, 64)), "XR"),
])
def test_non_ct_is_not_taken_for_ct(make, expected):
    data = make(_rng()).astype(np.float32)
    assert not looks_like_ct(data)
    assert guess_modality(data) == expected


def test_hu_blob_nifti_is_read_as_ct_by_heuristic(tmp_path):
    """The reported failure end to end: an untagged NIfTI of HU values loads as CT, marked as a guess."""
    for dtype in (np.int16, np.float32):
        path = tmp_path / f"blob_{np.dtype(dtype).name}.nii.gz"
        nib.save(nib.Nifti1Image(_hu_blob_in_air().transpose(2, 1, 0).astype(dtype), np.diag([0.7, 0.7, 5.0, 1.0])),
                 str(path))
        volume = load(path)
        assert volume.modality == "CT" and volume.metadata["modality_source"] == "heuristic"
        assert volume.facts["modality"].assumed
