"""``mmreason train``: SFT cold start, grounding-aware GRPO, and held-out evaluation of a checkpoint.

Examples::

    mmreason train sft  --config train/configs/tiny_sft.yaml  --out runs/tiny_sft
    mmreason train grpo --config train/configs/tiny_grpo.yaml --out runs/tiny_grpo
    mmreason train eval --config train/configs/tiny_grpo.yaml --checkpoint runs/tiny_grpo/final \\
        --out runs/tiny_grpo/eval.json

Each run writes ``resolved_config.yaml``, ``train.log``, ``metrics.jsonl``, checkpoints and
``final/`` to its output directory, and resumes from its last checkpoint when rerun. On GPUs launch
the same command with accelerate (see ``train/README.md``)::

    accelerate launch --config_file train/configs/accelerate/deepspeed_zero2.yaml \\
        -m mmreason.cli train grpo --config train/configs/qwen3_vl_4b_grpo.yaml
"""

from __future__ import annotations

import argparse
import json
import sys

from mmreason.commands import plain

SUMMARY = "SFT and GRPO training of a tool-using VLM"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help=SUMMARY, description=plain(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    for stage, text in (("sft", "supervised cold start on rules demonstrations"),
                        ("grpo", "GRPO with tool rollouts and grounding rewards")):
        s = sub.add_parser(stage, help=text, description=f"{text[0].upper()}{text[1:]}. Writes resolved_config.yaml, "
                           "train.log (every library's log), metrics.jsonl, checkpoints and final/ to the output "
                           "folder and resumes from its last checkpoint when rerun.")
        s.add_argument("--config", required=True, help="YAML run config (see train/configs/)")
        s.add_argument("--out", help="output folder; overrides training.output_dir of the config")
        s.add_argument("--output-dir", dest="output_dir", help=argparse.SUPPRESS)  # deprecated spelling of --out
        s.set_defaults(func=run)
    e = sub.add_parser("eval", help="evaluate a checkpoint on the config's held-out cases",
                       description="Evaluate a checkpoint on the config's held-out cases with the training rewards.")
    e.add_argument("--config", required=True, help="YAML run config (its data and env sections are used)")
    e.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. RUN/final)")
    e.add_argument("--out", help="write results JSON here (traces next to it)")
    e.add_argument("--kind", choices=("sft", "grpo"), default="grpo", help="how to read the config (default grpo)")
    e.add_argument("--temperature", type=float, default=0.0,
                   help="0 (default): greedy decoding; above 0: sample, as GRPO rollouts do")
    e.add_argument("--samples", type=int, default=1, help="episodes per case (needs --temperature > 0)")
    e.add_argument("--json", action="store_true", help="print the whole result as JSON")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from train.config import load_config

    if args.stage == "eval":
        from train.evaluate import evaluate

        cfg = load_config(args.config, args.kind, output_dir="unused-by-eval")
        result = evaluate(cfg, args.checkpoint, args.out, temperature=args.temperature, samples=args.samples)
        print(json.dumps(result if args.json else result["summary"], indent=1))
        return 0
    if args.output_dir:
        print("[mmreason] --output-dir is deprecated; use --out", file=sys.stderr)
    cfg = load_config(args.config, args.stage, output_dir=args.out or args.output_dir)
    if args.stage == "sft":
        from train.sft import run_sft as train_fn
    else:
        from train.grpo import run_grpo as train_fn
    final = train_fn(cfg)
    print(f"mmreason train {args.stage}: final checkpoint {final}")
    return 0
