"""Every dataset loader reads a fixture written in its dataset's native schema."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.bench import materialize, vqa_rad_many
from benchmarks.core import tasks
from benchmarks.datasets import common, medframeqa, medxpertqa, mmmu, omnimedvqa, pathvqa, pmc_vqa, slake, vqa_rad
from benchmarks.datasets.common import DatasetError


def _images_readable(cases) -> None:
    for case in cases:
        for path in case.images:
            with Image.open(path) as im:
                assert im.size[0] > 0


def test_vqa_rad_test_split_and_fields(tmp_path):
    root = materialize("vqa_rad", tmp_path)
    cases = vqa_rad.load(root, "test")
    assert [c.id for c in cases] == ["3", "4"]  # phrase_type test_* only
    open_case, closed_case = cases
    assert (open_case.answer, open_case.answer_type) == ("Left lung", "open")
    assert (closed_case.answer, closed_case.answer_type) == ("yes", "closed")
    assert open_case.subgroups == {"answer_type": "open", "question_type": "POS", "organ": "CHEST", "layout": "osf"}
    assert open_case.native["image_case_url"].startswith("https://medpix")
    assert open_case.images[0].endswith("VQA_RAD Image Folder/synpic29265.jpg")
    assert len(vqa_rad.load(root, "train")) == 2 and len(vqa_rad.load(root, "all")) == 4
    _images_readable(cases)


def test_slake_english_subset_by_default(tmp_path):
    root = materialize("slake", tmp_path)
    cases = slake.load(root, "test")
    assert [c.id for c in cases] == ["0", "3", "11"]  # qid 7 is Chinese
    assert [c.answer_type for c in cases] == ["open", "closed", "closed"]
    assert cases[0].subgroups["modality"] == "MRI" and cases[2].subgroups["location"] == "Lung"
    assert len(slake.load(root, "test", language="zh")) == 1
    assert len(slake.load(root, "test", language="all")) == 4
    assert cases[0].native["triple"] == ["vhead", "_", "_"]
    _images_readable(cases)
    with pytest.raises(DatasetError, match="splits"):
        slake.annotation_files(root, "dev")


def test_pathvqa_parquet_closed_open(tmp_path):
    root = materialize("pathvqa", tmp_path)
    cases = pathvqa.load(root, "test")
    assert [c.id for c in cases] == ["test_0", "test_1", "test_2"]
    assert [c.answer_type for c in cases] == ["closed", "open", "closed"]
    assert "image" not in cases[0].native and cases[1].native["answer"] == "granulomas"
    _images_readable(cases)
    # a second load reuses the stored images instead of writing new ones
    assert pathvqa.load(root, "test")[0].images == cases[0].images


def test_pathvqa_from_saved_hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    from tests.helpers.bench import png_bytes

    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": png_bytes(1), "path": None}, {"bytes": png_bytes(2), "path": None}],
         "question": ["is this normal?", "what is shown?"], "answer": ["no", "fibrosis"]},
        features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                    "answer": datasets.Value("string")}))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "pv"))
    cases = pathvqa.load(tmp_path / "pv", "test")
    assert [(c.answer, c.answer_type) for c in cases] == [("no", "closed"), ("fibrosis", "open")]
    _images_readable(cases)
    assert pathvqa.annotation_files(tmp_path / "pv", "test")  # arrow shards are checksummed


def test_pmc_vqa_choices_without_prefix(tmp_path):
    root = materialize("pmc_vqa", tmp_path)
    cases = pmc_vqa.load(root, "test")
    assert len(cases) == 2
    assert cases[0].options == ["Diffuse uptake pattern", "Focal uptake pattern", "No uptake pattern",
                                "Cannot determine from the information given"]
    assert (cases[0].answer, cases[1].answer, cases[1].options[2]) == ("B", "C", "CT")
    assert cases[1].question == "What imaging modality was used, CT or MRI?"
    _images_readable(cases)


def test_omnimedvqa_gt_answer_to_letter(tmp_path):
    root = materialize("omnimedvqa", tmp_path)
    cases = omnimedvqa.load(root, "test")
    assert [c.id for c in cases] == ["Chest CT Scan_0001", "Chest CT Scan_0002"]
    assert (cases[0].answer, cases[0].options[1]) == ("B", "Adenocarcinoma")
    assert cases[1].options == ["MR", "CT"] and cases[1].answer == "B"
    # the row that spells the field "modality" is read too
    assert cases[1].subgroups["modality"] == "CT(Computed Tomography)"
    assert cases[0].subgroups["question_type"] == "Disease Diagnosis"
    _images_readable(cases)


def test_medxpertqa_multi_image(tmp_path):
    root = materialize("medxpertqa_mm", tmp_path)
    cases = medxpertqa.load(root, "test")
    assert [len(c.images) for c in cases] == [1, 2]
    assert cases[0].options[1] == "Pleural effusion" and cases[0].answer == "B"
    assert cases[1].subgroups == {"answer_type": "choice", "medical_task": "Treatment", "body_system": "Skeletal",
                                  "question_type": "Understanding"}
    _images_readable(cases)
    # options are already in the question: the task sends none to the loop and says so
    spec = tasks.get_task("medxpertqa_mm")
    assert spec.options_in_question and "letter" in spec.format_prompt(cases[0])


def test_mmmu_subjects_choice_and_open(tmp_path):
    root = materialize("mmmu_med", tmp_path)
    cases = mmmu.load(root, "validation")
    by_id = {c.id: c for c in cases}
    mc = by_id["validation_Clinical_Medicine_1"]
    assert (mc.answer_type, mc.answer, mc.options, len(mc.images)) == ("choice", "D", ["Pneumonia", "Edema", "Normal",
                                                                                       "Effusion"], 2)
    assert mc.subgroups["subject"] == "Clinical_Medicine" and mc.subgroups["img_type"] == "CT Scans"
    op = by_id["validation_Pharmacy_3"]
    assert (op.answer_type, op.answer, op.options, len(op.images)) == ("open", "180", None, 1)
    _images_readable(cases)
    with pytest.raises(DatasetError, match="not public"):
        mmmu.load(root, "test")


def test_medframeqa_letters_and_frame_counts(tmp_path):
    root = materialize("medframeqa", tmp_path)
    cases = medframeqa.load(root, "test")
    assert [len(c.images) for c in cases] == [2, 3]
    assert cases[0].answer == "B"
    assert cases[1].answer == "C"  # the answer given as option text "FLAIR" maps to its letter
    assert cases[1].subgroups["n_images"] == "3" and cases[1].subgroups["organ"] == "Brain"
    assert "image" not in cases[0].native and cases[0].native["video_id"] == "abc123"
    _images_readable(cases)


def test_medframeqa_rejects_unmatched_answer(tmp_path):
    with pytest.raises(DatasetError, match="neither an option letter"):
        medframeqa._answer_letter("Z-ray", ["a", "b"], "q1")


def test_missing_files_name_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="--data vqa_rad=DIR"):
        vqa_rad.load(tmp_path, "test")
    with pytest.raises(tasks.TaskError, match="MMREASON_DATA") as missing:
        tasks.load_task("vqa_rad", {"vqa_rad": str(tmp_path / "nowhere")})
    # the message names layouts the loader reads (the hub parquet is one: test_vqa_rad_hub_parquet_layout)
    assert "VQA_RAD Dataset Public.json" in str(missing.value) and "data/test-*.parquet" in str(missing.value)
    with pytest.raises(tasks.TaskError, match="unknown task 'vqa-rad'"):
        tasks.get_task("vqa-rad")


def test_registry_checksum_recorded_and_mismatch_warns(tmp_path, monkeypatch):
    root = materialize("vqa_rad", tmp_path)
    loaded = tasks.load_task("vqa_rad", {"vqa_rad": str(root)})
    assert loaded.sha256 == common.sha256_files([root / "VQA_RAD Dataset Public.json"]) and loaded.checksum_ok is None
    spec = tasks.get_task("vqa_rad")
    pinned = tasks.TaskSpec(**{**spec.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(tasks.REGISTRY, "vqa_rad", pinned)
    with pytest.warns(tasks.ChecksumWarning, match="CHECKSUM MISMATCH"):
        loaded = tasks.load_task("vqa_rad", {"vqa_rad": str(root)})
    assert loaded.checksum_ok is False and len(loaded.cases) == 2
    monkeypatch.setitem(tasks.REGISTRY, "vqa_rad", tasks.TaskSpec(**{**spec.__dict__, "sha256": loaded.sha256}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tasks.load_task("vqa_rad", {"vqa_rad": str(root)}).checksum_ok is True


def test_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREASON_DATA", str(tmp_path))
    assert tasks.data_dir("slake") == tmp_path / "slake"
    assert tasks.data_dir("slake", {"slake": "/x/y"}) == Path("/x/y")
    monkeypatch.delenv("MMREASON_DATA")
    assert tasks.data_dir("slake") == Path.home() / ".cache" / "mmreason" / "data" / "slake"


def test_every_registered_task_has_a_loader_and_prompts():
    for name, spec in tasks.REGISTRY.items():
        module = spec.module
        assert callable(module.load) and callable(module.annotation_files), name
        assert set(spec.answer_types) <= set(spec.prompts), name
    assert json.dumps({n: s.prompt_hash() for n, s in tasks.REGISTRY.items()})


def test_repeated_case_ids_are_refused(tmp_path):
    root = vqa_rad_many(tmp_path, 4)
    annotations = root / "VQA_RAD Dataset Public.json"
    rows = json.loads(annotations.read_text())
    rows[3]["qid"] = rows[1]["qid"]
    annotations.write_text(json.dumps(rows))
    with pytest.raises(tasks.TaskError, match=r"1 repeated case id\(s\) \(101\)"):
        tasks.load_task("vqa_rad", {"vqa_rad": str(root)})


# ---------------------------------------------------------------- issue 17: the published layouts


def test_medxpertqa_official_eval_input_layout(tmp_path):
    root = materialize("medxpertqa_eval", tmp_path)
    cases = medxpertqa.load(root, "test")
    assert [c.id for c in cases] == ["MM-0", "MM-1"]
    assert cases[0].answer == "E" and cases[0].options[4] == "A non-enhanced tumor"
    assert len(cases[1].images) == 2 and cases[1].images[0].endswith("eval/images/MM-1-a.jpeg")
    _images_readable(cases)
    # the two layouts give the same kind of case
    hf = medxpertqa.load(materialize("medxpertqa_mm", tmp_path), "test")[1]
    assert (hf.answer, hf.options[:2], len(hf.images)) == ("A", ["Growth", "Regression"], 2)


@pytest.mark.parametrize("field, value, message", [
    ("options", "A) x B) y", "options must be"),
    ("label", ["A", "B"], "label must be"),
    ("images", [{"path": "x.png"}], "images must be"),
    ("question", None, "missing field"),
])
def test_medxpertqa_bad_rows_are_dataset_errors_not_type_errors(tmp_path, field, value, message):
    root = materialize("medxpertqa_eval", tmp_path)
    path = next(root.rglob("medxpertqa_mm_input.jsonl"))
    row = json.loads(path.read_text().splitlines()[0])
    if value is None:
        del row[field]
    else:
        row[field] = value
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match=message):
        medxpertqa.load(root, "test")


def test_enum_fields_tolerate_case_and_whitespace_and_integer_answers(tmp_path):
    root = materialize("vqa_rad", tmp_path)
    path = root / "VQA_RAD Dataset Public.json"
    rows = json.loads(path.read_text())
    rows[3]["answer_type"], rows[3]["phrase_type"] = "CLOSED ", " test_para"
    rows[2]["answer"], rows[2]["qid"] = 2, "q-3"
    path.write_text(json.dumps(rows))
    cases = {c.id: c for c in vqa_rad.load(root, "test")}
    assert cases["4"].answer_type == "closed"
    assert (cases["q-3"].answer, cases["q-3"].answer_type) == ("2", "open")
    slake_root = materialize("slake", tmp_path)
    rows = json.loads((slake_root / "test.json").read_text())
    for r in rows:
        r["q_lang"], r["answer_type"] = f" {r['q_lang'].upper()} ", r["answer_type"].lower() + " "
    (slake_root / "test.json").write_text(json.dumps(rows))
    assert [c.answer_type for c in slake.load(slake_root, "test")] == ["open", "closed", "closed"]


@pytest.mark.parametrize("content", ["", "index,Figure_path,Caption,Question,Choice A,Choice B,Choice C,Choice D,"
                                         "Answer,split\n"])
def test_empty_or_header_only_files_are_dataset_errors(tmp_path, content):
    root = tmp_path / "pmc"
    root.mkdir()
    (root / "test_2.csv").write_text(content)
    with pytest.raises(DatasetError):
        pmc_vqa.load(root, "test_2")
    slake_root = tmp_path / "slake"
    slake_root.mkdir()
    (slake_root / "test.json").write_text("[]")
    with pytest.raises(DatasetError, match="no cases"):
        tasks.load_task("slake", {"slake": str(slake_root)})


def test_vqa_rad_hub_parquet_layout(tmp_path):
    root = materialize("vqa_rad_hub", tmp_path)
    cases = vqa_rad.load(root, "test")
    assert [c.id for c in cases] == ["test_0", "test_1", "test_2", "test_3"]
    # no answer_type in the hub copy: closed means a yes/no answer
    assert [c.answer_type for c in cases] == ["closed", "closed", "open", "open"]
    assert cases[3].answer == "2" and cases[0].subgroups["layout"] == "hub"
    _images_readable(cases)
    loaded = tasks.load_task("vqa_rad", {"vqa_rad": str(root)})
    assert len(loaded.cases) == 4 and loaded.files[0].endswith(".parquet")


def test_pmc_vqa_test_2_layout(tmp_path):
    root = materialize("pmc_vqa_test2", tmp_path)
    cases = pmc_vqa.load(root, "test_2")
    assert [c.id for c in cases] == ["test_2_0", "test_2_1"]
    assert cases[0].options == ["CT", "MRI", "PET", "Ultrasound"] and cases[0].answer == "A"
    assert cases[1].options[0] == "A non-enhanced tumor"
    _images_readable(cases)


def test_slake_language_from_the_command_line(tmp_path):
    from benchmarks.cli import _data_options

    root = materialize("slake", tmp_path)
    options = _data_options(["slake.language=zh"])
    loaded = tasks.load_task("slake", {"slake": str(root)}, options=options)
    assert [c.id for c in loaded.cases] == ["7"] and loaded.options == {"language": "zh"}
    with pytest.raises(tasks.TaskError, match="no data option"):
        tasks.load_task("slake", {"slake": str(root)}, options={"slake": {"lang": "zh"}})
    with pytest.raises(DatasetError, match="language must be"):
        tasks.load_task("slake", {"slake": str(root)}, options={"slake": {"language": "fr"}})


def _fake_hub_cache(tmp_path: Path, repo: str, files_from: Path) -> tuple[Path, str]:
    """A Hugging Face hub cache holding ``repo`` at ``main`` with the files of ``files_from``."""
    import shutil

    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    shutil.copytree(files_from, folder / "snapshots" / commit)
    return cache, commit


def test_offline_uses_the_hub_cache_at_the_pinned_revision(tmp_path, monkeypatch):
    import time

    root = materialize("vqa_rad_hub", tmp_path)
    cache, commit = _fake_hub_cache(tmp_path, "flaviagiammarino/vqa-rad", root)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = tasks.load_task("vqa_rad", {"vqa_rad": str(tmp_path / "not-here")})
    assert len(loaded.cases) == 4 and loaded.hf_snapshot == commit
    # not cached, offline: a clear message at once, no network retries
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    t0 = time.perf_counter()
    with pytest.raises(tasks.TaskError, match="HF_HUB_OFFLINE=1") as missing:
        tasks.load_task("vqa_rad", {"vqa_rad": str(tmp_path / "not-here")}, download=True)
    assert time.perf_counter() - t0 < 5
    assert "datasets--flaviagiammarino--vqa-rad" in str(missing.value)
    assert str(tmp_path / "not-here") in str(missing.value)


def test_mmmu_list_columns_decoded_and_omnimedvqa_spaces(tmp_path):
    from tests.helpers.bench import _image_struct, _write_parquet

    root = tmp_path / "mmmu"
    row = {"id": "validation_Pharmacy_1", "question": "<image 1> Which drug?", "options": ["Aspirin", "Heparin"],
           "explanation": "", "image_1": _image_struct(1), "img_type": ["Diagrams"], "answer": "B ",
           "topic_difficulty": "Easy", "question_type": "Multiple-Choice ", "subfield": "Pharmacology"}
    _write_parquet([row], root / "Pharmacy" / "validation-00000-of-00001.parquet")
    case = mmmu.load(root, "validation")[0]
    assert (case.answer_type, case.options, case.answer, case.subgroups["img_type"]) == \
        ("choice", ["Aspirin", "Heparin"], "B", "Diagrams")
    omni = materialize("omnimedvqa", tmp_path)
    path = next((omni / "QA_information" / "Open-access").glob("*.json"))
    rows = json.loads(path.read_text())
    rows[0]["gt_answer"] += " "
    path.write_text(json.dumps(rows))
    assert omnimedvqa.load(omni, "test")[0].answer == "B"
