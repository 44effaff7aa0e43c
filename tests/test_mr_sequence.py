"""The MR sequence as a fact, and the bright-lesion search held against it.

The classical MR lesion search looks for lesions brighter than the brain, as on FLAIR and T2. A T1
(the brain phantom's first volume: its lesion is dark) answered "No lesion" as fact before.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from grounding.plausibility import sequence_quality
from grounding.segmenters.classical import ClassicalSegmenter
from grounding.tools import default_registry
from imaging.io import load
from imaging.io.metadata import dicom_metadata
from imaging.io.sequence import timing_sequence, words_sequence
from imaging.phantoms import brain_mr
from imaging.volume import Volume
from imaging.writers import write_dicom_series, write_nifti
from mmreason.backends import get_backend
from mmreason.loop import run_episode

QUESTION = "Is there a lesion in the brain?"


@pytest.fixture(scope="module")
def phantom():
    return brain_mr(seed=1, spacing=(3.0, 2.0, 2.0))


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def rules():
    return get_backend("rules")


def _unnamed(volume: Volume) -> Volume:
    """The volume without the phantom's sequence note (a file that does not name its sequence)."""
    return Volume(data=volume.data, spacing=volume.spacing, affine=volume.affine, modality="MR",
                  metadata={k: v for k, v in volume.metadata.items() if k != "sequence"}, name="scan")


@pytest.mark.parametrize("text, sequence", [
    ("sub-01_ses-1_FLAIR", "FLAIR"), ("msdata_patient07_flair", "FLAIR"), ("AX T2 FLAIR", "FLAIR"),
    ("sub-01_T2w", "T2"), ("t2_tse_tra", "T2"), ("sub-01_T1w", "T1"), ("3D MPRAGE", "T1"), ("AX T1 PRE", "T1"),
    ("SAG T1 non contrast", "T1"), ("BraTS20_Training_001_t1ce", "T1C"), ("sub-01_ce-gadolinium_T1w", "T1C"),
    ("AX T1 POST GAD", "T1C"), ("DWI ADC", "ADC"), ("ep2d diffusion", "DWI"), ("brain1_image", None),
])
def test_sequence_words(text, sequence):
    found = words_sequence(text)
    assert (found[0] if found else None) == sequence


def test_sequence_from_timing():
    assert timing_sequence("IR", 90, 9000, 2500)[0] == "FLAIR"
    assert timing_sequence(["SE"], 100, 4000, None)[0] == "T2"
    assert timing_sequence("SE", 12, 500, None)[0] == "T1"
    assert timing_sequence("IR", 3, 2300, 900) is None  # MPRAGE timing: an inversion, not a FLAIR
    assert timing_sequence("SE", None, 500, None) is None


def test_dicom_sequence_keeps_the_word_not_the_text():
    ds = Dataset()
    ds.Modality = "MR"
    ds.SeriesDescription = "Doe^Jane 12345 AX FLAIR"
    meta = dicom_metadata(ds)
    assert (meta["sequence"], meta["sequence_source"]) == ("FLAIR", "dicom")
    assert "Doe" not in str(meta) and "12345" not in str(meta)
    ds = Dataset()
    ds.Modality = "MR"
    ds.ScanningSequence, ds.EchoTime, ds.RepetitionTime, ds.InversionTime = "IR", 95.0, 9000.0, 2500.0
    assert dicom_metadata(ds)["sequence"] == "FLAIR"


def test_loaders_record_the_sequence_and_its_source(phantom, tmp_path):
    t1 = load(write_nifti(phantom.volumes["t1"], tmp_path / "scan.nii.gz"))  # our writer notes it in descrip
    fact = t1.facts["sequence"]
    assert (fact.value, fact.source, fact.assumed) == ("T1", "header", False)
    flair = load(write_nifti(_unnamed(phantom.volumes["flair"]), tmp_path / "sub-01_FLAIR.nii.gz"))
    assert (flair.facts["sequence"].value, flair.facts["sequence"].source) == ("FLAIR", "file name")
    unnamed = load(write_nifti(_unnamed(phantom.volumes["flair"]), tmp_path / "scan.nii.gz"))
    assert unnamed.facts["sequence"].value == "unknown" and unnamed.facts["sequence"].assumed
    write_dicom_series(phantom.volumes["t2"], tmp_path / "series")
    series = load(tmp_path / "series")
    assert (series.facts["sequence"].value, series.facts["sequence"].source) == ("T2", "dicom")
    assert "sequence" not in load(write_nifti(Volume.from_array(np.zeros((4, 8, 8)) - 1000.0, modality="CT"),
                                              tmp_path / "ct.nii.gz")).facts


def test_stated_t1_declines_the_bright_lesion_search(phantom, tmp_path, rules, registry):
    # the reproduction: the T1 holds a 12 mm lesion, dark; "No" was answered as fact
    t1 = load(write_nifti(phantom.volumes["t1"], tmp_path / "t1.nii.gz"))
    trace = run_episode(t1, QUESTION, rules, registry=registry)
    assert trace.answer.startswith("I cannot answer reliably"), trace.answer
    assert "lesions are searched as bright on FLAIR/T2; this is T1" in trace.answer
    assert trace.evidence[0].quality.level == "implausible"


