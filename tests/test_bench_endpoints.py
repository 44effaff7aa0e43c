"""``bench`` over several OpenAI-compatible endpoints (``mmreason serve`` processes on 127.0.0.1): requests
spread over both, one server killed mid-run, and every case answered exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.bench import REPO_DIR, vqa_rad_many
from benchmarks.core import runner
from mmreason.backends import BackendError
from mmreason.run_spec import BackendSpec, RunSpec


def _serve() -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_DIR), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "mmreason", "serve", "--backend", "tests.helpers.bench:SlowBackend",
                                "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert " at http://127.0.0.1:" in line, process.stderr.read()
    return process, line.split(" at ")[1].strip()


@pytest.fixture
def servers():
    started = [_serve(), _serve()]
    yield started
    for process, _ in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def _config(tmp_path: Path, root: Path, urls: list[str], out: str = "run") -> runner.BenchConfig:
    backend = BackendSpec("openai", model="scripted-yes", base_url=urls,
                          options={"backoff": 0.01, "cooldown": 60, "max_retries": 1})
    return runner.BenchConfig(tasks=["vqa_rad"], out=tmp_path / out, run=RunSpec(backend=backend),
                              data={"vqa_rad": str(root)}, concurrency=4, progress=False)


def test_a_lost_endpoint_loses_and_duplicates_no_sample(tmp_path, servers):
    root = vqa_rad_many(tmp_path, 24)
    (first, url_a), (_, url_b) = servers
    samples = tmp_path / "run" / "samples_vqa_rad.jsonl"
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(
        results=runner.run(_config(tmp_path, root, [url_a, url_b]), log=lambda m: None)))
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 4):
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # requests in flight on it fail over to the other server
    first.wait(timeout=10)
    n_at_kill = samples.read_text().count("\n")
    thread.join(timeout=120)
    assert 4 <= n_at_kill < 24, "the server must be lost part-way through the run"
    ids = _ids(samples)
    assert sorted(ids) == sorted(str(100 + i) for i in range(24)) and len(set(ids)) == 24
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert all(r["error"] is None and r["parsed"] == "yes" for r in rows)
    assert outcome["results"]["tasks"]["vqa_rad"]["accuracy"]["k"] == 12


def test_a_run_whose_every_endpoint_is_lost_stops_and_resumes_on_another(tmp_path, servers):
    root = vqa_rad_many(tmp_path, 6)
    (first, url_a), (_, url_b) = servers
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    with pytest.raises(BackendError, match="could not connect"):
        runner.run(_config(tmp_path, root, [url_a]), log=lambda m: None)
    runner.run(_config(tmp_path, root, [url_b]), log=lambda m: None)  # the endpoint list may change on resume
    ids = _ids(tmp_path / "run" / "samples_vqa_rad.jsonl")
    assert sorted(ids) == [str(100 + i) for i in range(6)]
