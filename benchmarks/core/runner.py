"""Run tasks with any backend, resumably, and write everything a reader needs to trust the numbers.

A run folder (``--out runs/NAME``) holds:

* ``config.json``: backend, model, options, seed, package versions, git commit, per-task dataset
  folder, annotation sha256 (and whether it matched the pinned one), prompt template hashes;
* ``samples_<task>.jsonl``: one line per case, appended, flushed and fsynced as soon as the case
  is done: prompt, images, raw response, parsed answer, the extraction rule that read it
  (``parse_status``), correctness under the run's protocol and ``scores`` under every protocol
  applied so far, latency, tokens (when the backend reports them), trace path, the case itself
  (for `rescore`), and lmms-eval's per-sample keys (``doc_hash``, ``prompt_hash``, ``target``,
  ``target_hash``, ``timestamp``);
* ``traces/<task>/<id>.json``: the whole episode (images stripped unless ``trace_images``);
* ``steps_<task>.jsonl``: verifier verdicts per case (with ``--verifiers``);
* ``results.json`` / ``results.md``: metrics with Wilson intervals, subgroups, throughput, step
  metrics, every protocol side by side, and lmms-eval's ``results`` keyed by task and
  ``"metric,filter"`` (`benchmarks.core.results`); ``plots/*.png``.

Every case starts from a fresh context: `mmreason.loop.run_episode` builds a new tool context,
evidence board and conversation per call and the runner passes nothing from one case to the
next. Resume: an interrupted run is started again with the same ``--out``; ids already in the
samples file are skipped and a truncated last line (a kill mid-write) is cut off first, so no case
is repeated or lost. The trace and the verdicts of a case are written before its sample line, so
a sample line always points to complete files; verdicts of a case without a sample line (a kill
between the two writes) are dropped on resume, so the case's rerun does not duplicate them.

Errors: a case whose input cannot be read is recorded as a sample with ``error`` set (scored
incorrect, counted in ``errors``); a `BackendError` (server down, model missing) stops the run,
which resumes where it stopped once the backend is back.

Backends: ``rules``, ``hf``, ``openai`` (`mmreason.backends.get_backend`) or ``module:attr``,
any importable callable returning an object with the backend interface (``name``, ``model_id``,
``native_tools``, ``generate``, ``model_image_size``); it is called with the backend options
(``model``, ``base_url`` when given). This is how custom and test backends plug in.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

from imaging.errors import MMReasonError
from mmreason.backends.base import BackendError
from mmreason.case import Case
from mmreason.run_spec import RunSpec
from mmreason.trace import Trace

from benchmarks.core import results as results_mod
from benchmarks.core.run_folder import (
    SAMPLES,
    STEPS,
    JsonlAppender,
    RunError,
    case_from_row,
    check_run_dir,
    dedup,
    json_default,
    read_jsonl_tolerant,
    rewrite_jsonl,
    run_protocol,
)
from benchmarks.core.tasks import LoadedTask, load_task
from benchmarks.protocols import DEFAULT_PROTOCOL, Judge, ProtocolError, get_protocol

#: what the runner's users import from it (the run-folder functions live in `run_folder`)
__all__ = ["SAMPLES", "STEPS", "BenchConfig", "RunError", "case_from_row", "check_run_dir", "read_jsonl_tolerant",
           "rescore", "run", "run_protocol"]

@dataclass
class BenchConfig:
    """Everything that defines a benchmark run (recorded in ``config.json``).

    Attributes:
        tasks: registered task names.
        out: the run folder (created; reused to resume).
        run: how episodes run (`mmreason.run_spec.RunSpec`, the same specification as ``infer`` and
            ``train``): the backend and its options (``rules``, ``hf``, ``openai`` or ``module:attr``,
            see the module docstring; several ``base_url`` of the openai backend spread the requests
            and fail over, and may change between sessions of a run while the served model may not),
            the segmenter, the loop's settings and limits (``max_turns``, ``temperature``, image
            budget ...), the tools (``tools.enabled`` False is a direct-answer run, the baseline of
            the impact of reasoning, ``--compare``) and the base seed (None: 0; case ``i`` gets a
            seed derived from (seed, task, case id)).
        limit: evaluate only the first ``limit`` cases of each task (loader order).
        batch_size: episodes advanced together through the loop's batched `run_episodes`.
        concurrency: batches in flight at once (threads; for the openai backend).
        verifiers: verifier kinds to run on each trace (``rule``, ``prm``); empty for none.
        split: overrides each task's default split.
        data: ``task -> folder`` overrides of the data locations.
        trace_images: keep rendered images (base64 PNG) in the saved traces.
        The tool modes of 3-D VQA benchmarks (DeepTumorVQA): vision only = ``run.tools.enabled``
            False; predicted = tools with any segmenter; oracle = tools with the ``reference`` segmenter,
            which answers ``segment`` with each case's reference masks (`Case.masks`).
        progress: show a tqdm bar on stderr.
        verifier_options: extra keyword arguments for the verifiers (e.g. a PRM checkpoint).
        protocol: the scoring protocol of ``correct`` (`benchmarks.protocols`; default ``ours``).
        download: fetch a task missing locally from its hub id at the pinned revision.
        data_options: per-task loader options (``{"slake": {"language": "zh"}}``; ``--data-option``).
        judge: backend options of the LLM judge (``backend``, ``model``, ``base_url``) for the
            protocols that need one; empty for none.
    """

    tasks: list[str]
    out: Path
    run: RunSpec = field(default_factory=RunSpec)
    limit: int | None = None
    batch_size: int = 1
    concurrency: int = 1
    verifiers: list[str] = field(default_factory=list)
    split: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    trace_images: bool = False
    progress: bool = True
    verifier_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = DEFAULT_PROTOCOL
    judge: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    download: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.batch_size < 1 or self.concurrency < 1:
            raise RunError("--batch-size and --concurrency must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise RunError("--limit must be at least 1")

    @property
    def seed(self) -> int:
        return self.run.seed or 0

    def record(self) -> dict[str, Any]:
        """The JSON record of ``config.json``: the run's own settings, then the run specification's sections."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "run"}
        own = {k: (str(v) if isinstance(v, Path) else v) for k, v in own.items()}
        return {**own, **self.run.to_dict(), "seed": self.seed}


