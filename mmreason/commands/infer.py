"""``mmreason infer --image PATH --question TEXT``: answer a question about a study, with evidence.

Runs the reasoning loop (`mmreason.loop.run_episode`) with a backend - ``rules`` (no weights, the
default when no ``--model`` is given), ``hf`` (a transformers checkpoint) or ``openai`` (an
OpenAI-compatible server), with the run options ``bench`` and ``train`` share
(`mmreason.run_spec.RunSpec`, ``--config FILE``) - and checks every step with the rule verifiers (``--verifiers none`` skips
them), and writes ``trace.json`` and ``report.html`` (verdicts beside their steps) into ``--out``
(default ``out/<timestamp>``). Progress goes to stderr; to stdout go the explanation the model gave
before its answer tag (where and how large, with evidence ids), the answer (``Answer: ...``, the
text of the ``<answer>`` tag) and the report path, or one JSON object with ``--json``. Exit
status: 0 when the episode answered (or abstained, saying why), 1 when it hit ``--max-turns`` or
a tool failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from imaging.errors import MMReasonError
from mmreason.commands import plain

SUMMARY = "answer a question about an image or study, with grounded evidence"


class InferError(MMReasonError, ValueError):
    """Bad command-line input for ``mmreason infer``."""


def register(subparsers: Any) -> None:
    from mmreason.commands import run_args

    p = subparsers.add_parser("infer", help=SUMMARY, description=plain(__doc__.splitlines()[0]))
    p.add_argument("--image", action="append", required=True, metavar="PATH",
                   help="image file or DICOM folder; repeat for several (a follow-up: prior first, then current); "
                        "the image loading options apply to each")
    p.add_argument("--question", required=True, help="the question, in plain text")
    p.add_argument("--option", action="append", metavar="TEXT",
                   help="a multiple-choice option; repeat in order (A, B, ...)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--verifiers", choices=("rule", "none"), default="rule",
                   help="check every step with the rule verifiers (format, grounding, measurement, answer-evidence "
                        "consistency) and show the verdicts in the report (default rule; none skips)")
    p.add_argument("--out", help="output folder for trace.json and report.html (default out/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    run_args.add_run_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmreason.report import summary_line, write_report

    def progress(message: str) -> None:
        print(f"[mmreason] {message}", file=sys.stderr, flush=True)

    trace = episode(args, progress)
    out = Path(args.out or Path("out") / time.strftime("%Y%m%d-%H%M%S"))
    trace_path = trace.save(out / "trace.json")
    report_path = write_report(trace, out / "report.html")
    progress(f"{trace.status} in {trace.timings.get('total', 0):.1f} s; wrote {trace_path} and {report_path}")
    why = explanation(trace)
    if args.json:
        print(json.dumps(summary_line(trace) | {"explanation": why, "trace": str(trace_path),
                                                 "report": str(report_path)}, indent=1))
    else:
        if why:
            print(why)
        print(f"Answer: {trace.answer}" if trace.answer is not None else f"(no answer: {trace.status})")
        print(f"Report: {report_path}")
    return 0 if trace.status in ("answered", "abstained") else 1


def episode(args: argparse.Namespace, progress: Callable[[str], None] | None = None) -> Any:
    """The `mmreason.trace.Trace` of the episode the parsed ``infer`` arguments ask for, its steps
    checked by the verifiers ``--verifiers`` names (nothing is written).

    Other programs that must answer exactly as ``mmreason infer`` does (``benchmarks.real_scans``)
    parse an ``infer`` command line and call this.
    """
    from mmreason.commands.run_args import run_spec_from_args
    from mmreason.loop import run_episode

    say = progress or (lambda message: None)
    for path in args.image:
        if not Path(path).exists():
            raise InferError(f"image not found: {path}")
    if not args.question.strip():
        raise InferError("the question is empty")
    if args.max_turns is not None and args.max_turns < 1:
        raise InferError(f"--max-turns must be at least 1, got {args.max_turns}")
    spec = run_spec_from_args(args)
    name, options = spec.backend.resolve()
    registry = spec.registry()
    say(f"backend {name}" + (f", model {options['model']}" if "model" in options else ""))
    backend = spec.build_backend()
    config = spec.loop_config()
    say(f"loading {len(args.image)} input(s) and asking: {args.question}")
    volumes = [spec.load(path) for path in args.image]
    trace = run_episode(volumes, args.question, backend, options=args.option, registry=registry,
                        seed=spec.seed, config=config, progress=progress)
    if args.verifiers == "rule":
        from mmreason.verifiers.pipeline import attach_verdicts

        verdicts = attach_verdicts(trace)
        bad = [v for v in verdicts if v.label == "incorrect"]
        say(f"verified {len(verdicts)} steps: {len(bad)} incorrect"
            + "".join(f"; step {v.step}: {v.reason}" for v in bad))
    return trace


def explanation(trace: Any) -> str:
    """The prose of the final assistant turn before its ``<answer>`` tag (``<think>`` blocks
    dropped), "" when it has none: the answer tag holds only the short answer."""
    from mmreason.parsing import ANSWER_BLOCK, strip_think

    last = next((t for t in reversed(trace.turns) if t.role == "assistant"), None)
    if last is None or trace.answer is None:
        return ""
    text = strip_think(last.text)
    blocks = list(ANSWER_BLOCK.finditer(text))
    return text[: blocks[-1].start()].strip() if blocks else ""
