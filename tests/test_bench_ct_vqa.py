"""3-D CT VQA benchmarks: DeepTumorVQA, M3D-VQA and 3D-RAD in their release layouts, in each tool mode.

Every fixture is written here, into ``tmp_path``, in the exact published layout (file names,
JSON fields, CSV columns), with tiny volumes: a 24x48x48 abdominal CT at 10x8x8 mm (organ
volumes in the adult range, so evidence quality does not refuse them), its AbdomenAtlas
reference masks, and M3D-style ``(1, 8, 16, 16)`` .npy arrays normalised to 0..1.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from benchmarks.core import runner
from benchmarks.core.tasks import load_task
from benchmarks.datasets.common import DatasetError
from grounding.segmenters import SegmentationError, get_segmenter
from grounding.segmenters.spec import SegmenterSpec
from imaging.io import load
from mmreason.run_spec import RunSpec, ToolRecipe
from mmreason.trace import Trace

SPACING_ZYX = (10.0, 8.0, 8.0)
VOXEL_ML = float(np.prod(SPACING_ZYX)) / 1000.0
#: (z, y, x) boxes on the canonical grid (x grows towards the patient's left)
LIVER = (slice(6, 18), slice(14, 34), slice(6, 20))
SPLEEN = (slice(8, 14), slice(18, 28), slice(34, 40))
LESION = (slice(10, 13), slice(20, 24), slice(10, 14))


def _save(array_zyx: np.ndarray, path: Path, dtype: type) -> None:
    """NIfTI as AbdomenAtlas stores it: (x, y, z) voxels, a RAS affine with x and y flipped (LPS data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([-SPACING_ZYX[2], -SPACING_ZYX[1], SPACING_ZYX[0], 1.0])
    nib.save(nib.Nifti1Image(array_zyx.transpose(2, 1, 0).astype(dtype), affine), path)


def _abdomen() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    shape = (24, 48, 48)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    ct = np.full(shape, -1000, dtype=np.int16)
    body = ((y - 24) / 20.0) ** 2 + ((x - 24) / 22.0) ** 2 <= 1.0
    ct[np.broadcast_to(body, shape)] = 30
    masks = {name: np.zeros(shape, dtype=bool) for name in ("liver", "spleen", "liver_lesion")}
    masks["liver"][LIVER] = True
    masks["spleen"][SPLEEN] = True
    masks["liver_lesion"][LESION] = True
    ct[masks["liver"]], ct[masks["spleen"]], ct[masks["liver_lesion"]] = 60, 50, 5
    return ct, masks


QUESTIONS = [
    {"qid": "bench_00001", "question_type": "measurement", "question_subtype": "organ volume measurement",
     "organ": "liver", "lesion": False, "question": "What is the volume of the liver in cm³?",
     "answer": "{liver}", "options": ["150.0", "{liver}", "600.0", "5000.0"], "correct_option": "B"},
    {"qid": "bench_00002", "question_type": "recognition", "question_subtype": "liver lesion existence",
     "organ": "liver", "lesion": True, "question": "Is there a lesion in the liver?", "answer": "Yes",
     "options": ["Yes", "No"], "correct_option": "A"},
    {"qid": "bench_00003", "question_type": "medical reasoning", "question_subtype": "splenomegaly grading",
     "organ": "spleen", "lesion": False, "question": "How would you classify the splenic enlargement based on volume?",
     "answer": "Normal (no splenomegaly)", "options": ["Normal (no splenomegaly)", "Moderate", "Severe", "Mild"],
     "correct_option": "A"},
    {"qid": "bench_00004", "question_type": "visual reasoning", "question_subtype": "lesion counting",
     "organ": "liver", "lesion": True, "question": "How many lesions are in the liver?", "answer": "1",
     "options": ["0", "1", "2", "3"], "correct_option": "B"},
]


def deeptumorvqa_root(tmp_path: Path, with_masks: bool = True) -> tuple[Path, float]:
    """``benchmark/test_qa.json`` + ``benchmark/ct/<id>/ct.nii.gz`` (+ ``segmentations/``), as released."""
    root = tmp_path / "DeepTumorVQA_2.0"
    ct, masks = _abdomen()
    case = root / "benchmark" / "ct" / "BDMAP_00000001"
    _save(ct, case / "ct.nii.gz", np.int16)
    if with_masks:
        for name, mask in masks.items():
            _save(mask, case / "segmentations" / f"{name}.nii.gz", np.uint8)
    liver_cm3 = round(masks["liver"].sum() * VOXEL_ML, 1)
    records = []
    for q in QUESTIONS:
        options = [o.format(liver=liver_cm3) for o in q["options"]]
        mc = q["question"] + " " + " ".join(f"{chr(65 + i)}: {o}" for i, o in enumerate(options))
        records.append({"qid": q["qid"], "image_id": "BDMAP_00000001", "spacing": "[8. 8. 10.]",
                        "shape": "(48, 48, 24)", "sex": None, "age": None, "question": q["question"],
                        "answer": q["answer"].format(liver=liver_cm3), "mc_question": mc,
                        "correct_option": q["correct_option"], "organ": q["organ"], "lesion": q["lesion"],
                        "question_type": q["question_type"], "question_subtype": q["question_subtype"],
                        "requires_tools": ["segment_organ", "measure"]})
    doc = {"version": "v4", "num_questions": len(records), "question_types": ["recognition", "measurement",
           "visual reasoning", "medical reasoning"], "questions": records}
    (root / "benchmark" / "test_qa.json").write_text(json.dumps(doc))
    return root, liver_cm3


def _npy(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    volume = rng.random((1, 8, 16, 16)).astype(np.float32) * 0.2
    volume[0, 2:6, 5:11, 5:11] = 0.9  # a bright block: something for a prompted search to find
    np.save(path, volume)


M3D_COLUMNS = ["Image Path", "Text", "Question Type", "Question", "Choice A", "Choice B", "Choice C", "Choice D",
               "Answer", "Answer Choice"]


def m3d_root(tmp_path: Path) -> Path:
    """``M3D_VQA_test.csv`` with volumes at each row's ``Image Path`` (M3D_Cap_npy/ct_quizze/...)."""
    root = tmp_path / "m3d"
    rows = [
        ["ct_quizze/000041/Axial_C__portal_venous_phase.npy", "Report: a mass in the liver.", "1",
         "In which plane is this image taken?", "Axial", "Coronal", "Sagittal", "Oblique", "Axial", "A"],
        ["ct_quizze/000041/Axial_C__portal_venous_phase.npy", "Report: a mass in the liver.", "4",
         "What abnormality is seen in the liver?", "Cyst", "Mass", "Abscess", "Normal", "Mass", "B"],
        ["ct_case/001234/Coronal_non_contrast.npy", "Report: right pleural effusion.", "5",
         "Where is the pleural effusion?", "Left", "Both sides", "Right", "None", "Right", "C"],
    ]
    for i, rel in enumerate(sorted({r[0] for r in rows})):
        _npy(root / "M3D_Cap_npy" / rel, i)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "M3D_VQA_test.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(M3D_COLUMNS)
        writer.writerows(rows)
    return root


RAD_COLUMNS = ["Task", "Subtask", "VolumeName", "Question", "Answer", "QuestionType", "AnswerChoice", "Choice A",
               "Choice B", "Choice C", "Choice D"]


def rad3d_root(tmp_path: Path) -> Path:
    """``3DRAD/test/Task*/<subtask>.csv`` with the hub's .npy volumes named after VolumeName."""
    root = tmp_path / "3D-RAD"
    files = {
        "Task3_Medical_Computation/Diameter.csv": [
            ["3", "1", "test_1004_a_1.nii.gz", "What is the diameter of the largest lymph node?", "2 cm", "Open",
             "-", "-", "-", "-", "-"]],
        "Task4_Existence_Detection/Lung nodule.csv": [
            ["4", "10", "test_1000_a_1.nii.gz", "Does the CT scan reveal lung nodule?", "No", "Close", "B", "Yes", "No",
             "-", "-"],
            ["4", "10", "test_1004_a_1.nii.gz", "Is lung nodule noted on the CT images?", "Yes", "Close", "A", "Yes",
             "No", "-", "-"]],
        "Task5_Static_Temporal_Diagnosis/b.csv": [
            ["5", "1", "test_1000_a_1.nii.gz", "According to the CT scan, what is the current status of cardiomegaly?",
             "No Abnormality (Always absent)", "Close", "D", "Refractory Lesion (Persistent or recurrent, now present)",
             "Resolved Lesion (Previously present or recurrent, now absent)",
             "New Lesion (Absent previously, now present)", "No Abnormality (Always absent)"]],
    }
    for rel, rows in files.items():
        path = root / "3DRAD" / "test" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(RAD_COLUMNS)
            writer.writerows(rows)
    for i, name in enumerate(("test_1000_a_1", "test_1004_a_1")):
        _npy(root / "Images" / f"{name}.npy", 10 + i)
    return root


def _run(tmp_path: Path, task: str, root: Path, out: str, segmenter: dict | None = None, tools: bool = True,
         **kw) -> tuple[dict, list[dict]]:
    run = RunSpec(segmenter=SegmenterSpec.from_dict(segmenter), tools=ToolRecipe(enabled=tools))
    config = runner.BenchConfig(tasks=[task], out=tmp_path / out, run=run, data={task: str(root)}, progress=False,
                                **kw)
    results = runner.run(config, log=lambda _: None)
    rows = [json.loads(line) for line in (config.out / f"samples_{task}.jsonl").read_text().splitlines()]
    return results, rows


def _segments(run_dir: Path, row: dict) -> list[dict]:
    trace = Trace.load(run_dir / row["trace"])
    return [e.to_dict(False) for e in trace.evidence if e.tool == "segment"]


# --------------------------------------------------------------------------- DeepTumorVQA

def test_deeptumorvqa_loads_the_release_layout(tmp_path):
    root, liver_cm3 = deeptumorvqa_root(tmp_path)
    cases = load_task("deeptumorvqa", {"deeptumorvqa": str(root)}, progress=False).cases
    assert [c.id for c in cases] == [q["qid"] for q in QUESTIONS]
    first = cases[0]
    assert first.question == "What is the volume of the liver in cm³?"
    assert first.options == ["150.0", str(liver_cm3), "600.0", "5000.0"] and first.answer == "B"
    assert first.subgroups["question_type"] == "measurement"
    assert sorted(first.masks) == ["liver", "liver_lesion", "spleen"]
    assert first.images[0].endswith("benchmark/ct/BDMAP_00000001/ct.nii.gz")
    free = load_task("deeptumorvqa", {"deeptumorvqa": str(root)}, progress=False,
                     options={"deeptumorvqa": {"format": "freeform"}}).cases
    assert [c.answer_type for c in free] == ["numeric", "closed", "open", "numeric"]
    assert free[0].answer == str(liver_cm3) and free[0].options is None and free[0].tolerance == 0.10


def test_deeptumorvqa_missing_files_say_what_to_download(tmp_path):
    with pytest.raises(DatasetError, match="test_qa.json"):
        load_task("deeptumorvqa", {"deeptumorvqa": str(tmp_path)}, progress=False)
    root, _ = deeptumorvqa_root(tmp_path)
    (root / "benchmark" / "ct" / "BDMAP_00000001" / "ct.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"BDMAP_00000001/ct.nii.gz.*huggingface-cli download tumor-vqa"):
        load_task("deeptumorvqa", {"deeptumorvqa": str(root)}, progress=False)


def test_deeptumorvqa_flat_jsonl_and_masks_elsewhere(tmp_path):
    root, _ = deeptumorvqa_root(tmp_path)
    bench = root / "benchmark"
    records = json.loads((bench / "test_qa.json").read_text())["questions"]
    (bench / "test_qa.json").unlink()
    (bench / "test_qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atlas = tmp_path / "AbdomenAtlas3.0Mini" / "BDMAP_00000001"
    (bench / "ct" / "BDMAP_00000001" / "segmentations").rename(tmp_path / "moved")
    atlas.mkdir(parents=True)
    (tmp_path / "moved").rename(atlas / "segmentations")
    plain = load_task("deeptumorvqa", {"deeptumorvqa": str(root)}, progress=False).cases
    assert [c.id for c in plain] == [q["qid"] for q in QUESTIONS] and all(not c.masks for c in plain)
    cases = load_task("deeptumorvqa", {"deeptumorvqa": str(root)}, progress=False,
                      options={"deeptumorvqa": {"masks": str(atlas.parent)}}).cases
    assert sorted(cases[0].masks) == ["liver", "liver_lesion", "spleen"]


def test_reference_segmenter_returns_the_reference_masks(tmp_path):
    root, _ = deeptumorvqa_root(tmp_path)
    case_dir = root / "benchmark" / "ct" / "BDMAP_00000001"
    volume = load(case_dir / "ct.nii.gz")
    seg = get_segmenter("reference", weights=str(case_dir / "segmentations"))
    liver = seg.segment(volume, "liver")
    _, masks = _abdomen()
    assert np.array_equal(liver, masks["liver"])
    from grounding.segmenters import Prompt

    in_liver = seg.segment(volume, "tumor", Prompt(within=liver))
    assert np.array_equal(in_liver, masks["liver_lesion"])
    assert not seg.segment(volume, "lesion", Prompt(within=seg.segment(volume, "spleen"))).any()
    with pytest.raises(SegmentationError, match="no reference mask for 'pancreas'.*liver, liver_lesion, spleen"):
        seg.segment(volume, "pancreas")
    with pytest.raises(SegmentationError, match="has no reference masks"):
        get_segmenter("reference").segment(volume, "liver")


def test_deeptumorvqa_three_tool_modes_end_to_end(tmp_path):
    root, liver_cm3 = deeptumorvqa_root(tmp_path)
    oracle, oracle_rows = _run(tmp_path, "deeptumorvqa", root, "oracle", segmenter={"name": "reference"})
    _, predicted_rows = _run(tmp_path, "deeptumorvqa", root, "predicted")
    vision, vision_rows = _run(tmp_path, "deeptumorvqa", root, "vision", tools=False)
    _, masks = _abdomen()

    # oracle: segment answers with the reference liver mask, so the measured volume is the reference one
    liver = next(e for e in _segments(tmp_path / "oracle", oracle_rows[0]) if e["arguments"].get("target") == "liver")
    assert liver["data"]["segmenter"] == "reference"
    assert liver["data"]["voxels"] == int(masks["liver"].sum())
    assert oracle_rows[0]["correct"] and oracle_rows[0]["parsed"].upper().startswith("B")
    lesion_search = _segments(tmp_path / "oracle", oracle_rows[1])
    assert [e["data"]["voxels"] for e in lesion_search] == [int(masks["liver"].sum()), int(masks["liver_lesion"].sum())]
    assert oracle_rows[1]["correct"]
    # lesion counting is answered by the count of the search's components (it had picked the option
    # nearest the lesion's diameter, "D. 3")
    assert oracle_rows[3]["correct"] and oracle_rows[3]["parsed"].startswith("B. 1"), oracle_rows[3]["response"]

    # predicted: our own segmenter answers segment (never the reference masks)
    used = {e["data"].get("segmenter") for r in predicted_rows for e in _segments(tmp_path / "predicted", r)}
    assert "reference" not in used and all(r["tool_calls"] >= 1 for r in predicted_rows[:2])

    # vision only: no tool is offered and none is called
    assert all(r["tool_calls"] == 0 for r in vision_rows)
    assert vision["config"]["tools"] is False and oracle["config"]["segmenter"]["name"] == "reference"

    # per-stage metrics: one question per stage, grouped under question_type
    stages = oracle["tasks"]["deeptumorvqa"]["subgroups"]["question_type"]
    assert sorted(stages) == ["measurement", "medical reasoning", "recognition", "visual reasoning"]
    assert {s: g["n"] for s, g in stages.items()} == dict.fromkeys(stages, 1)
    expected = {r["subgroups"]["question_type"]: float(r["correct"]) for r in oracle_rows}
    assert {s: g["value"] for s, g in stages.items()} == expected
    assert expected["measurement"] == 1.0 and expected["recognition"] == 1.0
    assert oracle["tasks"]["deeptumorvqa"]["accuracy"]["value"] > vision["tasks"]["deeptumorvqa"]["accuracy"]["value"]


def test_oracle_mode_needs_masks(tmp_path):
    root, _ = deeptumorvqa_root(tmp_path, with_masks=False)
    with pytest.raises(runner.RunError, match="reference masks"):
        _run(tmp_path, "deeptumorvqa", root, "oracle", segmenter={"name": "reference"})


# --------------------------------------------------------------------------- M3D-VQA

def test_m3d_vqa_closed_and_open_from_the_csv(tmp_path):
    root = m3d_root(tmp_path)
    # both tasks read the same files: --data m3d_vqa=DIR serves both
    closed = load_task("m3d_vqa_closed", {"m3d_vqa": str(root)}, progress=False).cases
    opened = load_task("m3d_vqa_open", {"m3d_vqa": str(root)}, progress=False).cases
    assert [c.answer for c in closed] == ["A", "B", "C"] and closed[0].options == ["Axial", "Coronal", "Sagittal",
                                                                                  "Oblique"]
    assert [c.answer for c in opened] == ["Axial", "Mass", "Right"] and opened[0].answer_type == "open"
    assert [c.subgroups["question_type"] for c in closed] == ["plane", "abnormality", "location"]
    assert all("Report" not in c.question and "Text" not in c.native for c in closed + opened)
    (root / "M3D_Cap_npy" / "ct_case" / "001234" / "Coronal_non_contrast.npy").unlink()
    with pytest.raises(DatasetError, match="Coronal_non_contrast.npy.*M3D-Cap"):
        load_task("m3d_vqa_closed", {"m3d_vqa_closed": str(root)}, progress=False)


def test_npy_volume_spacing_is_an_assumed_fact(tmp_path):
    path = tmp_path / "v.npy"
    _npy(path, 0)
    volume = load(path)
    assert volume.shape == (8, 16, 16) and volume.spacing == (1.0, 1.0, 1.0)
    assert volume.facts["spacing"].assumed and "npy" in volume.facts["spacing"].detail
    assert volume.facts["orientation"].assumed
    from grounding.plausibility import fact_quality

    assert "spacing assumed" in " ".join(fact_quality(volume).reasons)


def test_npy_arrays_that_are_not_one_volume_are_refused(tmp_path):
    from imaging.io.errors import CorruptFileError, FrameSelectionError

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(CorruptFileError, match="Python objects"):
        load(tmp_path / "objects.npy")
    np.save(tmp_path / "channels.npy", np.zeros((3, 4, 8, 8), dtype=np.float32))
    with pytest.raises(FrameSelectionError, match="one channel of one volume"):
        load(tmp_path / "channels.npy")
    np.save(tmp_path / "slice.npy", np.ones((8, 8), dtype=np.uint8))
    assert load(tmp_path / "slice.npy").shape == (1, 8, 8)


def test_m3d_vqa_runs_with_and_without_tools(tmp_path):
    root = m3d_root(tmp_path)
    tools, rows = _run(tmp_path, "m3d_vqa_closed", root, "tools")
    _, vision_rows = _run(tmp_path, "m3d_vqa_closed", root, "vision", tools=False)
    assert len(rows) == 3 and all(r["tool_calls"] == 0 for r in vision_rows)
    assert tools["tasks"]["m3d_vqa_closed"]["subgroups"]["question_type"].keys() == {"plane", "abnormality",
                                                                                      "location"}
    _, open_rows = _run(tmp_path, "m3d_vqa_open", root, "open", tools=False)
    assert [r["answer_type"] for r in open_rows] == ["open"] * 3
    with pytest.raises(runner.RunError, match="reference masks"):
        _run(tmp_path, "m3d_vqa_closed", root, "oracle", segmenter={"name": "reference"})


# --------------------------------------------------------------------------- 3D-RAD

def test_3d_rad_loads_every_task_file(tmp_path):
    root = rad3d_root(tmp_path)
    cases = load_task("3d_rad", {"3d_rad": str(root)}, progress=False).cases
    by_id = {c.id: c for c in cases}
    assert sorted(by_id) == ["Task3_Medical_Computation/Diameter/0", "Task4_Existence_Detection/Lung nodule/0",
                             "Task4_Existence_Detection/Lung nodule/1", "Task5_Static_Temporal_Diagnosis/b/0"]
    nodule = by_id["Task4_Existence_Detection/Lung nodule/0"]
    assert nodule.options == ["Yes", "No"] and nodule.answer == "B" and nodule.answer_type == "choice"
    assert nodule.subgroups == {"task": "Existence_Detection", "subtask": "Lung nodule", "answer_type": "choice"}
    assert by_id["Task5_Static_Temporal_Diagnosis/b/0"].answer == "D"
    diameter = by_id["Task3_Medical_Computation/Diameter/0"]
    assert diameter.answer_type == "open" and diameter.answer == "2 cm"
    assert diameter.images[0].endswith("Images/test_1004_a_1.npy")
    table = tmp_path / "paths.csv"
    table.write_text("VolumeName,Path\n" + "".join(f"{n}.nii.gz,{root}/Images/{n}.npy\n"
                                                   for n in ("test_1000_a_1", "test_1004_a_1")))
    again = load_task("3d_rad", {"3d_rad": str(root)}, progress=False, options={"3d_rad": {"paths": str(table)}})
    assert [c.images for c in again.cases] == [c.images for c in cases]
    (root / "Images" / "test_1004_a_1.npy").unlink()
    with pytest.raises(DatasetError, match="test_1004_a_1.nii.gz"):
        load_task("3d_rad", {"3d_rad": str(root)}, progress=False)


def test_3d_rad_runs_with_and_without_tools(tmp_path):
    root = rad3d_root(tmp_path)
    tools, rows = _run(tmp_path, "3d_rad", root, "tools")
    _, vision_rows = _run(tmp_path, "3d_rad", root, "vision", tools=False)
    assert len(rows) == 4 and all(r["tool_calls"] == 0 for r in vision_rows)
    # a normalised .npy volume (no HU) is guessed to be MR, whose lesion search covers the brain: the
    # lung nodule questions are declined before any search, saying why, instead of guessing
    nodule = [r for r in rows if "Lung nodule" in r["id"]]
    assert all(r["tool_calls"] == 0 and not r["correct"] and "asks about the lung" in r["response"]
               and "a modality guessed from the image values" in r["response"] for r in nodule)
    groups = tools["tasks"]["3d_rad"]["subgroups"]["task"]
    assert {g: v["n"] for g, v in groups.items()} == {"Existence_Detection": 2, "Medical_Computation": 1,
                                                      "Static_Temporal_Diagnosis": 1}


# --------------------------------------------------------------------------- DeepTumorVQA's own scoring

def test_deeptumorvqa_protocol_rules():
    from benchmarks.protocols import get_protocol
    from mmreason.case import Case

    protocol = get_protocol("deeptumorvqa")
    mc = Case(id="q", task="deeptumorvqa", images=[], question="?", answer="A", answer_type="choice",
              options=["Normal", "Mild", "Moderate", "Severe"], subgroups={"question_type": "medical reasoning"})
    assert protocol.score("<think>B is tempting</think>A", mc).correct
    # the peer reads the first standalone A-D: a refusal that contains the article "a" picks option A
    refusal = protocol.score("I cannot answer this question: run a vision-language model.", mc)
    assert refusal.correct and refusal.option == "A" and refusal.group == "medical reasoning"
    assert not get_protocol("ours").score("I cannot answer this question: run a vision-language model.", mc).correct
    number = Case(id="n", task="deeptumorvqa", images=[], question="?", answer="2150.4", answer_type="numeric",
                  subgroups={"question_type": "measurement"})
    close = protocol.score("About 2000 cm3", number)
    assert close.correct and close.metrics["mra"] == pytest.approx(1 - 150.4 / 2150.4)
    far = protocol.score("2500", number)
    assert not far.correct and far.metrics["tol_20"] == 1.0 and far.metrics["tol_10"] == 0.0
    binary = Case(id="b", task="deeptumorvqa", images=[], question="?", answer="Yes", answer_type="closed")
    assert protocol.score("Yes, there is one lesion.", binary).correct
    assert not protocol.score("There is no lesion.", binary).correct


def test_deeptumorvqa_rescore_groups_by_stage(tmp_path):
    root, _ = deeptumorvqa_root(tmp_path)
    _run(tmp_path, "deeptumorvqa", root, "vision", tools=False)
    doc = runner.rescore(tmp_path / "vision", protocols=["deeptumorvqa"], log=lambda _: None)
    peer = doc["tasks"]["deeptumorvqa"]["protocols"]["deeptumorvqa"]
    assert set(peer["groups"]) == {"recognition", "measurement", "visual reasoning", "medical reasoning"}
    # every answer is a refusal: ours scores none, the peer's letter rule credits those that read as its answer
    assert doc["tasks"]["deeptumorvqa"]["accuracy"]["k"] == 0 and peer["accuracy"]["k"] > 0
    assert "by its groups: measurement" in (tmp_path / "vision" / "results.md").read_text()
