"""Proof that training learns: a tiny Qwen-VL, SFT then GRPO, on the synthetic benchmark, on a CPU.

    python benchmarks/learn_tiny.py --out runs/learn_tiny            # about 10 minutes on 2 cores

Steps (each training stage is the ``mmreason train`` command a user runs, started as a subprocess,
so this script needs nothing from ``train`` but its command line):

1. build a tiny Qwen2.5-VL (``python -m train.tiny``: hidden 128, 2 layers, random weights);
2. write a training synthetic set (seed 0) and a held-out set (seed 1: other phantoms);
3. ``mmreason train sft``: demonstrations by the rules backend on the training cases of those
   families (only correct episodes kept), loss on assistant tokens; by default the demonstrations
   are short (``data.short_demos``: cut after the finding call, e.g. ``segment nodule``, and ended
   with the bare ``<answer>Yes [E1]</answer>`` tag), since a tiny model garbles the rules backend's
   measure/crop follow-ups and long explanations (``--full-demos`` keeps them);
4. the held-out evaluation uses the chosen families (``--families``; default the two presence
   questions, yes/no, chance 0.5) that the rules expert demonstrated at least ``--min-demos`` times;
5. ``mmreason train eval`` on the base model and the SFT checkpoint;
6. ``mmreason train grpo`` from the SFT checkpoint on the training prompts of those families, with
   at most ``--grpo-tool-iterations`` rounds of calls (the short demonstrations need 1-2) so
   rollouts reach an answer, sampled at ``--grpo-temperature`` so a group's rewards differ;
7. ``mmreason train eval`` on the GRPO checkpoint; then the SFT and GRPO checkpoints again with
   sampling at the rollout temperature (``--eval-samples`` episodes per case): GRPO optimises the
   sampled policy, and once SFT saturates greedy accuracy only a sampled evaluation can show it;
8. ``results.json``, ``results.md`` and PNG plots (SFT loss, GRPO rewards and tool-call rate per
   step, before/after bars) in ``--out``.

Held-out figures: valid tool-call rate (well-formed calls / attempted calls), tool-call rate
(episodes with a call), answer accuracy (with the chance level of the same cases and the accuracy
of always giving their most frequent answer), mean grounding IoU and mean reward (the GRPO reward,
same weights). Rerunning with the same ``--out`` resumes: finished stages are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: tools of the tiny run: ``view`` is left out (no synthetic family needs it) to keep prompts short
TINY_TOOLS = ["crop", "segment", "measure"]
#: segment targets the synthetic families use (nodules, liver lesions, lungs, liver, spleen)
TINY_TARGETS = ["nodule", "lesion", "lungs", "liver", "spleen"]


def sh(args: list[str], log: Path) -> None:
    """Run a command with its output appended to ``log``; raise with the log's tail on failure."""
    env = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(args)}\n")
        f.flush()
        code = subprocess.call(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"command failed ({code}): {' '.join(args)}\n{tail}")


def mmreason(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmreason", *args]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def evaluate(name: str, checkpoint: Path, config: Path, out: Path, log: Path, temperature: float = 0.0,
             samples: int = 1) -> dict[str, Any]:
    result = out / f"eval_{name}.json"
    if not result.exists():
        sh(mmreason("train", "eval", "--config", str(config), "--checkpoint", str(checkpoint), "--out", str(result),
                    "--temperature", str(temperature), "--samples", str(samples)), log)
    return with_majority(json.loads(result.read_text()))


