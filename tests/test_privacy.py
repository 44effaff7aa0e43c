"""No identifier in any output: a DICOM series and an X-ray full of them, in a folder named after the
patient, through every command (inspect, inspect --json, segment, measure, infer trace/report, bench)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bad_inputs import (
    IDENTIFIERS,
    PATIENT_FOLDER,
    identifiers_in,
    write_identified_series,
    write_identified_xray,
)
from mmreason.cli import main


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phi")
    series = root / "study" / PATIENT_FOLDER
    write_identified_series(series)
    (root / "study" / "xray").mkdir()
    xray = write_identified_xray(root / "study" / "xray" / f"{PATIENT_FOLDER}.dcm")
    return {"series": series, "xray": xray, "study": root / "study"}


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


def test_the_inputs_really_hold_the_identifiers(study):
    import pydicom

    ds = pydicom.dcmread(str(study["xray"]))
    assert str(ds.PatientName) == IDENTIFIERS["PatientName"] and ds.InstitutionName == IDENTIFIERS["InstitutionName"]
    assert PATIENT_FOLDER in str(study["series"]) and identifiers_in(PATIENT_FOLDER)


def _run(capsys, argv: list[str], expected: int = 0) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == expected, (argv[0], captured.err)
    return captured.out + captured.err


def _assert_clean(outputs: dict[str, str]) -> None:
    leaks = {name: identifiers_in(text) for name, text in outputs.items() if identifiers_in(text)}
    assert not leaks, leaks


def test_inspect_segment_measure_print_no_identifier(study, tmp_path, capsys):
    series, xray = str(study["series"]), str(study["xray"])
    mask = tmp_path / "mask.nii.gz"
    outputs = {}
    for label, path in (("series", series), ("xray", xray)):
        outputs[f"inspect {label}"] = _run(capsys, ["inspect", path])
        outputs[f"inspect --json {label}"] = _run(capsys, ["inspect", path, "--json"])
        outputs[f"segment {label}"] = _run(capsys, ["segment", path, "--target", "lungs"])
    # a folder holding both: listed by token, never by UID or name; errors hide the input's name
    outputs["inspect several"] = _run(capsys, ["inspect", str(study["study"])])
    outputs["segment several"] = _run(capsys, ["segment", str(study["study"]), "--target", "lungs"], expected=2)
    outputs["segment missing"] = _run(capsys, ["segment", series + ".nii", "--target", "lungs"], expected=2)
    outputs["segment --json"] = _run(capsys, ["segment", series, "--target", "lungs", "--json", "--out", str(mask)])
    outputs["measure"] = _run(capsys, ["measure", series, "--mask", str(mask)])
    outputs["measure --json"] = _run(capsys, ["measure", series, "--mask", str(mask), "--json"])
    _assert_clean(outputs)
    assert "uid-" in outputs["inspect --json series"] and "chest" in outputs["inspect --json series"]
    # the same check finds the folder name when the user asks for paths: it is not blind
    assert PATIENT_FOLDER in _run(capsys, ["inspect", series, "--show-paths"])


@pytest.mark.parametrize("which", ["series", "xray"])
def test_infer_trace_and_report_hold_no_identifier(study, tmp_path, capsys, which):
    out = tmp_path / "infer"
    printed = _run(capsys, ["infer", "--image", str(study[which]), "--question", "How large are the lungs?",
                            "--json", "--out", str(out)])
    assert (out / "trace.json").exists() and (out / "report.html").exists()
    _assert_clean({"printed": printed, "trace and report": _files_text(out)})


def test_bench_outputs_hold_no_identifier(study, tmp_path, capsys):
    data = tmp_path / "vqa"
    (data / "VQA_RAD Image Folder").mkdir(parents=True)
    (data / "VQA_RAD Image Folder" / "case1.dcm").write_bytes(study["xray"].read_bytes())
    (data / "VQA_RAD Dataset Public.json").write_text(json.dumps([{
        "qid": 1, "phrase_type": "test_freeform", "image_name": "case1.dcm", "question": "What is the cardiothoracic ratio?",
        "answer": "0.5", "answer_type": "OPEN", "question_type": "SIZE", "image_organ": "CHEST"}]))
    printed = _run(capsys, ["bench", "--tasks", "vqa_rad", "--data", f"vqa_rad={data}", "--out",
                            str(tmp_path / "bench"), "--no-progress", "--verifiers", "rule"])
    rows = (tmp_path / "bench" / "samples_vqa_rad.jsonl").read_text().splitlines()
    row = json.loads(rows[0])
    assert len(rows) == 1 and row["loop_status"] == "answered" and row["tool_calls"] > 0
    _assert_clean({"printed": printed, "bench outputs": _files_text(tmp_path / "bench")})


def test_an_identifiers_digits_inside_a_longer_number_are_chance():
    # a timing of 0.0123456 s made the bench test fail by chance; the bare ID still counts
    assert identifiers_in("took 0.0123456 s; 20240229123") == []
    assert identifiers_in("patient 12345, born 19610407") == ["12345", "19610407"]
