"""The runner: outputs, fresh contexts, batching, resume (by killing a real run), rescore, compare, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.bench import REPO_DIR, ScriptedBackend, materialize, vqa_rad_many
from benchmarks.core import runner
from benchmarks.core.results import compare_runs
from mmreason.cli import main
from mmreason.loop import LoopConfig
from mmreason.run_spec import BackendSpec, RunSpec, ToolRecipe
from mmreason.trace import Trace

BACKEND = "tests.helpers.bench:ScriptedBackend"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _config(tmp_path: Path, root: Path, out: str = "run", seed: int | None = None, max_turns: int = 8,
            backend_options: dict | None = None, tools: bool = True, **kw) -> runner.BenchConfig:
    run = RunSpec(backend=BackendSpec(BACKEND, options=backend_options or {}), loop=LoopConfig(max_turns=max_turns),
                  tools=ToolRecipe(enabled=tools), seed=seed)
    return runner.BenchConfig(tasks=["vqa_rad"], out=tmp_path / out, run=run, data={"vqa_rad": str(root)},
                              progress=False, **kw)


def test_run_writes_every_output(tmp_path):
    root = materialize("vqa_rad", tmp_path)
    results = runner.run(_config(tmp_path, root), log=lambda m: None)
    out = tmp_path / "run"
    rows = _rows(out / "samples_vqa_rad.jsonl")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"3", "4"}
    # the scripted model always answers "yes": right for the closed question, wrong for the open one
    assert (by_id["4"]["correct"], by_id["3"]["correct"]) == (True, False)
    assert by_id["3"]["recall"] == 0.0 and by_id["4"]["parse_status"] == "answer_tag"
    assert by_id["4"]["prompt"].startswith("Is there a mass in the lung?")
    assert by_id["4"]["response"].endswith("<answer>yes</answer>") and by_id["4"]["parsed"] == "yes"
    assert by_id["4"]["latency_s"] > 0 and by_id["4"]["tokens"] is None
    trace = Trace.load(out / by_id["4"]["trace"])
    assert trace.status == "answered" and trace.meta["case_id"] == "4"
    task = results["tasks"]["vqa_rad"]
    assert (task["n"], task["accuracy"]["value"], task["accuracy"]["k"]) == (2, 0.5, 1)
    assert task["by_answer_type"]["closed"]["value"] == 1.0 and task["open_recall>=0.5"]["value"] == 0.0
    assert task["parse_status"]["answer_tag"] == 2 and task["throughput"]["samples"] == 2
    assert set(task["subgroups"]) == {"answer_type", "question_type", "organ"}
    config = json.loads((out / "config.json").read_text())
    prov = config["tasks_provenance"]["vqa_rad"]
    assert prov["sha256"] and prov["checksum_ok"] is None and prov["prompt_hash"]
    assert {"versions", "git_commit", "seed", "model_id"} <= set(config) and config["checksum_mismatch"] == []
    assert (out / "results.md").read_text().count("| vqa_rad | 2 |") == 1
    assert (out / "plots" / "accuracy_vqa_rad.png").stat().st_size > 1000
    # every episode began from a fresh context: the first generate call of each case saw only
    # the system prompt and that case's own user turn
    backend = ScriptedBackend.instances[-1]
    assert backend.calls == [[2], [2]]


def test_batched_and_concurrent_runs_match_serial(tmp_path):
    root = vqa_rad_many(tmp_path, 6)
    serial = runner.run(_config(tmp_path, root, "serial"), log=lambda m: None)
    runner.run(_config(tmp_path, root, "batched", batch_size=4), log=lambda m: None)
    assert ScriptedBackend.instances[-1].calls == [[2, 2, 2, 2], [2, 2]]
    runner.run(_config(tmp_path, root, "threads", concurrency=3), log=lambda m: None)
    want = {r["id"]: r["correct"] for r in _rows(tmp_path / "serial" / "samples_vqa_rad.jsonl")}
    for name in ("batched", "threads"):
        got = _rows(tmp_path / name / "samples_vqa_rad.jsonl")
        assert len(got) == 6 and {r["id"]: r["correct"] for r in got} == want
    assert serial["tasks"]["vqa_rad"]["accuracy"]["value"] == 0.5


def test_resume_skips_done_and_repairs_a_truncated_line(tmp_path):
    root = vqa_rad_many(tmp_path, 6)
    runner.run(_config(tmp_path, root, limit=3), log=lambda m: None)
    samples = tmp_path / "run" / "samples_vqa_rad.jsonl"
    with samples.open("a") as f:
        f.write('{"id": "103", "task": "vqa_ra')  # a write cut by a kill
    assert len(runner.read_jsonl_tolerant(samples)) == 3
    runner.run(_config(tmp_path, root), log=lambda m: None)
    ids = [r["id"] for r in _rows(samples)]  # every line parses
    assert sorted(ids) == [str(100 + i) for i in range(6)] and len(ids) == len(set(ids))
    assert ScriptedBackend.instances[-1].calls == [[2]] * 3  # only the three missing cases ran
    with pytest.raises(runner.RunError, match=r"seed: 0 -> 5.*Resume with the same settings"):
        runner.run(_config(tmp_path, root, seed=5), log=lambda m: None)
    with pytest.raises(runner.RunError, match=r"max_turns: 8 -> 3"):
        runner.run(_config(tmp_path, root, max_turns=3), log=lambda m: None)
    annotations = next(root.glob("*.json"))
    annotations.write_text(annotations.read_text().replace('"yes"', '"Yes"', 1))  # the data changed
    with pytest.raises(runner.RunError, match=r"vqa_rad sha256"):
        runner.run(_config(tmp_path, root), log=lambda m: None)
    assert len(_rows(samples)) == 6  # nothing written by the refused sessions


def test_kill_and_resume_a_real_run(tmp_path):
    root = vqa_rad_many(tmp_path, 12)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mmreason.cli", "bench", "--tasks", "vqa_rad",
           "--backend", "tests.helpers.bench:SlowBackend", "--data", f"vqa_rad={root}", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_DIR), os.environ.get("PYTHONPATH", "")])}
    samples = out / "samples_vqa_rad.jsonl"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    n_before = samples.read_text().count("\n")
    assert 3 <= n_before < 12, "the run must be killed part-way"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{n_before} already done, {12 - n_before} to run" in done.stderr
    ids = [r["id"] for r in _rows(samples)]
    assert sorted(ids) == sorted(str(100 + i) for i in range(12)) and len(ids) == 12
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["vqa_rad"]["n"] == 12 and results["tasks"]["vqa_rad"]["accuracy"]["k"] == 6
    assert len(json.loads((out / "config.json").read_text())["sessions"]) == 2


def test_rescore_without_inference(tmp_path):
    root = materialize("vqa_rad", tmp_path)
    runner.run(_config(tmp_path, root), log=lambda m: None)
    samples = tmp_path / "run" / "samples_vqa_rad.jsonl"
    rows = _rows(samples)
    for r in rows:  # as if the model had written its answer differently
        r["response"] = "Answer: Left lung" if r["id"] == "3" else "it wrote a long reply without any tags at all"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_backends = len(ScriptedBackend.instances)
    results = runner.rescore(tmp_path / "run", log=lambda m: None)
    assert len(ScriptedBackend.instances) == n_backends  # no backend was built
    by_id = {r["id"]: r for r in _rows(samples)}
    assert (by_id["3"]["correct"], by_id["3"]["parse_status"]) == (True, "answer_prefix")
    assert (by_id["4"]["correct"], by_id["4"]["parse_status"]) == (False, "unparsed")
    task = results["tasks"]["vqa_rad"]
    assert results["rescored"] and task["accuracy"]["k"] == 1 and task["parse_status"]["unparsed"] == 1
    assert task["throughput"]["samples"] == 2  # kept from the run that measured it


def test_compare_two_runs(tmp_path):
    root = vqa_rad_many(tmp_path, 6)
    runner.run(_config(tmp_path, root, "yes"), log=lambda m: None)
    runner.run(_config(tmp_path, root, "no", backend_options={"answer": "no"}), log=lambda m: None)
    doc = compare_runs(tmp_path / "yes", tmp_path / "no", n_boot=500)
    c = doc["tasks"]["vqa_rad"]
    # "yes" gets the three closed questions right, "no" gets none
    assert (c["n"], c["acc_a"], c["acc_b"], c["b"], c["c"]) == (6, 0.5, 0.0, 3, 0)
    assert c["mcnemar_p"] == pytest.approx(0.25) and c["diff_high"] <= 0
    assert "reasoning_impact" not in c  # both runs had tools
    # written beside run B as well as returned
    assert json.loads((tmp_path / "no" / "compare.json").read_text())["tasks"]["vqa_rad"]["b"] == 3
    assert "| vqa_rad | 6 | 50.0 | 0.0 |" in (tmp_path / "no" / "compare.md").read_text()


def test_direct_answer_run_has_no_tools_and_gives_the_impact_of_reasoning(tmp_path):
    root = vqa_rad_many(tmp_path, 4)
    runner.run(_config(tmp_path, root, "direct", tools=False, backend_options={"answer": "no"}), log=lambda m: None)
    trace = Trace.load(tmp_path / "direct" / _rows(tmp_path / "direct" / "samples_vqa_rad.jsonl")[0]["trace"])
    system = trace.turns[0].text
    assert "No tools are available" in system and "<tools>" not in system
    runner.run(_config(tmp_path, root, "tools"), log=lambda m: None)
    assert "<tools>" in Trace.load(tmp_path / "tools" / _rows(tmp_path / "tools" / "samples_vqa_rad.jsonl")[0]
                                   ["trace"]).turns[0].text
    for a, b in (("tools", "direct"), ("direct", "tools")):
        c = compare_runs(tmp_path / a, tmp_path / b, n_boot=200)["tasks"]["vqa_rad"]
        assert c["reasoning_impact"] == pytest.approx(0.5)  # the "yes" run with tools minus the direct "no" run
    with pytest.raises(runner.RunError, match=r"tools: False -> True"):
        runner.run(_config(tmp_path, root, "direct"), log=lambda m: None)


def test_cli_list_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMREASON_DATA", str(tmp_path))
    materialize("slake", tmp_path)
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("vqa_rad", "slake", "pathvqa", "pmc_vqa", "omnimedvqa", "medxpertqa_mm", "mmmu_med", "medframeqa",
                 "synthetic"):
        assert name in out
    slake_line = next(line for line in out.splitlines() if line.startswith("slake"))
    assert slake_line.split()[1] == "3"  # English questions present locally
    assert main(["bench"]) == 2
    assert "give --tasks" in capsys.readouterr().err
    assert main(["bench", "--tasks", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["bench", "--tasks", "slake", "--backend", "no_such_module:X", "--out", str(tmp_path / "r")]) == 2
    assert "cannot import backend" in capsys.readouterr().err


def test_unreadable_image_is_recorded_as_an_error_sample(tmp_path):
    root = vqa_rad_many(tmp_path, 4)
    (root / "VQA_RAD Image Folder" / "synpic00001.jpg").write_bytes(b"not an image")
    results = runner.run(_config(tmp_path, root, batch_size=4), log=lambda m: None)
    by_id = {r["id"]: r for r in _rows(tmp_path / "run" / "samples_vqa_rad.jsonl")}
    assert len(by_id) == 4 and by_id["101"]["error"] and by_id["101"]["correct"] is False
    assert by_id["101"]["loop_status"] == "error" and not by_id["100"]["error"]
    assert results["tasks"]["vqa_rad"]["errors"] == 1