def test_the_user_states_the_sequence_and_a_t1_named_flair_is_caught(phantom, tmp_path, rules, registry):
    """``--sequence`` (`load(sequence=...)`) wins over the files; a T1 given as FLAIR (a wrong option,
    a mislabelled series) was answered "No" as fact: its own contrast now makes the search doubtful."""
    path = write_nifti(_unnamed(phantom.volumes["t1"]), tmp_path / "scan.nii.gz")
    stated = load(path, sequence="t1")
    assert (stated.facts["sequence"].value, stated.facts["sequence"].source) == ("T1", "argument")
    assert run_episode(stated, QUESTION, rules, registry=registry).evidence[0].quality.level == "implausible"
    wrong = run_episode(load(path, sequence="FLAIR"), QUESTION, rules, registry=registry)
    assert wrong.answer.startswith("I cannot answer reliably"), wrong.answer
    assert "given as FLAIR (argument: sequence option) but the image's contrast is T1-like" in wrong.answer
    flair = load(write_nifti(_unnamed(phantom.volumes["flair"]), tmp_path / "f.nii.gz"), sequence="FLAIR")
    assert _only_grey_matter_blind(run_episode(flair, QUESTION, rules, registry=registry).evidence[0].quality)
    with pytest.raises(ValueError, match="unknown MR sequence 'T7'; use one of FLAIR"):
        load(path, sequence="T7")


def test_unnamed_t1_is_recognised_by_its_contrast(phantom, rules, registry):
    trace = run_episode(_unnamed(phantom.volumes["t1"]), QUESTION, rules, registry=registry)
    assert trace.answer.startswith("I cannot answer reliably"), trace.answer
    assert "contrast is T1-like" in trace.answer


def test_the_brains_own_contrast(phantom):
    seg = ClassicalSegmenter()
    weights = {name: seg.mr_contrast(_unnamed(vol)).weighting for name, vol in phantom.volumes.items()}
    assert weights == {"t1": "T1", "t2": "FLAIR/T2", "flair": "FLAIR/T2"}


def _only_grey_matter_blind(quality) -> bool:
    """The sequence checks pass: the one doubt left on the phantom's FLAIR is that its grey matter, a
    peak far above white matter, set the lesion levels, so lesions fainter than it would be missed
    (said whether or not lesions are found: on stress brains the found ones hid the missed faint ones)."""
    return quality.level == "doubtful" and all("fainter than grey matter are missed" in r for r in quality.reasons)


def test_unnamed_flair_still_finds_its_lesion(phantom, rules, registry):
    trace = run_episode(_unnamed(phantom.volumes["flair"]), QUESTION, rules, registry=registry)
    assert trace.answer.startswith("Yes"), trace.answer
    assert _only_grey_matter_blind(trace.evidence[0].quality)


def test_sequence_quality_levels():
    def volume(sequence: str | None) -> Volume:
        meta = {} if sequence is None else {"sequence": sequence, "sequence_source": "dicom",
                                           "sequence_detail": "SeriesDescription word"}
        return Volume.from_array(np.zeros((4, 8, 8)), modality="MR", metadata=meta)

    assert sequence_quality(volume("FLAIR"), found=False).level == "ok"
    assert sequence_quality(volume("T2"), found=True).level == "ok"
    assert sequence_quality(volume("T1"), found=True).level == "implausible"
    stated = sequence_quality(volume("T1C"), found=True)
    assert stated.level == "doubtful" and "only enhancing lesions are bright" in stated.reasons[0]
    assert sequence_quality(volume("DWI"), found=False).level == "doubtful"
    unknown = sequence_quality(volume(None), found=False)
    assert unknown.level == "doubtful" and "the sequence is not known; the search assumes FLAIR or T2" in unknown.reasons[0]
    assert sequence_quality(volume(None), found=True).level == "ok"  # a find keeps its quality
    assert sequence_quality(volume(None), found=False, weighting="FLAIR/T2").level == "ok"
    assert sequence_quality(volume(None), found=True, weighting="T1").level == "doubtful"


def test_study_line_names_the_sequence_and_the_planner_still_reads_it(phantom):
    from mmreason.backends.rules.transcript import _volumes
    from mmreason.prompts import study_text

    text = study_text({"0": phantom.volumes["t1"], "1": _unnamed(phantom.volumes["flair"])})
    assert "- volume 0: MR T1, 3-D" in text and "- volume 1: MR, 3-D" in text
    assert "sequence unknown ASSUMED" in text
    assert [(v.id, v.modality, v.sequence) for v in _volumes(text)] == [("0", "MR", "T1"), ("1", "MR", None)]


def test_a_study_searches_the_sequence_its_files_name_flair_first(phantom, rules, registry):
    # the question names no sequence: the files do, and the T1 (lesion dark) comes first
    trace = run_episode([phantom.volumes["t1"], phantom.volumes["flair"]], QUESTION, rules, registry=registry)
    assert trace.answer.startswith("Yes"), trace.answer
    assert trace.evidence[0].mask_volume == "1"
