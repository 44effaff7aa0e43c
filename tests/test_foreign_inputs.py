"""Inputs the project never made, asked what users ask: no confident wrong answer.

Each test pins one class of answer that was stated as fact with evidence of quality ``ok``
before: a modality guessed from the values (a photograph or a CT stored without its rescale
intercept answered as "X-ray" or "MRI"), a constant image, a cardiothoracic ratio on a lateral
film, an organ "volume" in mm from one CT slice, "no nodule" on a scan that holds only part of
the lungs, and a step verifier that labelled a step resting on doubtful evidence ``correct``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from grounding.evidence import Evidence, Measurement
from grounding.plausibility import image_quality, radiograph_view, radiograph_view_quality
from grounding.quality import Quality
from grounding.tools import default_registry
from imaging.io import load
from imaging.volume import Volume
from mmreason.backends.rules import RulesBackend
from mmreason.loop import run_episode


def _nifti(data_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path) -> Path:
    """A NIfTI as other tools write it (RAS affine, no modality note): x runs to the patient's left."""
    sz, sy, sx = spacing_zyx
    affine = np.diag([-sx, -sy, sz, 1.0])
    img = nib.Nifti1Image(np.asarray(data_zyx, np.float32).transpose(2, 1, 0), affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, str(path))
    return path


@functools.cache
def _chest(spacing: tuple[float, float, float] = (6.0, 4.0, 4.0)) -> Volume:
    from imaging.phantoms import chest_ct

    return chest_ct(seed=2, spacing=spacing).volume


def _ask(volume: Volume, question: str):
    return run_episode(volume, question, RulesBackend(), registry=default_registry())


# -- the image itself ---------------------------------------------------------------------------

