"""What every run does with its output directory: resolved config, log file, metrics, resume.

Layout of ``training.output_dir``::

    resolved_config.yaml   the config with every default filled in
    train.log              the run's log (mmreason, transformers and TRL loggers)
    metrics.jsonl          one JSON line per logging step (loss, rewards, tool-call rates ...)
    checkpoint-<step>/     Trainer checkpoints; a rerun resumes from the last one
    final/                 the trained model and processor (a plain from_pretrained checkpoint)
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from train.config import RunConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGGERS = ("train", "transformers", "trl")
log = logging.getLogger("train.run")


def phase(message: str) -> None:
    """Say what the run is doing on stderr (and in ``train.log``): the console shows our phases and
    a progress bar (`ProgressBar`); every library's INFO log goes to the log file only."""
    print(f"[mmreason train] {message}", file=sys.stderr, flush=True)
    log.info(message)


def prepare_output_dir(cfg: RunConfig) -> Path:
    """Create the output dir, write the resolved config and send the run's logs to ``train.log``
    (the libraries' own console handlers stay at WARNING, so their INFO goes to the file only)."""
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "resolved_config.yaml")
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "mmreason_run_log", False)]:
            logger.removeHandler(old)  # a previous run in this process logs no further
            old.close()
        for console in logger.handlers:
            console.setLevel(max(console.level, logging.WARNING))
        handler.mmreason_run_log = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    phase(f"{cfg.kind} run in {out} (config {out / 'resolved_config.yaml'}, log {out / 'train.log'})")
    return out


def last_checkpoint(out: Path) -> str | None:
    """The newest complete ``checkpoint-<step>`` folder of a run, or None for a fresh run."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def train_and_save(trainer: Any, processor: Any, out: Path, merge_lora: bool) -> Path:
    """Train ``trainer`` (resuming from the newest checkpoint in ``out``), save its state, and write
    the final model to ``out/final`` (see `train.model.save_final`); returns that directory."""
    from transformers.trainer_callback import ProgressCallback

    from train.model import save_final

    resume = last_checkpoint(out)
    if resume:
        phase(f"resuming from {resume}")
    trainer.remove_callback(ProgressCallback)  # its bar prints every logged dict; ours shows the steps
    trainer.add_callback(ProgressBar())
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()
    phase(f"saving the final model to {out / 'final'}")
    return save_final(trainer.model, processor, out / "final", merge_lora=merge_lora)


class ProgressBar(TrainerCallback):
    """One bar of optimizer steps on stderr with the latest loss (and reward for GRPO); the full
    logged values go to ``metrics.jsonl`` (`MetricsCallback`)."""

    SHOWN = ("loss", "reward", "learning_rate")

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from tqdm import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                            file=sys.stderr, dynamic_ncols=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs:
            self.bar.set_postfix({k: f"{logs[k]:.3g}" for k in self.SHOWN if isinstance(logs.get(k), (int, float))})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsCallback(TrainerCallback):
    """Appends every logged dict (loss, learning rate, rewards, tool rates ...) to ``metrics.jsonl``
    with the step and epoch, so learning curves and tool-use collapse can be read after the run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch}
        row |= {k: v for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