def with_majority(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's summary plus ``majority_accuracy``: the accuracy of always giving the most
    frequent reference answer of these cases (held-out yes/no sets are rarely balanced, so this
    is the baseline to beat besides the chance level)."""
    refs = [str(c.get("reference", "")).strip().lower() for c in evaluation.get("cases", [])]
    majority = max(refs.count(r) for r in set(refs)) / len(refs) if refs else None
    return evaluation["summary"] | {"majority_accuracy": majority}


def plots(out: Path, evals: dict[str, dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    sft = [r for r in read_jsonl(out / "sft" / "metrics.jsonl") if "loss" in r]
    if sft:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["step"] for r in sft], [r["loss"] for r in sft], label="loss (assistant tokens)")
        if "mean_token_accuracy" in sft[0]:
            ax2 = ax.twinx()
            ax2.plot([r["step"] for r in sft], [r["mean_token_accuracy"] for r in sft], color="tab:orange",
                     label="token accuracy")
            ax2.set_ylabel("token accuracy")
            ax2.set_ylim(0, 1)
        ax.set_xlabel("SFT step")
        ax.set_ylabel("loss")
        ax.set_title("SFT cold start")
        fig.tight_layout()
        paths.append(out / "sft_curve.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    grpo = [r for r in read_jsonl(out / "grpo" / "metrics.jsonl") if "reward" in r]
    if grpo:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.5))
        steps = [r["step"] for r in grpo]
        ax.plot(steps, [r["reward"] for r in grpo], label="total", linewidth=2)
        for key in sorted({k for r in grpo for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
            ax.plot(steps, [r.get(key) for r in grpo], label=key.split("/")[1].replace("_reward", ""), alpha=0.7)
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("mean reward")
        ax.legend(fontsize=7)
        ax.set_title("GRPO rewards (training rollouts)")
        for key, label in (("rollouts/tool_call_rate", "rollouts with a call"),
                           ("rollouts/valid_tool_call_rate", "rollouts with a valid call"),
                           ("tools/failure_frequency", "failing calls (TRL)")):
            if any(key in r for r in grpo):
                bx.plot(steps, [r.get(key) for r in grpo], label=label)
        bx.set_ylim(-0.05, 1.05)
        bx.set_xlabel("GRPO step")
        bx.legend(fontsize=7)
        bx.set_title("tool use during GRPO")
        fig.tight_layout()
        paths.append(out / "grpo_curves.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    metrics = ["valid_tool_call_rate", "tool_call_rate", "accuracy", "mean_grounding_iou", "mean_reward"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(evals))
    for i, (name, summary) in enumerate(evals.items()):
        ax.bar([j + i * width for j in range(len(metrics))], [summary.get(m) or 0.0 for m in metrics], width,
               label=name)
    ax.set_xticks([j + width * (len(evals) - 1) / 2 for j in range(len(metrics))], metrics, fontsize=7)
    ax.legend()
    ax.set_title("held-out synthetic cases")
    fig.tight_layout()
    paths.append(out / "before_after.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def table(evals: dict[str, dict[str, Any]]) -> str:
    rows = [("valid tool-call rate", "valid_tool_call_rate"), ("episodes with a tool call", "tool_call_rate"),
            ("answer accuracy", "accuracy"), ("chance accuracy", "chance_accuracy"),
            ("majority-answer accuracy", "majority_accuracy"),
            ("mean grounding IoU", "mean_grounding_iou"), ("mean reward", "mean_reward"),
            ("answered (closed <answer>)", "answered_rate")]
    names = list(evals)
    lines = ["| held-out | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in rows:
        cells = [evals[n].get(key) for n in names]
        lines.append(f"| {label} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/learn_tiny"))
    p.add_argument("--train-cases", type=int, default=384, help="synthetic training cases (seed 0)")
    p.add_argument("--heldout-cases", type=int, default=192, help="synthetic held-out cases (seed 1)")
    p.add_argument("--eval-limit", type=int, default=64,
                   help="held-out cases evaluated (enough that both answers of a yes/no family occur)")
    p.add_argument("--sft-steps", type=int, default=200)
    p.add_argument("--grpo-steps", type=int, default=24)
    p.add_argument("--grpo-temperature", type=float, default=0.8,
                   help="rollout sampling temperature: high enough that a group's rollouts differ in reward")
    p.add_argument("--grpo-tool-iterations", type=int, default=2,
                   help="rounds of tool calls per GRPO rollout (the short demonstrations use 1-2)")
    p.add_argument("--full-demos", action="store_true",
                   help="SFT on the rules backend's whole episodes (measure/crop calls, explanation) "
                        "instead of short demonstrations")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="SFT learning rate")
    p.add_argument("--grpo-lr", type=float, default=2e-4)
    p.add_argument("--grpo-batch", type=int, default=4, help="rollouts per GRPO step (4 generations per prompt)")
    p.add_argument("--families", default="nodule_presence,liver_lesion_presence",
                   help="comma-separated synthetic families to train and evaluate on ('' for all)")
    p.add_argument("--min-demos", type=int, default=4, help="a family is evaluated when it has this many demos")
    p.add_argument("--eval-samples", type=int, default=4,
                   help="sampled episodes per held-out case for the sft/grpo evaluation at the rollout "
                        "temperature (0: greedy evaluation only)")
    args = p.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "learn_tiny.log"
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def mark(stage: str) -> None:
        timings[stage] = round(time.perf_counter() - t0 - sum(timings.values()), 1)
        print(f"[{time.perf_counter() - t0:6.0f} s] {stage} done", flush=True)

    model = out / "model"
    if not (model / "config.json").exists():
        sh([sys.executable, "-m", "train.tiny", str(model), "--hidden-size", str(args.hidden_size)], log)
    from benchmarks.core.synthetic import make_synthetic

    train_dir, heldout_dir = out / "synthetic_train", out / "synthetic_heldout"
    for folder, n, seed in ((train_dir, args.train_cases, 0), (heldout_dir, args.heldout_cases, 1)):
        if not (folder / "synthetic.json").exists():
            make_synthetic(folder, n=n, seed=seed)
    mark("model and data")

    common = {"model": {"dtype": "float32"},
              "env": {"tools": TINY_TOOLS, "segment_targets": TINY_TARGETS, "max_turns": 5, "max_new_tokens": 160}}
    cpu = {"bf16": False, "use_cpu": True, "seed": 0, "report_to": "none", "logging_steps": 1,
           "save_total_limit": 1}
    sft_cfg = write_yaml(out / "sft.yaml", common | {
        "model": {**common["model"], "name_or_path": str(model)},
        "data": {"task": "synthetic", "data_dir": str(train_dir), "start": 0,
                 "families": [f for f in args.families.split(",") if f], "short_demos": not args.full_demos},
        "training": cpu | {"output_dir": str(out / "sft"), "max_steps": args.sft_steps,
                           "per_device_train_batch_size": 1, "learning_rate": args.lr,
                           "lr_scheduler_type": "cosine", "warmup_steps": 10, "save_steps": 40},
    })
    if not (out / "sft" / "final" / "config.json").exists():
        sh(mmreason("train", "sft", "--config", str(sft_cfg)), log)
    mark("sft")
    demos = json.loads((out / "sft" / "demonstrations.json").read_text())["demonstrations"]
    families = sorted(f for f, k in demos["kept_by_family"].items() if k >= args.min_demos)
    if not families:
        raise SystemExit(f"the rules backend kept no family with >= {args.min_demos} demonstrations: {demos}")
    eval_cfg = write_yaml(out / "eval.yaml", common | {
        "model": {**common["model"], "name_or_path": str(model)},
        "data": {"task": "synthetic", "data_dir": str(heldout_dir), "families": families, "start": 0,
                 "eval_start": 0, "eval_limit": args.eval_limit},
        "training": {"output_dir": str(out / "eval")},
    })
    evals = {"base": evaluate("base", model, eval_cfg, out, log)}
    evals["sft"] = evaluate("sft", out / "sft" / "final", eval_cfg, out, log)
    mark("eval base + sft")
    grpo_cfg = write_yaml(out / "grpo.yaml", common | {
        "model": {**common["model"], "name_or_path": str(out / "sft" / "final")},
        "data": {"task": "synthetic", "data_dir": str(train_dir), "families": families, "start": 0},
        "training": cpu | {"output_dir": str(out / "grpo"), "max_steps": args.grpo_steps,
                           "per_device_train_batch_size": args.grpo_batch, "num_generations": 4,
                           "learning_rate": args.grpo_lr, "max_completion_length": 2048,
                           "max_tool_calling_iterations": args.grpo_tool_iterations,
                           "temperature": args.grpo_temperature,
                           "beta": 0.0, "save_steps": 8},
    })
    if not (out / "grpo" / "final" / "config.json").exists():
        sh(mmreason("train", "grpo", "--config", str(grpo_cfg)), log)
    mark("grpo")
    evals["grpo"] = evaluate("grpo", out / "grpo" / "final", eval_cfg, out, log)
    mark("eval grpo")
    if args.eval_samples:
        # GRPO optimises the sampled policy; a greedy evaluation at the SFT ceiling cannot show that.
        for name in ("sft", "grpo"):
            evals[f"{name} T={args.grpo_temperature:g}"] = evaluate(
                f"{name}_sampled", out / name / "final", eval_cfg, out, log,
                temperature=args.grpo_temperature, samples=args.eval_samples)
        mark("sampled eval sft + grpo")
    pngs = plots(out, evals)
    results = {"families": families, "demonstrations": demos, "held_out": evals, "timings_s": timings,
               "total_s": round(time.perf_counter() - t0, 1), "plots": [p.name for p in pngs],
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    md = table(evals)
    (out / "results.md").write_text(f"families: {', '.join(families)}\n\n{md}\n")
    print(md)
    print(f"total {results['total_s']} s; plots: {', '.join(str(p) for p in pngs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