def test_a_photograph_is_not_stated_to_be_an_x_ray(tmp_path):
    """A grey photograph (any PNG) is guessed XR: the modality answer says it is a guess."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :128]
    photo = (120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 8, (96, 128))).clip(0, 255)
    path = tmp_path / "photo.png"
    Image.fromarray(photo.astype(np.uint8)).save(path)
    volume = load(path)
    assert volume.modality == "XR" and volume.facts["modality"].assumed
    trace = _ask(volume, "What is the modality of this image?")
    view = next(e for e in trace.evidence if e.tool == "view")
    assert view.quality.level == "doubtful" and "guessed" in view.quality.reasons[0]
    assert "uncertain" in trace.answer and "guessed" in trace.answer, trace.answer


def test_ct_without_its_rescale_intercept_is_not_answered_no_as_fact(tmp_path):
    """HU + 1024 (a converter that dropped the intercept): guessed MR, so "Is this a CT?" is hedged."""
    volume = load(_nifti(_chest().data + 1024.0, (6.0, 4.0, 4.0), tmp_path / "raw.nii.gz"))
    assert volume.modality == "MR" and volume.facts["modality"].assumed
    trace = _ask(volume, "Is this a CT?")
    assert trace.answer.startswith("No") and "uncertain" in trace.answer and "guessed" in trace.answer


def test_a_stated_ct_without_its_rescale_intercept_is_read_in_hounsfield_units(tmp_path):
    """``--modality CT`` on HU + 1024: no air below -400 HU, so "no lungs found" and no answer.
    The usual intercept is assumed, and every HU-based result says so."""
    path = _nifti(_chest().data + 1024.0, (6.0, 4.0, 4.0), tmp_path / "raw.nii.gz")
    volume = load(path, modality="CT")
    np.testing.assert_allclose(volume.data, _chest().data, atol=1e-3)
    assert volume.metadata["hu_offset_assumed"] == -1024.0
    trace = _ask(volume, "What is the volume of the lungs?")
    search = next(e for e in trace.evidence if e.tool == "segment")
    assert search.quality.level == "doubtful" and "rescale intercept" in " ".join(search.quality.reasons)
    assert "mL" in trace.answer and "uncertain" in trace.answer, trace.answer


def test_a_guessed_modality_on_shifted_ct_values_tells_the_user_the_option(tmp_path):
    volume = load(_nifti(_chest().data + 1024.0, (6.0, 4.0, 4.0), tmp_path / "raw.nii.gz"))
    assert volume.modality == "MR" and "hu_offset_assumed" not in volume.metadata
    assert "give --modality CT" in " ".join(image_quality(volume).reasons)
    trace = _ask(volume, "Is there a nodule in the lungs?")
    assert "give --modality CT" in trace.answer, trace.answer


def test_a_dicom_ct_series_without_its_rescale_intercept_is_read_in_hounsfield_units(tmp_path):
    from imaging.writers import write_dicom_series

    files = write_dicom_series(_chest(), tmp_path / "series")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PixelData = (ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
                        + 1024).astype(np.int16).tobytes()
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(f)
    volume = load(tmp_path / "series")
    assert volume.modality == "CT" and volume.metadata["hu_offset_assumed"] == -1024.0
    assert float(np.median(volume.data[volume.data < -500])) < -900


def test_stated_values_that_already_read_as_hu_or_mr_are_not_shifted(tmp_path):
    ct = load(_nifti(_chest().data, (6.0, 4.0, 4.0), tmp_path / "ct.nii.gz"), modality="CT")
    mr = load(_nifti(_chest().data + 1024.0, (6.0, 4.0, 4.0), tmp_path / "mr.nii.gz"), modality="MR")
    assert "hu_offset_assumed" not in ct.metadata and "hu_offset_assumed" not in mr.metadata
    np.testing.assert_allclose(mr.data, _chest().data + 1024.0, atol=1e-3)


def test_a_constant_image_holds_nothing_to_answer(tmp_path):
    volume = load(_nifti(np.full((6, 16, 16), -1000.0), (3.0, 1.0, 1.0), tmp_path / "air.nii.gz"))
    assert image_quality(volume).level == "implausible"
    trace = _ask(volume, "Is this a CT?")
    assert "cannot answer reliably" in trace.answer.lower() and "constant" in trace.answer, trace.answer


def test_image_quality_trusts_stated_modalities_and_the_ct_signature(tmp_path):
    from pydicom.data import get_testdata_file

    assert image_quality(load(get_testdata_file("CT_small.dcm"))).trusted  # Modality tag
    guessed_ct = load(_nifti(_chest().data, (6.0, 4.0, 4.0), tmp_path / "ct.nii.gz"))
    assert guessed_ct.modality == "CT" and guessed_ct.facts["modality"].assumed
    q = image_quality(guessed_ct)
    assert q.trusted and "modality CT guessed from the voxel values" in q.checks
    given = load(_nifti(_chest().data + 1024.0, (6.0, 4.0, 4.0), tmp_path / "mr.nii.gz"), modality="MR")
    assert image_quality(given).trusted


@pytest.mark.parametrize("unit, mm_per_unit", [("meter", 1000.0), ("micron", 0.001), ("mm", 1.0), ("unknown", 1.0)])
def test_nifti_spatial_units_are_converted_to_mm(tmp_path, unit, mm_per_unit):
    """A header in metres (xyzt_units) was read as mm: 0.004 mm voxels, every size 1000 times off."""
    chest = _chest()
    affine = np.diag([-4.0 / mm_per_unit, -4.0 / mm_per_unit, 6.0 / mm_per_unit, 1.0])
    affine[:3, 3] = [10.0 / mm_per_unit, 20.0 / mm_per_unit, -30.0 / mm_per_unit]
    img = nib.Nifti1Image(chest.data.transpose(2, 1, 0).astype(np.int16), affine)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units(unit)
    nib.save(img, str(tmp_path / "units.nii.gz"))
    volume = load(tmp_path / "units.nii.gz")
    np.testing.assert_allclose(volume.spacing, (6.0, 4.0, 4.0), rtol=1e-5)
    np.testing.assert_allclose(volume.voxel_to_world([[0.0, 0.0, 0.0]])[0], [-10.0, -20.0, -30.0], atol=1e-3)
    assert ("converted to mm" in volume.facts["spacing"].detail) == (mm_per_unit != 1.0)


def test_a_ct_given_as_mr_gets_no_confident_brain_answer(tmp_path):
    """--modality MR on a chest CT: the MR lesion search ran on a "brain" and answered "No" as fact."""
    volume = load(_nifti(_chest().data, (6.0, 4.0, 4.0), tmp_path / "chest.nii.gz"), modality="MR")
    trace = _ask(volume, "Is there a lesion in the brain?")
    search = next(e for e in trace.evidence if e.tool == "segment")
    assert search.quality.level == "doubtful" and "signature of CT" in search.quality.reasons[0]
    assert not trace.answer.startswith("No"), trace.answer


# -- radiograph view ----------------------------------------------------------------------------

@functools.cache
def _frontal_phantom() -> Volume:
    from imaging.phantoms import chest_xray

    return chest_xray(seed=5, pixel_spacing=1.0).volume


def _film(tmp_path: Path, **tags: object) -> Volume:
    """The frontal phantom as a DX file whose view tags say ``tags`` (None: the tag is left out)."""
    from imaging.writers import write_dicom_image

    path = write_dicom_image(_frontal_phantom(), tmp_path / "film.dcm")
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return load(path)


@pytest.mark.parametrize("tags, view", [
    ({"ViewPosition": "PA"}, "frontal"), ({"ViewPosition": "LL"}, "lateral"), ({"ViewPosition": "RLO"}, "lateral"),
    ({"ViewPosition": "LLD"}, "decubitus"), ({"ViewPosition": None, "PatientOrientation": ["A", "F"]}, "lateral"),
    ({"ViewPosition": None, "PatientOrientation": ["L", "F"]}, "frontal"), ({"ViewPosition": "AP"}, "frontal"),
])
def test_radiograph_view_from_the_header(tmp_path, tags, view):
    film = _film(tmp_path, **tags)
    assert radiograph_view(film) == view
    expected = {"frontal": "ok", "lateral": "implausible", "decubitus": "doubtful"}[view]
    if tags.get("ViewPosition") == "AP":  # the heart magnified; the lung fields are still frontal
        expected = "doubtful"
        assert radiograph_view_quality(film, "lungs").trusted
    assert radiograph_view_quality(film, "heart").level == expected
    assert radiograph_view_quality(film, "nodule").trusted  # only frontal-film targets


def test_no_cardiothoracic_ratio_from_a_lateral_film(tmp_path):
    """The same pixels answered 0.51 as fact when the header said LL; now the ratio is declined."""
    frontal = _ask(_film(tmp_path, ViewPosition="PA"), "What is the cardiothoracic ratio?")
    assert re.match(r"0\.\d\d \[", frontal.answer), frontal.answer
    ap = _ask(_film(tmp_path, ViewPosition="AP"), "What is the cardiothoracic ratio?")
    assert "uncertain" in ap.answer and "AP film" in ap.answer, ap.answer
    lateral = _ask(_film(tmp_path, ViewPosition="LL"), "What is the cardiothoracic ratio?")
    assert "cannot answer reliably" in lateral.answer.lower() and "not a frontal film" in lateral.answer
    assert all(e.quality.level == "implausible" for e in lateral.evidence if e.tool in ("segment", "measure"))


def test_the_plane_of_a_film_is_read_from_its_header(tmp_path):
    """Every radiograph was answered "a frontal (coronal-plane) projection", a lateral film too."""
    lateral = _ask(_film(tmp_path, ViewPosition="LL"), "In which plane is this image taken?")
    assert lateral.answer.startswith("lateral plane"), lateral.answer
    assert "lateral or oblique projection (ViewPosition LL)" in lateral.turns[-1].text
    frontal = _ask(_film(tmp_path, ViewPosition="PA"), "In which plane is this image taken?")
    assert frontal.answer.startswith("frontal plane") and "(ViewPosition PA)" in frontal.turns[-1].text


# -- one CT slice, a scan that cuts the lungs -----------------------------------------------------

def test_organ_volume_is_not_answered_from_one_ct_slice(tmp_path):
    """A 1-slice NIfTI of a chest CT answered "What is the volume of the lungs?" with 240 mm."""
    chest = _chest(spacing=(4.0, 2.0, 2.0))
    volume = load(_nifti(chest.data[chest.shape[0] // 2][None], (4.0, 2.0, 2.0), tmp_path / "one.nii.gz"))
    assert volume.is_2d and volume.modality == "CT"
    trace = _ask(volume, "What is the volume of the lungs?")
    assert "cannot answer" in trace.answer and "2-D" in trace.answer
    assert not re.search(r"\d\s*(mm|mL)\b", trace.answer), trace.answer


def test_no_nodule_on_a_scan_of_the_lung_bases_only_is_not_stated_as_fact():
    """The lower third of a chest CT without nodules (3 mm slices): the lungs reach the top slice,
    so the empty search covered only the part in the scan and "No" is declined with that reason."""
    from grounding.measurements import mask_bbox
    from grounding.plausibility import touches_field_edge
    from grounding.segmenters.classical import ClassicalSegmenter
    from imaging.phantoms import chest_ct

    chest = chest_ct(seed=2, spacing=(3.0, 4.0, 4.0), nodules=[]).volume
    bases = Volume(chest.data[: chest.shape[0] // 3].copy(), chest.spacing, chest.affine, "CT")
    trace = _ask(bases, "Is there a lung nodule?")
    search = next(e for e in trace.evidence if e.tool == "segment")
    assert search.data["voxels"] == 0 and "last slice" in search.data["searched"]["region_cut"]
    assert search.quality.level == "doubtful" and "scan range cuts" in search.quality.reasons[0]
    assert not trace.answer.startswith("No"), trace.answer
    lungs = ClassicalSegmenter().segment(chest, "lungs")  # the whole chest: the lungs end inside the scan
    assert not touches_field_edge(lungs, mask_bbox(lungs), chest)


def test_a_nodule_size_on_a_spacing_far_too_small_for_the_lungs_is_doubtful():
    """The header's spacing is half the true one (a resampled volume that kept the old header):
    the nodule measured half its size was stated as fact; the lungs it lies in are then far
    under the adult range, which makes the size doubtful. The true spacing keeps it ok."""
    from imaging.phantoms import NoduleSpec, chest_ct

    chest = chest_ct(seed=1, spacing=(3.0, 4.0, 4.0), nodules=[NoduleSpec(diameter_mm=16.0, side="right")]).volume
    halved = Volume(chest.data, tuple(s / 2 for s in chest.spacing), np.diag([2.0, 2.0, 1.5, 1.0]), "CT")
    for volume, expected in ((chest, "ok"), (halved, "doubtful")):
        found = default_registry().run(_context(volume), "segment", {"target": "nodule"})
        assert found.data["voxels"] > 0
        assert found.quality.level == expected, found.quality.reasons
    assert "the spacing (or the lung mask) may be wrong" in found.quality.reasons[0]


def _context(volume: Volume):
    from grounding.tool import ToolContext

    return ToolContext(volumes={"0": volume})


# -- step verifiers -----------------------------------------------------------------------------

def _trace_stating(answer: str, evidence: list[Evidence], inputs: list[dict]):
    from mmreason.trace import Trace, Turn

    trace = Trace(question="q", inputs=inputs)
    trace.turns = [Turn(role="user", text="q"), Turn(role="assistant", text=f"{answer}\n<answer>{answer}</answer>")]
    trace.evidence = evidence
    trace.answer = answer
    trace.cited_evidence = [e.id for e in evidence]
    trace.status = "answered"
    return trace


def test_a_step_on_doubtful_evidence_is_not_labelled_correct():
    """A lung volume below the adult range (doubtful, no assumed fact) stated as fact: unverifiable."""
    from mmreason.verifiers import verify

    ev = Evidence(id="E1", tool="segment", arguments={"target": "lungs"}, text="Segmented 'lungs'.",
                  data={"target": "lungs", "voxels": 100, "mode": "3d", "prompt": None},
                  measurements={"volume_ml": Measurement(1767.0, "mL")},
                  quality=Quality("doubtful", ["lungs volume 1767 mL is below the adult range 2200-9000 mL"]))
    trace = _trace_stating("The lungs measure 1767.0 mL [E1].", [ev], [{"modality": "CT", "facts": {}}])
    verdicts = [v for v in verify(None, trace) if v.verifier == "rule"]
    assert any(v.label == "unverifiable" and "below the adult range" in v.reason for v in verdicts)
    assert not any(v.label == "correct" and "E1" in v.evidence_ids for v in verdicts)


def test_a_modality_stated_from_a_guess_is_not_labelled_correct():
    """A foreign trace whose view carries no quality: the study's facts say the modality was guessed."""
    from mmreason.verifiers import verify

    view = Evidence(id="E1", tool="view", arguments={}, text="V1: 2-D XR image, auto window", data={"view_id": "V1"})
    facts = {"modality": {"value": "XR", "source": "heuristic", "detail": "", "assumed": True}}
    trace = _trace_stating("This is an X-ray (radiograph) [E1].", [view], [{"modality": "XR", "facts": facts}])
    verdicts = [v for v in verify(None, trace) if v.verifier == "rule"]
    assert any(v.label == "unverifiable" and "guessed" in v.reason for v in verdicts), verdicts
