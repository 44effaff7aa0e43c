"""The synthetic grounded benchmark: deterministic files, ground truth that agrees with itself,
and an end-to-end run with the rules backend and the rule verifiers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from benchmarks.core import runner
from benchmarks.datasets import synthetic as loader
from benchmarks.datasets.common import DatasetError
from benchmarks.core.scoring import parse_quantity, score_response
from benchmarks.core.synthetic import CTR_MARGIN, KINDS, MR_SPACING, make_synthetic
from imaging.io import load
from mmreason.run_spec import RunSpec


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("syn")
    make_synthetic(folder, n=14, seed=3)
    return folder


def test_deterministic_and_prefix_stable(synthetic_set, tmp_path):
    make_synthetic(tmp_path / "small", n=5, seed=3)
    big = json.loads((synthetic_set / "synthetic.json").read_text())
    small = json.loads((tmp_path / "small" / "synthetic.json").read_text())
    assert small["cases"] == big["cases"][:5]  # relative paths: identical rows
    for rel in small["cases"][0]["images"]:
        assert (tmp_path / "small" / rel).read_bytes() == (synthetic_set / rel).read_bytes()
    other = json.loads(make_synthetic(tmp_path / "seed4", n=5, seed=4).read_text())
    assert [c["answer"] for c in other["cases"]] != [c["answer"] for c in small["cases"]]


def test_cases_cover_every_study_kind_and_answer_type(synthetic_set):
    cases = loader.load(synthetic_set)
    assert len(cases) == 14 and len({c.id for c in cases}) == 14
    assert {c.subgroups["kind"] for c in cases} == set(KINDS)
    assert {c.answer_type for c in cases} == {"closed", "choice", "numeric"}
    assert {c.subgroups["n_images"] for c in cases} >= {"1", "2", "3"}
    for c in cases:
        assert all(p.endswith(".nii.gz") for p in c.images)
        if c.answer_type == "choice":
            assert c.answer in "ABC"[:len(c.options)]
        if c.answer_type == "numeric":
            value, unit = parse_quantity(c.answer)
            assert 0 < c.tolerance < 1 and unit in (None, c.unit.lower())
            # the reference itself scores correct: answer, unit and tolerance agree
            assert score_response(f"<answer>{c.answer}</answer>", c).correct
        assert c.reference_steps and all({"tool", "arguments", "expect"} <= set(s) for s in c.reference_steps)


def test_ground_truth_agrees_with_the_images(synthetic_set):
    cases = {c.subgroups["family"]: c for c in loader.load(synthetic_set)}
    growth = cases["growth"]
    prior, current = (load(p) for p in growth.images)
    assert (prior.name, current.name) == ("prior", "current")
    truth = growth.native["truth"]
    assert growth.answer == ("yes" if truth["current_diameter_mm"] > truth["prior_diameter_mm"] else "no")
    mask = load(growth.masks["nodule_prior"]).data > 0.5
    box = next(b for b in growth.boxes if b["image"] == 0)
    idx = np.nonzero(mask)
    assert [int(i.min()) for i in idx] == box["zyx_min"] and [int(i.max()) + 1 for i in idx] == box["zyx_max"]
    assert prior.modality == "CT" and prior.data[mask].mean() > -300  # a solid nodule in the lung
    mr = cases["mr_lesion_side"]
    assert sorted(load(p).name for p in mr.images) == ["flair", "t1", "t2"]
    side = mr.native["truth"]["lesion"]["side"]
    assert mr.options[ord(mr.answer) - 65] == side
    lesion = load(mr.masks["lesion"])
    centroid_x = lesion.voxel_to_world(np.argwhere(lesion.data > 0.5).mean(axis=0))[0, 0]
    assert (centroid_x > 0) == (side == "left")  # LPS: +x is the patient's left
    ctr = cases["ctr_from_ct"]
    ct, xr = (load(p) for p in ctr.images)
    assert ct.modality == "CT" and xr.is_2d and [b["image"] for b in ctr.boxes] == [1, 1]
    t = ctr.native["truth"]
    assert float(ctr.answer) == pytest.approx(t["heart_width_mm"] / t["thorax_width_mm"], abs=1e-3)


def test_rules_backend_end_to_end_with_verifiers(synthetic_set, tmp_path):
    config = runner.BenchConfig(tasks=["synthetic"], out=tmp_path / "run", run=RunSpec(), limit=4,
                                verifiers=["rule"], data={"synthetic": str(synthetic_set)}, progress=False)
    results = runner.run(config, log=lambda m: None)
    task = results["tasks"]["synthetic"]
    assert task["n"] == 4 and task["errors"] == 0
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps_synthetic.jsonl").read_text().splitlines()]
    assert len(steps) == 4 and all(s["verdicts"] for s in steps)
    assert all(v["label"] in ("correct", "incorrect", "unverifiable") for s in steps for v in s["verdicts"])
    metrics = task["step_metrics"]
    assert metrics["samples"] == 4 and metrics["reference_steps"]["reference"] > 0
    assert (tmp_path / "run" / "plots" / "steps_synthetic.png").exists()
    assert "step metric" in (tmp_path / "run" / "results.md").read_text()


def test_mr_questions_name_each_sequence_and_closed_cardiomegaly(synthetic_set):
    cases = loader.load(synthetic_set)
    mr = [c for c in cases if c.subgroups["kind"] == "brain_mr"]
    assert mr
    for c in mr:
        # "Volume 0 is the T2, volume 1 the FLAIR and volume 2 the T1 sequence": the file names agree
        named = re.findall(r"volume (\d) (?:is )?the (T1|T2|FLAIR)", c.question, re.IGNORECASE)
        assert [(str(i), load(p).name.upper()) for i, p in enumerate(c.images)] == named
        if c.subgroups["family"] == "mr_lesion_side":  # asked only when the lesion is in one hemisphere
            lesion = c.native["truth"]["lesion"]
            assert abs(lesion["center_mm"][0]) >= lesion["diameter_mm"] / 2 + MR_SPACING[2]
    for c in cases:
        if c.subgroups["family"] == "cardiomegaly":
            ctr = c.native["truth"]["ctr"]
            assert c.answer_type == "closed" and c.answer == ("yes" if ctr > 0.5 else "no")
            assert abs(ctr - 0.5) >= CTR_MARGIN


def test_a_set_of_an_older_version_says_how_to_regenerate(synthetic_set, tmp_path):
    doc = json.loads((synthetic_set / "synthetic.json").read_text())
    (tmp_path / "synthetic.json").write_text(json.dumps(doc | {"version": 1}))
    with pytest.raises(DatasetError, match="version 1.*regenerate it with mmreason bench --make-synthetic"):
        loader.load(tmp_path)


def test_tolerances_are_tight_per_family_with_a_reason():
    from benchmarks.core.scoring import numeric_match
    from benchmarks.core.synthetic import CTR_MARGIN, TOLERANCES

    assert all(t.reason for t in TOLERANCES.values())
    growth = TOLERANCES["growth_mm"]
    assert not numeric_match(-3.0, -4.2, growth.for_value(-4.2))  # issue 17: this used to pass
    assert not numeric_match(-4.2, -3.0, growth.for_value(-3.0))
    assert numeric_match(-3.5, -4.2, growth.for_value(-4.2))
    ctr = TOLERANCES["ctr"]
    assert numeric_match(0.45 + CTR_MARGIN, 0.45, ctr.for_value(0.45))  # the bound is not rounded below the margin
    assert not numeric_match(0.45 + 1.5 * CTR_MARGIN, 0.45, ctr.for_value(0.45))
    assert not numeric_match(1.2, 1.0, TOLERANCES["lesion_volume"].for_value(1.0))  # 20% off a lesion volume


def test_prepare_makes_only_the_cases_a_limited_run_needs(tmp_path):
    loader.prepare(tmp_path, limit=2, progress=False)
    assert json.loads((tmp_path / "synthetic.json").read_text())["n"] == 2
    loader.prepare(tmp_path, limit=1, progress=False)  # enough already: untouched
    assert json.loads((tmp_path / "synthetic.json").read_text())["n"] == 2
    loader.prepare(tmp_path, limit=3, progress=False)  # a longer run extends the prefix
    assert len(loader.load(tmp_path)) == 3
    own = tmp_path / "own"
    make_synthetic(own, n=1, seed=5)
    loader.prepare(own, limit=3, progress=False)  # another seed is the user's set: never rewritten
    assert json.loads((own / "synthetic.json").read_text())["n"] == 1
