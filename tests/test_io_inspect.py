"""`mmreason inspect`: text and JSON output on every format, series listing, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pydicom
import pytest

from imaging.writers import write_dicom_series, write_nifti
from mmreason.cli import main
from tests.helpers.io import ct_phantom, nibabel_file, pydicom_file


def _json(capsys, argv):
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_ct_small_text_and_json_without_identifiers(capsys):
    path = pydicom_file("CT_small.dcm")
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "1 x 128 x 128" in text and "CT (dicom)" in text and "SPL" in text and "PixelSpacing" in text
    out = _json(capsys, [str(path)])
    vol = out["volume"]
    assert vol["shape_zyx"] == [1, 128, 128] and vol["modality"] == "CT"
    assert vol["spacing_mm_zyx"][1] == pytest.approx(0.6615, abs=1e-4)
    ds = pydicom.dcmread(str(path))
    for output in (text, json.dumps(out)):
        assert str(ds.PatientName) not in output and "PatientName" not in output
        assert str(ds.PatientID) not in output and ds.StudyInstanceUID not in output


def test_inspect_every_format(tmp_path, capsys):
    vol = ct_phantom()
    write_nifti(vol, tmp_path / "ct.nii.gz")
    write_dicom_series(vol, tmp_path / "series")
    from PIL import Image
    import numpy as np

    Image.fromarray(np.zeros((5, 7), dtype=np.uint8)).save(tmp_path / "x.png")
    assert _json(capsys, [str(tmp_path / "ct.nii.gz")])["volume"]["shape_zyx"] == [6, 10, 12]
    out = _json(capsys, [str(tmp_path / "series")])
    assert out["series"][0]["n_slices"] == 6 and out["volume"]["modality"] == "CT"
    assert _json(capsys, [str(tmp_path / "x.png")])["volume"]["shape_zyx"] == [1, 5, 7]
    frame = _json(capsys, [str(nibabel_file("example4d.nii.gz")), "--frame", "1"])
    assert frame["volume"]["metadata"]["frame"] == 1


def test_inspect_lists_several_series_then_loads_the_chosen_one(tmp_path, capsys):
    write_dicom_series(ct_phantom(seed=1), tmp_path / "a", series_description="chest")
    write_dicom_series(ct_phantom(shape=(3, 10, 12), seed=2), tmp_path / "b", series_description="abdomen")
    assert main(["inspect", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "--series" in text and "'chest'" in text and "'abdomen'" in text
    listing = _json(capsys, [str(tmp_path)])
    beta = next(s for s in listing["series"] if s["description"] == "abdomen")
    chosen = _json(capsys, [str(tmp_path), "--series", beta["uid"]])
    assert chosen["volume"]["shape_zyx"] == [3, 10, 12]


def test_inspect_errors_are_one_line(capsys):
    assert main(["inspect", str(nibabel_file("example4d.nii.gz"))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--frame" in err and "Traceback" not in err
    assert main(["inspect", str(pydicom_file("rtstruct.dcm"))]) == 2
    assert "RTSTRUCT" in capsys.readouterr().err


def test_inspect_subprocess(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "mmreason", "inspect", str(pydicom_file("MR_small_RLE.dcm")), "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["volume"]["modality"] == "MR"
    bad = subprocess.run([sys.executable, "-m", "mmreason", "inspect", str(tmp_path / "missing.nii")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_inspect_a_photo_states_its_display_layout(capsys):
    from pathlib import Path

    png = Path(__file__).resolve().parents[1] / "examples" / "chest_xray.png"
    assert main(["inspect", str(png)]) == 0
    text = capsys.readouterr().out
    assert "2-D image in display order, columns towards the patient's left" in text and "SPL" not in text
