"""``mmreason bench``: evaluate a backend on registered tasks, list tasks, make or rescore runs.

Examples::

    mmreason bench --list
    mmreason bench --tasks synthetic --backend rules --limit 200
    mmreason bench --tasks vqa_rad,slake --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct \\
        --base-url http://gpu0:8000/v1 --base-url http://gpu1:8000/v1 --image-resize qwen2_5_vl \\
        --concurrency 16 --out runs/qwen7b
    mmreason bench --rescore runs/qwen7b --protocol medevalkit,lmms-eval,vlmevalkit
    mmreason bench --rescore runs/qwen7b --protocol medevalkit-judge --judge-backend openai \\
        --judge-model gpt-4.1 --judge-base-url https://api.openai.com/v1
    mmreason bench --compare runs/direct runs/tools      # also writes compare.json and compare.md
    mmreason bench --make-synthetic data/synthetic --n 200 --seed 0

Re-running the same command (same ``--out``) resumes an interrupted run. ``--backend`` also takes
``module:attr``, an importable backend factory (see `benchmarks.core.runner`). The backend, segmenter,
loop and tool options are those of ``mmreason infer`` (``--config FILE`` sets them from a file). With several
``--base-url``, requests go to the least busy live server and move to another when one is lost; a
run whose every server is gone stops and resumes later, with the same or other servers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from imaging.errors import MMReasonError
from mmreason.commands import plain

SUMMARY = "evaluate a backend on medical VQA benchmarks"


def register(subparsers: argparse._SubParsersAction) -> None:
    from mmreason.commands import run_args

    p = subparsers.add_parser("bench", help=SUMMARY, description=plain(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to do (default: run --tasks)")
    what.add_argument("--list", action="store_true", help="list the registered tasks and exit")
    what.add_argument("--rescore", metavar="RUN_DIR", help="re-score a run from its samples, without inference")
    what.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                      help="paired comparison of two runs (exact McNemar, bootstrap CI of B - A)")
    what.add_argument("--make-synthetic", metavar="DIR", help="write the synthetic grounded benchmark to DIR")
    p.add_argument("--tasks", default="", help="comma-separated task names (see --list)")
    p.add_argument("--protocol", default="",
                   help="scoring protocol (see --list): for a run, the one that sets `correct` (default ours); "
                        "with --rescore, comma-separated protocols to add side by side")
    p.add_argument("--judge-backend", help="backend of the LLM judge for the *-judge protocols (rules, hf, openai, "
                                           "module:attr)")
    p.add_argument("--judge-model", help="the judge's model (hub id, local directory or served name)")
    p.add_argument("--judge-base-url", help="the judge's OpenAI-compatible server URL")
    p.add_argument("--limit", type=int, help="only the first N cases of each task")
    p.add_argument("--batch-size", type=int, default=1, help="episodes batched per generate call (default 1)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="batches in flight at once (openai backend: requests in flight over all --base-url)")
    p.add_argument("--out", help="run folder (default runs/<backend>[-<model>]-<tasks>); reuse it to resume; "
                                 "with --compare, the folder of compare.json/.md (default RUN_B)")
    p.add_argument("--verifiers", default="", help="comma-separated verifier kinds to run per step (rule,prm)")
    p.add_argument("--prm-model", help="process reward model checkpoint for --verifiers prm")
    p.add_argument("--seed", type=int, help="base seed (default 0)")
    p.add_argument("--split", help="evaluate this split instead of each task's default")
    p.add_argument("--data", action="append", default=[], metavar="TASK=DIR",
                   help="data folder of a task (repeatable); default $MMREASON_DATA/<task> "
                        "or ~/.cache/mmreason/data/<task>")
    p.add_argument("--data-option", action="append", default=[], metavar="TASK.KEY=VALUE",
                   help="loader option of a task (repeatable), e.g. slake.language=zh (en, zh, all), "
                        "omnimedvqa.access=all; VALUE is read as JSON when it parses")
    p.add_argument("--download", action="store_true",
                   help="fetch a task missing locally from its hub id at the pinned revision (huggingface_hub); "
                        "offline (HF_HUB_OFFLINE=1) only the hub cache is used")
    p.add_argument("--trace-images", action="store_true", help="keep rendered images inside saved traces")
    p.add_argument("--no-tools", action="store_true",
                   help="direct answering without tools: the baseline for the impact of reasoning (see --compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--n", type=int, default=200, help="cases for --make-synthetic (default 200)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    run_args.add_run_arguments(p, loader=False)  # each task's loader reads its own images
    p.set_defaults(func=run)


def _split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _data_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        task, sep, folder = item.partition("=")
        if not sep or not task or not folder:
            raise MMReasonError(f"--data expects TASK=DIR, got '{item}'")
        out[task.strip()] = folder.strip()
    return out


def _data_options(items: list[str]) -> dict[str, dict[str, object]]:
    from mmreason.commands import run_args

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, name = key.partition(".")
        if not sep or not dot or not task.strip() or not name.strip():
            raise MMReasonError(f"--data-option expects TASK.KEY=VALUE (e.g. slake.language=zh), got '{item}'")
        out.setdefault(task.strip(), {}).update(run_args.parse_key_values([f"{name.strip()}={value}"]))
    return out


def _list_tasks(data: dict[str, str], as_json: bool) -> int:
    from benchmarks.protocols import PROTOCOLS
    from benchmarks.core.tasks import REGISTRY, data_dir, local_count

    rows = []
    for name, spec in REGISTRY.items():
        rows.append({"name": name, "n_local": local_count(name, data), "data_dir": str(data_dir(name, data)),
                     "hf": f"{spec.hf_id}@{spec.hf_revision}" if spec.hf_id else None,
                     "answer_types": list(spec.answer_types), "split": spec.split, "title": spec.title,
                     "protocols": [p for p, proto in PROTOCOLS.items() if proto.covers(name)]})
    protocols = [{"name": p.name, "judge": p.needs_judge, "tasks": p.tasks, "title": p.title, "source": p.source}
                 for p in PROTOCOLS.values()]
    if as_json:
        print(json.dumps({"tasks": rows, "protocols": protocols}, indent=1))
        return 0
    print(f"{'task':<15} {'n':>7}  {'answer types':<22} source")
    for r in rows:
        n = str(r["n_local"]) if r["n_local"] is not None else "-"
        print(f"{r['name']:<15} {n:>7}  {','.join(r['answer_types']):<22} {r['data_dir']}"
              + (f"  (hf: {r['hf']})" if r["hf"] else "") + f"  [{r['split']}] {r['title']}")
    print(f"\n{'protocol':<17} {'judge':<6} {'tasks':<40} rules")
    for p in protocols:
        tasks = "all" if p["tasks"] == ["*"] else ",".join(t for t in p["tasks"] if t != "*")
        print(f"{p['name']:<17} {'yes' if p['judge'] else 'no':<6} {tasks:<40} {p['title']}")
    return 0


def _print_results(results: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=1, default=str))
        return
    for task, s in results["tasks"].items():
        acc = s["accuracy"]
        line = (f"{task}: n={s['n']} accuracy={100 * acc['value']:.1f}% "
                f"[{100 * acc['low']:.1f}, {100 * acc['high']:.1f}] unparsed={s['parse_status']['unparsed']}")
        sps = (s.get("throughput") or {}).get("samples_per_s")
        if sps:
            line += f" samples/s={sps:.3g}"
        print(line)
        for name, p in s.get("protocols", {}).items():
            groups = " ".join(f"{g}={100 * v['value']:.1f}% (n={v['n']})" for g, v in p["groups"].items())
            print(f"  {name}{' (judge)' if p['judged'] else ''}: accuracy={100 * p['accuracy']['value']:.1f}% "
                  f"n={p['n']} {groups} guessed={p['guessed']}")
    if results.get("run_dir"):
        print(f"results: {Path(results['run_dir']) / 'results.md'}")


def run(args: argparse.Namespace) -> int:
    from benchmarks.core import runner
    from mmreason.commands.run_args import run_spec_from_args

    data = _data_overrides(args.data)
    kinds = _split_list(args.verifiers)
    verifier_options = {"prm_model": args.prm_model} if args.prm_model else {}
    if args.list:
        return _list_tasks(data, args.json)
    if args.make_synthetic:
        from benchmarks.core.synthetic import make_synthetic

        path = make_synthetic(Path(args.make_synthetic), n=args.n, seed=args.seed or 0,
                              progress=not args.no_progress)
        print(path)
        return 0
    judge_options = {"backend": args.judge_backend, "model": args.judge_model, "base_url": args.judge_base_url}
    if args.compare:
        from benchmarks.core.results import compare_runs

        doc = compare_runs(Path(args.compare[0]), Path(args.compare[1]), _split_list(args.tasks) or None,
                           seed=args.seed or 0, out=Path(args.out) if args.out else None)
        if args.json:
            print(json.dumps(doc, indent=1))
            return 0
        for task, c in doc["tasks"].items():
            print(f"{task}: n={c['n']} A={100 * c['acc_a']:.1f}% B={100 * c['acc_b']:.1f}% "
                  f"B-A={100 * c['diff']:+.1f} [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}] "
                  f"McNemar p={c['mcnemar_p']:.4g} (b={c['b']}, c={c['c']})")
            if "reasoning_impact" in c:
                print(f"{task}: impact of reasoning (with tools - direct) {100 * c['reasoning_impact']:+.1f} points")
        print(f"written: {', '.join(doc['files'])}")
        return 0
    if args.rescore:
        results = runner.rescore(Path(args.rescore), kinds, verifier_options, protocols=_split_list(args.protocol),
                                 judge=runner.make_judge(judge_options))
        _print_results(results, args.json)
        return 0
    tasks = _split_list(args.tasks)
    if not tasks:
        raise MMReasonError("give --tasks (comma-separated; see mmreason bench --list), or --list/--rescore/--compare")
    spec = run_spec_from_args(args)
    name, options = spec.backend.resolve()  # refuses an unknown backend or options it would ignore, before any work
    out = args.out or _default_out(name, options.get("model"), tasks)
    config = runner.BenchConfig(
        tasks=tasks, out=Path(out), run=spec, limit=args.limit, batch_size=args.batch_size,
        concurrency=args.concurrency, verifiers=kinds, split=args.split, data=data, trace_images=args.trace_images,
        progress=not args.no_progress, verifier_options=verifier_options,
        protocol=args.protocol or "ours", judge={k: v for k, v in judge_options.items() if v},
        data_options=_data_options(args.data_option), download=args.download,
    )
    _print_results(runner.run(config), args.json)
    return 0


def _default_out(backend: str, model: str | None, tasks: list[str]) -> str:
    parts = [backend] + ([Path(model).name] if model else []) + ["+".join(tasks)]
    return str(Path("runs") / re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(parts)))