def make_backend(name: str, model: str | None = None, base_url: str | list[str] | None = None,
                 **options: Any) -> Any:
    """A backend by registered name or ``module:attr`` import path (`mmreason.backends.get_backend`)."""
    from mmreason.backends import get_backend

    kwargs = {k: v for k, v in {"model": model, "base_url": base_url, **options}.items() if v is not None}
    return get_backend(name, **kwargs)


def case_seed(seed: int, task: str, case_id: str) -> int:
    """A per-case seed that does not depend on order, batching or resume."""
    return int(hashlib.sha256(f"{seed}:{task}:{case_id}".encode()).hexdigest()[:8], 16)


def safe_name(case_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)


# --------------------------------------------------------------------------- provenance

def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the source tree, None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("mmreason", "torch", "transformers", "numpy", "datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def task_provenance(loaded: LoadedTask) -> dict[str, Any]:
    spec = loaded.spec
    return {
        "data_dir": str(loaded.root), "split": spec.split, "n_cases": len(loaded.cases),
        "annotation_files": loaded.files, "sha256": loaded.sha256, "sha256_pinned": spec.sha256,
        "checksum_ok": loaded.checksum_ok, "hf_id": spec.hf_id, "hf_revision": spec.hf_revision,
        "prompt_hash": spec.prompt_hash(), "prompts": spec.prompts, "loader_options": loaded.options,
        "hf_snapshot": loaded.hf_snapshot,
    }


# --------------------------------------------------------------------------- one sample

def last_assistant_text(trace: Trace) -> str:
    return next((t.text for t in reversed(trace.turns) if t.role == "assistant"), "")


def score_protocols(response: str, case: Case, protocols: list[str], judge: Judge | None = None) -> dict[str, Any]:
    """``{protocol: score dict}`` for each of ``protocols`` covering the case's task (None: case outside it)."""
    out: dict[str, Any] = {}
    for name in protocols:
        protocol = get_protocol(name)
        if protocol.covers(case.task):
            score = protocol.score(response, case, judge)
            out[name] = None if score is None else score.to_dict()
    return out


def sample_row(case: Case, prompt: str, trace: Trace, latency: float, batch_size: int, trace_path: str,
               seed: int, protocol: str = DEFAULT_PROTOCOL, judge: Judge | None = None) -> dict[str, Any]:
    """The samples-file line of one finished case (its score under ``protocol`` at the top level).

    A case the protocol leaves out (MMMU open questions under VLMEvalKit) is ``not_scored`` and
    counts as incorrect in the main table; the per-protocol table leaves it out of ``n``.
    """
    response = last_assistant_text(trace)
    scores = score_protocols(response, case, [protocol], judge)
    primary = scores.get(protocol) or {"correct": False, "parsed": None, "parse_status": "not_scored"}
    case_dict = {k: v for k, v in case.to_dict().items() if k != "native"}
    usage = trace.meta.get("usage") if isinstance(trace.meta.get("usage"), dict) else None
    return {
        "id": case.id, "task": case.task, "doc_hash": doc_hash(case), "timestamp": _now(),
        "prompt_hash": _sha256(prompt), "target": case.answer, "target_hash": _sha256(case.answer),
        "prompt": prompt, "images": case.images,
        "reference": case.answer, "answer_type": case.answer_type, "subgroups": case.subgroups,
        "response": response, "loop_answer": trace.answer, "loop_status": trace.status,
        **primary, "protocol": protocol, "scores": scores,
        "latency_s": round(latency, 4), "batch_size": batch_size, "timings": trace.timings,
        "tokens": usage, "turns": sum(t.role == "assistant" for t in trace.turns),
        "tool_calls": len(trace.tool_calls()), "trace": trace_path, "seed": seed,
        "error": trace.meta.get("error"), "case": case_dict,
    }


def doc_hash(case: Case) -> str:
    """sha256 of the case as scored (question, options, answer, images), as lmms-eval's ``doc_hash``."""
    doc = {"id": case.id, "question": case.question, "options": case.options, "answer": case.answer,
           "answer_type": case.answer_type, "images": [Path(i).name for i in case.images]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- the run

@dataclass
class Verifiers:
    """The verifier functions of `mmreason.verifiers` with the kinds and PRM a run asked for."""

    module: Any
    kinds: list[str]
    prm: Any = None

    def __call__(self, case: Case, trace: Trace) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self.module.verify(case, trace, kinds=self.kinds, prm=self.prm)]


def load_verifiers(kinds: list[str], options: dict[str, Any] | None = None) -> Verifiers | None:
    """`Verifiers` for ``kinds`` (None when empty); ``prm`` needs ``options["prm_model"]``."""
    if not kinds:
        return None
    from mmreason import verifiers as module

    prm = None
    if "prm" in kinds:
        path = (options or {}).get("prm_model")
        if not path:
            raise RunError("--verifiers prm needs a process reward model: add --prm-model DIR_OR_HUB_ID")
        prm = module.PRMScorer.from_pretrained(path)
    return Verifiers(module, list(kinds), prm)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_task(config: BenchConfig, loaded: LoadedTask, backend: Any, verifiers: Verifiers | None,
             log: Callable[[str], None], judge: Judge | None = None) -> dict[str, Any]:
    """Evaluate the pending cases of one task; returns this session's throughput figures."""
    from mmreason.loop import EpisodeRequest, run_episodes

    task = loaded.spec.name
    cases = loaded.cases[: config.limit] if config.limit else loaded.cases
    samples_path = config.out / SAMPLES.format(task=task)
    done = {r["id"] for r in read_jsonl_tolerant(samples_path, repair=True)}
    if verifiers is not None:
        _keep_steps_of(config.out / STEPS.format(task=task), done)
    pending = [c for c in cases if c.id not in done]
    log(f"{task}: {len(cases)} cases, {len(done & {c.id for c in cases})} already done, {len(pending)} to run")
    if not pending:
        return {"samples": 0, "seconds": 0.0}
    loop_config = config.run.loop_config()
    options_in_prompt = loaded.spec.options_in_question
    registry = config.run.registry()
    trace_dir = config.out / "traces" / task
    trace_dir.mkdir(parents=True, exist_ok=True)

    spec = config.run.segmenter
    oracle = config.run.tools.enabled and spec.name == "reference"

    def episodes(chunk: list[Case]) -> list[Trace]:
        # oracle mode: each case's own reference masks answer segment (`grounding.segmenters.reference`)
        requests = [EpisodeRequest(inputs=c.images, question=loaded.spec.format_prompt(c),
                                   options=None if options_in_prompt else c.options,
                                   tool_options={"segmenter_options": {**spec.options(), "masks": c.masks}}
                                   if oracle else {}) for c in chunk]
        # batch 1: each case has its own seed; a batch is seeded once, by its first case
        return run_episodes(requests, backend, config=loop_config, registry=registry,
                            seed=case_seed(config.seed, task, chunk[0].id))

    def run_chunk(chunk: list[Case]) -> tuple[list[Case], list[Trace], float]:
        t0 = time.perf_counter()
        try:
            traces = episodes(chunk)
        except BackendError:
            raise  # the model is unreachable or broken: stop; the run resumes later
        except MMReasonError:
            # a case's input is unusable (unreadable image ...): isolate it, record it as an error
            traces = [_episode_or_error(episodes, case) for case in chunk]
        return chunk, traces, time.perf_counter() - t0

    samples = JsonlAppender(samples_path)
    steps = JsonlAppender(config.out / STEPS.format(task=task)) if verifiers is not None else None
    bar = _progress(len(pending), task, config.progress)
    t_start = time.perf_counter()
    n_done = 0
    try:
        chunks = list(_chunks(pending, config.batch_size))
        if config.concurrency > 1:
            pool = ThreadPoolExecutor(max_workers=config.concurrency)
            finished = pool.map(run_chunk, chunks)
        else:
            pool, finished = None, map(run_chunk, chunks)
        try:
            for chunk, traces, seconds in finished:
                for case, trace in zip(chunk, traces, strict=True):
                    rel = f"traces/{task}/{safe_name(case.id)}.json"
                    trace.meta["case_id"], trace.meta["task"] = case.id, task
                    if steps is not None:
                        steps.write({"id": case.id, "verdicts": verifiers(case, trace)})
                    if not config.trace_images:
                        _strip_view_images(trace)
                    _write_trace(trace, config.out / rel, config.trace_images)
                    samples.write(sample_row(case, loaded.spec.format_prompt(case), trace, seconds / len(chunk),
                                             len(chunk), rel, case_seed(config.seed, task, chunk[0].id),
                                             config.protocol, judge))
                    n_done += 1
                    bar.update(1)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
        samples.close()
        if steps is not None:
            steps.close()
    seconds = time.perf_counter() - t_start
    return {"samples": n_done, "seconds": round(seconds, 4)}


def _keep_steps_of(path: Path, done: set[str]) -> None:
    """Cut the steps file to one line per case in the samples file.

    A case's steps line is written before its sample line (so a sample line always points to
    complete files); a kill between the two leaves a steps line whose case runs again on resume,
    which would add a second line for it.
    """
    rows = read_jsonl_tolerant(path, repair=True)
    kept = [r for r in dedup(rows) if r.get("id") in done]
    if len(kept) != len(rows):
        rewrite_jsonl(path, kept)


def _write_trace(trace: Trace, path: Path, with_images: bool) -> None:
    """Compact trace JSON (`Trace.load` reads it). Not atomic, and need not be: the sample line
    that refers to it is written after it, so a trace cut by a kill is rewritten on resume."""
    path.write_text(json.dumps(trace.to_dict(with_images), separators=(",", ":"), default=json_default))


def _strip_view_images(trace: Trace) -> None:
    """Drop the base64 PNGs of the initial views kept in ``trace.meta`` (geometry stays)."""
    for view in trace.meta.get("views", []):
        if isinstance(view, dict):
            view.pop("image_png_b64", None)


def _episode_or_error(episodes: Callable[[list[Case]], list[Trace]], case: Case) -> Trace:
    """The case's trace, or an ``error`` trace naming the problem (scored incorrect, counted in errors)."""
    try:
        return episodes([case])[0]
    except BackendError:
        raise
    except MMReasonError as exc:
        return Trace(question=case.question, options=case.options, status="error",
                     meta={"error": f"{type(exc).__name__}: {exc}"})


def _progress(total: int, task: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=task, unit="case", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def write_config(config: BenchConfig, provenance: dict[str, Any], backend: Any) -> dict[str, Any]:
    """Write ``config.json`` (merging the provenance of earlier sessions of the same run)."""
    path = config.out / "config.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    record = config.record()
    doc = {
        **record,
        "backend_name": getattr(backend, "name", config.run.backend.name),
        "model_id": getattr(backend, "model_id", config.run.backend.model),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "tasks_provenance": {**previous.get("tasks_provenance", {}), **provenance},
        "sessions": previous.get("sessions", []) + [{"started": time.strftime("%Y-%m-%dT%H:%M:%S")}],
    }
    mismatched = [t for t, p in doc["tasks_provenance"].items() if p.get("checksum_ok") is False]
    doc["checksum_mismatch"] = mismatched
    if previous:
        changed = _changed_settings(previous, record, provenance)
        if previous.get("model_id") not in (None, doc["model_id"]):
            changed.append(f"served model: {previous['model_id']!r} -> {doc['model_id']!r}")
        if changed:
            raise RunError(f"{config.out} holds a run made with other settings ({'; '.join(changed)}); its samples "
                           "would mix with this run's. Resume with the same settings or use another --out")
    doc["sessions"][-1].update(limit=config.limit, batch_size=config.batch_size, concurrency=config.concurrency)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return doc


#: run settings that change what a sample is: a resumed run must keep them (not the backend's
#: ``base_url``: the servers may change between sessions, e.g. a lost one left out, as long as the
#: model is the same)
RUN_SETTINGS = ("backend", "seed", "loop", "tools", "split", "protocol")
#: how a changed key of a run-spec section is named in the refusal (else by the key alone)
SETTING_LABELS = {("backend", "name"): "backend", ("backend", "options"): "backend_options",
                  ("tools", "enabled"): "tools", ("tools", "names"): "tools.names"}
#: per-task provenance that must match on resume (same files, same prompts)
TASK_SETTINGS = ("data_dir", "split", "sha256", "prompt_hash", "loader_options")


def _changed_settings(previous: dict[str, Any], record: dict[str, Any], provenance: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for every sample-defining setting that differs from the earlier session."""
    changed = []
    for key in RUN_SETTINGS:
        if key not in previous:
            continue
        old, new = previous.get(key), record.get(key)
        if isinstance(old, dict) and isinstance(new, dict):  # a section of the run spec: name the keys
            for sub in sorted(set(old) | set(new)):
                if sub != "base_url" and old.get(sub) != new.get(sub):
                    label = SETTING_LABELS.get((key, sub), sub)
                    changed.append(f"{label}: {old.get(sub)!r} -> {new.get(sub)!r}")
        elif old != new:
            changed.append(f"{key}: {old!r} -> {new!r}")
    for task, now in provenance.items():
        before = previous.get("tasks_provenance", {}).get(task)
        if before:
            changed += [f"{task} {k}: {before.get(k)!r} -> {now.get(k)!r}" for k in TASK_SETTINGS
                        if before.get(k) != now.get(k)]
    return changed


def make_judge(options: dict[str, Any]) -> Judge | None:
    """The LLM judge of ``--judge-backend`` (None when no judge backend is given)."""
    if not options.get("backend"):
        return None
    return Judge(make_backend(options["backend"], options.get("model"), options.get("base_url")))


def check_protocols(protocols: list[str], tasks: list[str], judge: Judge | None) -> None:
    """Refuse, before any inference, a protocol that is unknown, lacks its judge or covers none of the tasks."""
    for name in protocols:
        protocol = get_protocol(name)
        if protocol.needs_judge and judge is None:
            raise ProtocolError(f"protocol '{name}' needs an LLM judge: add --judge-backend (e.g. openai) "
                                "with --judge-model and --judge-base-url")
        if not any(protocol.covers(t) for t in tasks):
            raise ProtocolError(f"protocol '{name}' covers none of {', '.join(tasks)} "
                                f"(it covers: {', '.join(protocol.tasks)})")


def run(config: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every task of ``config`` (resuming what is done), then score and report. Returns results."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    judge = make_judge(config.judge)
    check_protocols([config.protocol], config.tasks, judge)
    uncovered = [t for t in config.tasks if not get_protocol(config.protocol).covers(t)]
    if uncovered:
        raise ProtocolError(f"protocol '{config.protocol}' does not cover {', '.join(uncovered)}; run them under "
                            "--protocol ours and rescore with --rescore RUN --protocol P for the tasks P covers")
    config.out.mkdir(parents=True, exist_ok=True)
    loaded = {name: load_task(name, config.data, config.split, limit=config.limit, progress=config.progress,
                              options=config.data_options, download=config.download) for name in config.tasks}
    check_oracle(config, loaded)
    backend = config.run.build_backend()
    verifiers = load_verifiers(config.verifiers, config.verifier_options)
    write_config(config, {name: task_provenance(lt) for name, lt in loaded.items()}, backend)
    throughput = {name: run_task(config, lt, backend, verifiers, log, judge) for name, lt in loaded.items()}
    return results_mod.write_results(config.out, config.tasks, throughput=throughput)


def check_oracle(config: BenchConfig, loaded: dict[str, LoadedTask]) -> None:
    """Refuse, before anything is written, the oracle tool mode on a task whose cases have no reference masks."""
    if not config.run.tools.enabled or config.run.segmenter.name != "reference":
        return
    for name, lt in loaded.items():
        if not any(c.masks for c in lt.cases):
            raise RunError(f"--segmenter reference (the oracle tool mode) answers segment with each case's reference "
                           f"masks, and the cases of '{name}' have none; use it on a task with masks (deeptumorvqa "
                           "with its AbdomenAtlas segmentations, synthetic) or choose another segmenter")


def rescore(run_dir: Path, verifier_kinds: list[str] | None = None, verifier_options: dict[str, Any] | None = None,
            log: Callable[[str], None] | None = None, protocols: list[str] | None = None,
            judge: Judge | None = None) -> dict[str, Any]:
    """Re-score a finished (or interrupted) run from its samples files, without inference.

    The run's own protocol is always redone with the current code (it sets ``correct``); each of
    ``protocols`` adds or replaces that protocol's scores under ``scores`` in every sample, for
    the tasks it covers, so `results.md` shows them side by side. Protocols scored earlier and
    not named are kept as they were (a judged score is not redone without its judge). The
    samples files are rewritten atomically. With ``verifier_kinds``, the verifiers are run again
    on the saved traces.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    run_dir = Path(run_dir)
    files = check_run_dir(run_dir)
    primary = run_protocol(run_dir)
    names = list(dict.fromkeys([primary, *(protocols or [])]))
    tasks = [path.stem[len("samples_"):] for path in files]
    check_protocols(names, tasks, judge)
    verifiers = load_verifiers(verifier_kinds or [], verifier_options)
    for path, task in zip(files, tasks):
        rows = dedup(read_jsonl_tolerant(path))
        changed = 0
        new_rows = []
        verdict_rows = []
        for row in rows:
            case = case_from_row(row)
            scores = {**(row.get("scores") or {}), **score_protocols(row["response"], case, names, judge)}
            top = scores.get(primary) or {"correct": False, "parsed": None, "parse_status": "not_scored"}
            changed += top["correct"] != row.get("correct")
            new_rows.append({**row, **top, "protocol": primary, "scores": scores,
                             "doc_hash": row.get("doc_hash") or doc_hash(case)})
            if verifiers is not None:
                trace = Trace.load(run_dir / row["trace"])
                verdict_rows.append({"id": row["id"], "verdicts": verifiers(case, trace)})
        rewrite_jsonl(path, new_rows)
        if verifiers is not None:
            rewrite_jsonl(run_dir / STEPS.format(task=task), verdict_rows)
        covered = [n for n in names if get_protocol(n).covers(task)]
        log(f"{task}: rescored {len(rows)} samples under {', '.join(covered)}; {changed} changed correctness "
            f"under {primary}")
    previous = results_mod.read_results(run_dir)
    throughput = {t: previous.get("tasks", {}).get(t, {}).get("throughput") for t in tasks}
    return results_mod.write_results(run_dir, tasks, throughput=throughput, rescored=True)
