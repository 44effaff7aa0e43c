"""From samples files to ``results.json``, ``results.md`` and plots; paired comparison of two runs.

Metrics per task (all from the samples file, so a rescore reproduces them exactly):

* ``accuracy``: share of cases scored correct (`benchmarks.core.scoring`), with a Wilson 95% interval;
* ``by_answer_type``: the same per answer type;
* ``open_recall>=0.5``: for open questions, the share whose token recall reaches
  `OPEN_RECALL_THRESHOLD` (named with its threshold, never mixed into ``accuracy``), and
  ``open_mean_recall``;
* ``parse_status``: how many responses each parsing rule read (``unparsed`` counts as wrong);
* ``subgroups``: accuracy with intervals per value of each of the task's subgroup keys;
* ``throughput``: cases, seconds and samples/s of the last session that ran inference;
* ``step_metrics``: `mmreason.verifiers.step_metrics` on the traces and verdicts, when the run
  has ``steps_<task>.jsonl``;
* ``protocols``: the same predictions under every scoring protocol the samples were scored with
  (`benchmarks.protocols`; ``bench --rescore RUN --protocol P`` adds one): accuracy, closed/open
  by that protocol's own split rule, token F1 of open answers where it reports one, and how many
  options it guessed or an LLM judged.

``results.json`` also carries the lmms-eval layout under ``results``: per task a flat dict keyed
``"<metric>,<filter>"`` (``"accuracy,ours"``, ``"accuracy,medevalkit"``, ``"accuracy_stderr,ours"``
...; the filter is the protocol, the answer extraction lmms-eval calls a filter), with ``alias``,
next to ``n-samples``, ``config`` and ``date``. Sample lines carry ``doc_hash`` and ``timestamp``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from mmreason.trace import Trace
from mmreason.verifiers.metrics import reasoning_impact

from benchmarks.core.plots import flat_metrics, write_plots
from benchmarks.core.run_folder import RunError, case_from_row, check_run_dir, dedup, read_jsonl_tolerant
from benchmarks.core.scoring import OPEN_RECALL_THRESHOLD, PARSE_STATUSES
from benchmarks.core.stats import compare_paired, wilson_interval
from benchmarks.core.tasks import REGISTRY

#: protocols in the order results.md shows them
PROTOCOL_ORDER = ("ours", "strict", "lmms-eval", "medevalkit", "medevalkit-judge", "vlmevalkit", "vlmevalkit-judge",
                  "deeptumorvqa")

RECALL_METRIC = f"open_recall>={OPEN_RECALL_THRESHOLD:g}"


def _rows(path: Path) -> list[dict[str, Any]]:
    return dedup(read_jsonl_tolerant(path))


def summarize_task(rows: list[dict[str, Any]], subgroup_keys: list[str] | None = None) -> dict[str, Any]:
    """Metrics of one task's sample rows (see the module docstring)."""
    correct = [bool(r["correct"]) for r in rows]
    out: dict[str, Any] = {"n": len(rows), "accuracy": wilson_interval(sum(correct), len(rows)).to_dict()}
    by_type: dict[str, list[bool]] = defaultdict(list)
    for r, c in zip(rows, correct):
        by_type[r["answer_type"]].append(c)
    out["by_answer_type"] = {t: wilson_interval(sum(v), len(v)).to_dict() for t, v in sorted(by_type.items())}
    recalls = [r["recall"] for r in rows if r["answer_type"] == "open" and r.get("recall") is not None]
    if by_type.get("open"):
        opened = len(by_type["open"])
        hits = sum(x >= OPEN_RECALL_THRESHOLD for x in recalls)
        out[RECALL_METRIC] = wilson_interval(hits, opened).to_dict()
        out["open_mean_recall"] = sum(recalls) / opened
    counts = Counter(r["parse_status"] for r in rows)
    out["parse_status"] = {s: counts.get(s, 0) for s in PARSE_STATUSES} | \
        {s: n for s, n in counts.items() if s not in PARSE_STATUSES}
    out["errors"] = sum(1 for r in rows if r.get("error"))
    keys = subgroup_keys if subgroup_keys is not None else sorted({k for r in rows for k in r.get("subgroups", {})})
    subgroups: dict[str, dict[str, Any]] = {}
    for key in keys:
        groups: dict[str, list[bool]] = defaultdict(list)
        for r, c in zip(rows, correct):
            if key in r.get("subgroups", {}):
                groups[str(r["subgroups"][key])].append(c)
        subgroups[key] = {v: wilson_interval(sum(g), len(g)).to_dict() for v, g in sorted(groups.items())}
    out["subgroups"] = subgroups
    out["mean_tool_calls"] = sum(r.get("tool_calls", 0) for r in rows) / len(rows) if rows else 0.0
    out["mean_latency_s"] = sum(r.get("latency_s", 0.0) for r in rows) / len(rows) if rows else 0.0
    out["protocols"] = summarize_protocols(rows)
    return out


