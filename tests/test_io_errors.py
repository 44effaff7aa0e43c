"""Paths and formats the loader refuses, and the error contract (MMReasonError, what to do)."""

from __future__ import annotations

import pytest

from imaging.errors import MMReasonError
from imaging.io import detect_format, load
from imaging.io import errors as io_errors
from imaging.io.errors import InputNotFoundError, NoDicomError, UnsupportedFormatError
from tests.helpers.io import pydicom_file


def test_every_loader_error_is_an_mmreason_error():
    classes = [c for c in vars(io_errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) > 10
    assert all(issubclass(c, MMReasonError) for c in classes)


def test_missing_path(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file"):
        load(tmp_path / "nope.nii.gz")


def test_unsupported_extension(tmp_path):
    (tmp_path / "scan.vtk").write_bytes(b"# vtk DataFile Version 3.0\n")
    with pytest.raises(UnsupportedFormatError, match=r"\.nii\.gz, .*\.nrrd.*\.mha.*\.mgz"):
        load(tmp_path / "scan.vtk")


def test_dicom_detected_by_content_without_extension(tmp_path):
    target = tmp_path / "IM0001"
    target.write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    assert detect_format(target) == "dicom"
    assert load(target).modality == "CT"


def test_empty_folder(tmp_path):
    with pytest.raises(NoDicomError, match="no DICOM files"):
        load(tmp_path)
