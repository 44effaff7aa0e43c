"""``mmreason segment`` and ``mmreason measure`` on files written to a temporary folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from tests.helpers.tools import small_xray

from imaging.io import load
from imaging.phantoms import NoduleSpec, chest_ct
from imaging.volume import Volume
from imaging.writers import write_nifti
from mmreason.cli import main


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    ph = chest_ct(seed=2, nodules=[NoduleSpec(diameter_mm=12.0, side="left")])
    path = tmp_path_factory.mktemp("cli") / "chest.nii.gz"
    write_nifti(ph.volume, path)
    return path, ph


def test_segment_writes_mask_that_measure_reads_back(ct_file, tmp_path, capsys):
    path, ph = ct_file
    out = tmp_path / "lung_left.nii.gz"
    assert main(["segment", str(path), "--target", "left lung", "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["target"] == "lung_left" and record["segmenter"] == "classical"
    assert record["laterality"] == "left" and record["out"] == str(out)
    assert record["measurements"]["volume_ml"]["unit"] == "mL"
    mask = load(out).data > 0.5
    assert mask.shape == ph.volume.shape and int(mask.sum()) == record["voxels"]
    truth = ph.labels["lung_left"]
    assert 2 * np.count_nonzero(mask & truth) / (mask.sum() + truth.sum()) > 0.95

    assert main(["measure", str(path), "--mask", str(out), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["voxels"] == record["voxels"]
    for name, m in record["measurements"].items():
        assert measured["measurements"][name]["value"] == pytest.approx(m["value"], rel=1e-5), name
    assert measured["spacing_mm_zyx"] == list(ph.volume.spacing)

    assert main(["measure", str(path), "--mask", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("input (CT), ") and "on the patient's left" in text and "mL" in text
    assert main(["measure", str(path), "--mask", str(out), "--show-paths"]) == 0
    assert capsys.readouterr().out.startswith("chest (CT), ")  # the file's stem, only when asked


def test_segment_summary_text(ct_file, capsys):
    path, _ = ct_file
    assert main(["segment", str(path), "--target", "nodule"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("Segmented 'nodule' (3D, classical segmenter)")
    assert text[1].startswith("Measured nodule: volume") and "on the patient's left" in text[1]
    assert not re.search(r"\bE\d+\b", "\n".join(text))  # evidence ids mean nothing outside an episode


def test_measure_rejects_mask_on_another_grid(ct_file, tmp_path, capsys):
    path, ph = ct_file
    other = chest_ct(seed=2, spacing=(3.0, 2.5, 2.5))
    bad = tmp_path / "other.nii.gz"
    write_nifti(other.volume, bad)
    assert main(["measure", str(path), "--mask", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: the mask is not on the image's grid" in err and "resample the mask" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_errors_are_one_line(ct_file, tmp_path, capsys):
    path, _ = ct_file
    assert main(["segment", str(path), "--target", "pancreas"]) == 2
    assert "unknown target 'pancreas'" in capsys.readouterr().err
    xr, _ = small_xray()
    xr_path = tmp_path / "xr.nii.gz"
    write_nifti(xr, xr_path)
    assert main(["segment", str(xr_path), "--target", "lungs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmreason segment: error:") and "two lung fields" in err
    assert main(["measure", str(path), "--mask", str(tmp_path / "missing.nii.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_measure_takes_the_loader_options_its_errors_name(tmp_path, capsys):
    from tests.helpers.io import nibabel_file

    four_d = nibabel_file("example4d.nii.gz")
    frame = load(four_d, frame=1)
    mask_path = tmp_path / "bright.nii.gz"
    bright = (frame.data > np.percentile(frame.data, 90)).astype(np.float32)
    write_nifti(Volume(data=bright, spacing=frame.spacing, affine=frame.affine, modality="OT", name="bright"), mask_path)
    assert main(["measure", str(four_d), "--mask", str(mask_path)]) == 2
    err = capsys.readouterr().err
    assert "--frame" in err and len(err.strip().splitlines()) == 1
    assert main(["measure", str(four_d), "--frame", "1", "--mask", str(mask_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["voxels"] == int((load(mask_path).data > 0.5).sum()) > 0


def test_messages_name_only_segmenters_the_cli_accepts():
    """An error told users to pass "--segmenter totalsegmentator", which the CLI refuses (the choice
    is "totalseg"): every "--segmenter NAME" written in the sources must be a choice."""
    import re
    from pathlib import Path

    from grounding.segmenters import SEGMENTERS

    root = Path(__file__).resolve().parents[1]
    named = {(path.name, m.group(1))
             for package in ("grounding", "mmreason", "imaging")
             for path in (root / package).rglob("*.py")
             for m in re.finditer(r'--segmenter "?\s*f?"?\s*([a-z_]+)', path.read_text())}
    assert named, "no --segmenter hint found: the pattern is stale"
    assert {(f, n) for f, n in named if n not in SEGMENTERS} == set()