def summarize_protocols(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per protocol found in the rows' ``scores``: accuracy, closed/open by its own split, guesses, judge use."""
    names = sorted({p for r in rows for p in (r.get("scores") or {})},
                   key=lambda p: (PROTOCOL_ORDER.index(p) if p in PROTOCOL_ORDER else len(PROTOCOL_ORDER), p))
    out: dict[str, Any] = {}
    for name in names:
        scored = [(r, r["scores"][name]) for r in rows if (r.get("scores") or {}).get(name) is not None]
        groups: dict[str, list[bool]] = defaultdict(list)
        for r, sc in scored:
            groups[sc.get("group") or r["answer_type"]].append(bool(sc["correct"]))
        f1 = [sc["metrics"]["f1"] for _, sc in scored if (sc.get("metrics") or {}).get("f1") is not None]
        out[name] = {
            "n": len(scored), "not_scored": len(rows) - len(scored),
            "accuracy": wilson_interval(sum(bool(sc["correct"]) for _, sc in scored), len(scored)).to_dict(),
            "groups": {g: wilson_interval(sum(v), len(v)).to_dict() for g, v in sorted(groups.items())},
            "open_token_f1": sum(f1) / len(f1) if f1 else None,
            "guessed": sum(bool(sc.get("guessed")) for _, sc in scored),
            "judged": sum(bool(sc.get("judged")) for _, sc in scored),
            "rules": dict(Counter(sc["parse_status"] for _, sc in scored)),
        }
    return out


def lmms_eval_results(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task metrics keyed ``"<metric>,<protocol>"`` as lmms-eval writes them (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    for task, s in doc["tasks"].items():
        entry: dict[str, Any] = {"alias": task}
        for name, p in s.get("protocols", {}).items():
            acc = p["accuracy"]
            entry[f"accuracy,{name}"] = acc["value"]
            entry[f"accuracy_stderr,{name}"] = (acc["value"] * (1 - acc["value"]) / acc["n"]) ** 0.5 if acc["n"] else None
            for group, g in p["groups"].items():
                entry[f"{group}_accuracy,{name}"] = g["value"]
            if p["open_token_f1"] is not None:
                entry[f"open_token_f1,{name}"] = p["open_token_f1"]
        out[task] = entry
    return out


def task_step_metrics(run_dir: Path, task: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`mmreason.verifiers.step_metrics` for a task whose run has verdicts, else None."""
    steps_path = run_dir / f"steps_{task}.jsonl"
    if not steps_path.exists():
        return None
    from mmreason import verifiers
    from mmreason.verifiers import StepVerdict

    verdicts_by_id = {r["id"]: r["verdicts"] for r in read_jsonl_tolerant(steps_path)}
    kept = [r for r in rows if r["id"] in verdicts_by_id]
    if not kept:
        return None
    cases = [case_from_row(r) for r in kept]
    traces = [Trace.load(run_dir / r["trace"]) for r in kept]
    verdicts = [[StepVerdict.from_dict(v) for v in verdicts_by_id[r["id"]]] for r in kept]
    return verifiers.step_metrics(cases, traces, verdicts)


def read_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_results(run_dir: Path, tasks: list[str], throughput: dict[str, Any] | None = None,
                  rescored: bool = False) -> dict[str, Any]:
    """Summarise every task's samples into ``results.json``, ``results.md`` and plots."""
    run_dir = Path(run_dir)
    previous = read_results(run_dir).get("tasks", {})
    doc: dict[str, Any] = {"run_dir": str(run_dir), "rescored": rescored, "tasks": {}}
    for task in tasks:
        rows = _rows(run_dir / f"samples_{task}.jsonl")
        spec = REGISTRY.get(task)
        summary = summarize_task(rows, list(spec.subgroup_keys) if spec else None)
        tp = (throughput or {}).get(task)
        if not tp or not tp.get("samples"):  # nothing ran this session: keep the last measured figure
            tp = previous.get(task, {}).get("throughput") or tp
        if tp and tp.get("samples"):
            tp = {**tp, "samples_per_s": round(tp["samples"] / tp["seconds"], 4) if tp["seconds"] else None}
        summary["throughput"] = tp
        summary["step_metrics"] = task_step_metrics(run_dir, task, rows)
        doc["tasks"][task] = summary
    config = _run_config(run_dir)
    doc["protocol"] = config.get("protocol") or "ours"
    doc["results"] = lmms_eval_results(doc)
    doc["n-samples"] = {t: {"original": s["n"], "effective": s["n"]} for t, s in doc["tasks"].items()}
    doc["config"] = {k: config.get(k) for k in ("backend", "segmenter", "loop", "seed", "protocol")}
    doc["config"]["tools"] = _tools_offered(config)  # the tool mode: with tools or direct answers
    doc["date"] = time.time()
    doc["git_hash"] = config.get("git_commit")
    (run_dir / "results.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (run_dir / "results.md").write_text(markdown(doc))
    doc["plots"] = [str(p) for p in write_plots(doc, run_dir / "plots")]
    (run_dir / "results.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return doc


def _pct(p: dict[str, Any]) -> str:
    if not p["n"]:
        return "n/a"
    return f"{100 * p['value']:.1f} [{100 * p['low']:.1f}, {100 * p['high']:.1f}]"


def markdown(doc: dict[str, Any]) -> str:
    """A results table per task: overall, by answer type, by subgroup; step metrics when present."""
    lines = ["# Results", "", f"Accuracy in % with Wilson 95% intervals, scored with protocol `{doc.get('protocol', 'ours')}` "
             "(benchmarks/protocols).", "",
             f"| task | n | accuracy | {RECALL_METRIC} | unparsed | samples/s |", "|---|---|---|---|---|---|"]
    for task, s in doc["tasks"].items():
        recall = _pct(s[RECALL_METRIC]) if RECALL_METRIC in s else "-"
        sps = (s.get("throughput") or {}).get("samples_per_s")
        lines.append(f"| {task} | {s['n']} | {_pct(s['accuracy'])} | {recall} | {s['parse_status']['unparsed']} | "
                     f"{sps if sps is not None else '-'} |")
    lines += protocols_markdown(doc)
    for task, s in doc["tasks"].items():
        lines += ["", f"## {task}", "", "| group | value | n | accuracy |", "|---|---|---|---|"]
        for t, p in s["by_answer_type"].items():
            lines.append(f"| answer_type | {t} | {p['n']} | {_pct(p)} |")
        for key, groups in s["subgroups"].items():
            if key == "answer_type":
                continue
            for value, p in groups.items():
                lines.append(f"| {key} | {value or '(none)'} | {p['n']} | {_pct(p)} |")
        if s.get("step_metrics"):
            lines += ["", "| step metric | value |", "|---|---|"]
            for k, v in flat_metrics(s["step_metrics"]).items():
                lines.append(f"| {k} | {v:.4g} |")
    return "\n".join(lines) + "\n"


def _group_cell(p: dict[str, Any] | None) -> str:
    return "-" if p is None else f"{_pct(p)} (n={p['n']})"


def protocols_markdown(doc: dict[str, Any]) -> list[str]:
    """The side-by-side table: every task under every protocol its samples were scored with."""
    rows = [(task, name, p) for task, s in doc["tasks"].items() for name, p in s.get("protocols", {}).items()]
    if not rows:
        return []
    lines = ["", "## The same predictions under each scoring protocol", "",
             "Closed/open follow each protocol's own split rule (MedEvalKit: closed = a yes/no reference on "
             "VQA-RAD and PathVQA). guessed: options picked without being read; judged: scores decided by an LLM "
             "judge. See benchmarks/protocols.", "",
             "| task | protocol | n | accuracy | closed | open | open token F1 | guessed | judged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, name, p in rows:
        closed, opened = (_group_cell(p["groups"].get(g)) for g in ("closed", "open"))
        f1 = "-" if p["open_token_f1"] is None else f"{p['open_token_f1']:.3f}"
        judge = " (judge)" if p["judged"] else ""
        lines.append(f"| {task} | {name}{judge} | {p['n']} | {_pct(p['accuracy'])} | {closed} | {opened} | {f1} | "
                     f"{p['guessed']} | {p['judged']} |")
    # a protocol that reports by its own groups (DeepTumorVQA's stages) gets them listed under the table
    for task, name, p in rows:
        own = {g: v for g, v in p["groups"].items() if g not in ("closed", "open", "choice", "numeric")}
        if own:
            lines.append(f"\n{task} under {name}, by its groups: "
                         + "; ".join(f"{g} {_group_cell(v)}" for g, v in own.items()))
    return lines


def _tools_offered(config: dict[str, Any]) -> bool:
    """Whether a run offered tools: its run spec's ``tools.enabled`` (a plain flag in older runs)."""
    tools = config.get("tools", True)
    return bool(tools.get("enabled", True)) if isinstance(tools, dict) else bool(tools)


def compare_runs(run_a: Path, run_b: Path, tasks: list[str] | None = None, n_boot: int = 10000,
                 seed: int = 0, out: Path | None = None) -> dict[str, Any]:
    """Paired comparison (exact McNemar, bootstrap CI of B - A) on the cases both runs scored.

    When one run answered directly (``bench --no-tools``) and the other with tools, each task
    also gets ``reasoning_impact``: accuracy with tools minus direct, on the same cases. Both
    folders must be run folders (`benchmarks.core.run_folder.check_run_dir` raises otherwise); the
    comparison is written to ``out`` (default: ``run_b``) as ``compare.json`` and ``compare.md``.
    """
    check_run_dir(Path(run_a))
    check_run_dir(Path(run_b))
    doc: dict[str, Any] = {"run_a": str(run_a), "run_b": str(run_b), "tasks": {}, "skipped": {}}
    tools_a, tools_b = (_tools_offered(_run_config(r)) for r in (run_a, run_b))
    names = tasks or sorted(p.stem[len("samples_"):] for p in Path(run_a).glob("samples_*.jsonl"))
    for task in names:
        a = {r["id"]: bool(r["correct"]) for r in _rows(Path(run_a) / f"samples_{task}.jsonl")}
        b = {r["id"]: bool(r["correct"]) for r in _rows(Path(run_b) / f"samples_{task}.jsonl")}
        common = sorted(set(a) & set(b))
        if not common:
            doc["skipped"][task] = f"no common cases ({len(a)} in A, {len(b)} in B)"
            print(f"compare: no common cases for task {task}", file=sys.stderr)
            continue
        task_doc = compare_paired([a[i] for i in common], [b[i] for i in common], n_boot=n_boot,
                                  seed=seed).to_dict() | {"only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a))}
        if tools_a != tools_b:
            with_tools, direct = (a, b) if tools_a else (b, a)
            task_doc["reasoning_impact"] = reasoning_impact({i: with_tools[i] for i in common},
                                                            {i: direct[i] for i in common})["impact"]
        doc["tasks"][task] = task_doc
    if not doc["tasks"]:
        raise RunError(f"{run_a} and {run_b} have no task with cases in common ({'; '.join(doc['skipped'].values())}"
                       ") ; compare two runs of the same tasks")
    folder = Path(out) if out else Path(run_b)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(json.dumps(doc, indent=1) + "\n")
    (folder / "compare.md").write_text(compare_markdown(doc))
    doc["files"] = [str(folder / "compare.json"), str(folder / "compare.md")]
    return doc


def compare_markdown(doc: dict[str, Any]) -> str:
    lines = ["# Paired comparison", "", f"A: `{doc['run_a']}`  B: `{doc['run_b']}`", "",
             "Exact McNemar test on the discordant pairs (b: A right and B wrong, c: the reverse); paired "
             "bootstrap 95% interval of B - A in points.", "",
             "| task | n | A | B | B - A [95% CI] | McNemar p | b | c | impact of reasoning |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, c in doc["tasks"].items():
        impact = f"{100 * c['reasoning_impact']:+.1f}" if "reasoning_impact" in c else "-"
        lines.append(f"| {task} | {c['n']} | {100 * c['acc_a']:.1f} | {100 * c['acc_b']:.1f} | "
                     f"{100 * c['diff']:+.1f} [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}] | "
                     f"{c['mcnemar_p']:.4g} | {c['b']} | {c['c']} | {impact} |")
    for task, why in doc.get("skipped", {}).items():
        lines.append(f"| {task} | skipped: {why} | | | | | | | |")
    return "\n".join(lines) + "\n"


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}
