"""Run configurations of ``mmreason train sft`` / ``mmreason train grpo``, loaded from YAML and validated.

A config file has these sections (every key is optional except ``model.name_or_path``)::

    model:    what to train (`ModelConfig`)
    lora:     optional LoRA adapters through peft (`LoraSection`)
    data:     the cases and trajectories to train on (`DataConfig`)
    env:      the tool environment of rollouts and evaluation (`EnvConfig`)
    rewards:  GRPO reward weights (`RewardWeights`, grpo only)
    training: keyword arguments of TRL's `SFTConfig` / `GRPOConfig` (output_dir, max_steps,
              learning_rate, num_generations, use_vllm, vllm_mode, max_tool_calling_iterations, ...)

Validation is strict and says what to fix: an unknown key (with the closest known key), a value of
the wrong type, a missing model, a ``training`` key that the TRL config does not have. The
``training`` section is checked against TRL's own dataclass, so its help strings are TRL's.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imaging.errors import MMReasonError
from mmreason.run_spec import RunSpec

KINDS = ("sft", "grpo")


class ConfigError(MMReasonError, ValueError):
    """A training config is invalid; the message names the file, the key and the fix."""


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class ModelConfig:
    """The model to train."""

    name_or_path: str = _help("Hub id (e.g. Qwen/Qwen3-VL-4B-Instruct) or a local checkpoint directory; "
                              "for GRPO, normally the SFT run's output directory.", "")
    dtype: str = _help("Weights dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16.", "auto")
    min_pixels: int | None = _help("Qwen-VL image processor pixel budget (after resize), lower bound; "
                                   "None keeps the checkpoint's.", None)
    max_pixels: int | None = _help("Qwen-VL image processor pixel budget (after resize), upper bound; "
                                   "None keeps the checkpoint's.", None)
    attn_implementation: str | None = _help("sdpa, eager or flash_attention_2; None lets transformers choose.", None)
    trust_remote_code: bool = _help("Pass trust_remote_code to from_pretrained.", False)
    box_format: str = _help("Box coordinates the model writes: auto (relative 0-1000 for Qwen2-VL, Qwen3-VL and "
                            "Qwen3.5 by config.model_type, else pixels of the resized image), absolute or relative.",
                            "auto")


@dataclass
class LoraSection:
    """LoRA adapters through peft (off by default: the tiny runs train every weight)."""

    enabled: bool = _help("Train LoRA adapters instead of all weights.", False)
    r: int = _help("LoRA rank.", 16)
    alpha: int = _help("LoRA alpha (scale = alpha / r).", 32)
    dropout: float = _help("Dropout on the LoRA path.", 0.05)
    target_modules: list[str] = _help("Module names to adapt (the language model's projections by default).",
                                      factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                       "up_proj", "down_proj"])
    merge_on_save: bool = _help("Merge the adapters into the weights when saving the final model, so the "
                                "next stage (GRPO, evaluation, serving) loads a plain checkpoint.", True)


@dataclass
class DataConfig:
    """The cases (and, for SFT, the demonstrations) to train on."""

    task: str = _help("Registered benchmark task whose cases are used (see mmreason bench --list).", "synthetic")
    data_dir: str | None = _help("Data folder of the task (default $MMREASON_DATA/<task> or "
                                 "~/.cache/mmreason/data/<task>).", None)
    synthetic_n: int = _help("For task 'synthetic': cases to generate when data_dir has none.", 200)
    synthetic_seed: int = _help("For task 'synthetic': generation seed.", 0)
    start: int = _help("First case (index into the task's cases) used for training.", 0)
    limit: int | None = _help("Number of cases used for training from `start` (None: all).", None)
    families: list[str] = _help("Only cases whose subgroup 'family' is listed (empty: all).", factory=list)
    demonstrations: bool = _help("SFT: generate demonstrations with the rules backend on the cases.", True)
    only_correct: bool = _help("SFT: keep only demonstrations whose answer scores correct.", True)
    short_demos: bool = _help("SFT: cut each rules demonstration after its last finding call (dropping the "
                              "measure/crop calls that follow) and end it with the bare <answer> tag, no explanation "
                              "(train.data.short_demonstration). For tiny models, which garble long "
                              "explanations; real runs keep full demonstrations.", False)
    traces: list[str] = _help("SFT: extra trace JSON files or globs (any mmreason Trace) to train on.", factory=list)
    eval_start: int | None = _help("First held-out case for `mmreason train eval` (None: right after the "
                                   "training cases).", None)
    eval_limit: int = _help("Number of held-out cases for `mmreason train eval`.", 24)


@dataclass
class EnvConfig:
    """The tool environment: the same registry and loop rules as inference."""

    tools: list[str] = _help("Tools offered to the model, a subset of the registry's view, crop, segment, measure "
                             "(empty: all). Fewer tools make shorter prompts, which matters for tiny CPU runs.",
                             factory=list)
    segment_targets: list[str] = _help("Named targets of the segment tool (empty: all of the segmenters' targets).",
                                       factory=list)
    segmenter: str = _help("Segmenter behind the segment tool (classical needs no weights).", "classical")
    tool_options: dict[str, Any] = _help("Per-episode tool options (ToolContext.options), e.g. max_side.",
                                         factory=dict)
    max_turns: int = _help("Model turns per episode in evaluation and demonstrations; GRPO rollouts are "
                           "bounded by training.max_tool_calling_iterations.", 6)
    max_new_tokens: int = _help("Tokens per model turn in evaluation.", 256)
    max_images: int = _help("Images kept in an episode's context.", 12)
    max_initial_images: int = _help("Images in the first user turn.", 4)

    def run_spec(self) -> RunSpec:
        """The run specification of these settings (`mmreason.run_spec.RunSpec`, as ``infer`` and
        ``bench`` use): segmenter, loop settings and the tool registry recipe.

        Raises:
            ConfigError: an unknown key in ``tool_options``' segmenter part, or a bad loop setting.
        """
        try:
            return RunSpec.from_dict({
                "segmenter": {"name": self.segmenter},
                "loop": {"max_turns": self.max_turns, "max_new_tokens": self.max_new_tokens,
                         "max_images": self.max_images, "max_initial_images": self.max_initial_images,
                         "tool_options": dict(self.tool_options)},
                "tools": {"names": list(self.tools), "segment_targets": list(self.segment_targets)}}, source="env")
        except MMReasonError as exc:
            raise ConfigError(str(exc)) from None


@dataclass
class RewardWeights:
    """Weights of the GRPO reward components (each is also logged on its own)."""

    accuracy: float = _help("Answer correct by the benchmark scorer of its answer type (1 or 0).", 1.0)
    format: float = _help("Closed <answer> tag and well-formed tool calls (0..1).", 0.25)
    grounding: float = _help("Best IoU of a tool call's region with the ground truth, when the answer is "
                             "correct and its cited evidence supports it (0..1).", 0.5)
    evidence: float = _help("Share of steps the rule verifiers mark correct, when the answer is correct (0..1).",
                            0.25)
    tool_economy: float = _help("Share of failing or repeated tool calls, as a penalty (-1..0).", 0.25)

    def as_list(self) -> list[float]:
        return [self.accuracy, self.format, self.grounding, self.evidence, self.tool_economy]


@dataclass
class RunConfig:
    """One training run: `kind` is ``sft`` or ``grpo``; ``training`` goes to TRL's config."""

    kind: str
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rewards: RewardWeights = field(default_factory=RewardWeights)
    training: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def output_dir(self) -> Path:
        return Path(self.training["output_dir"])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        if self.kind != "grpo":
            d.pop("rewards")
        return d

    def save(self, path: str | Path) -> Path:
        """Write the resolved config (defaults filled in) as YAML."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


SECTIONS: dict[str, type] = {"model": ModelConfig, "lora": LoraSection, "data": DataConfig, "env": EnvConfig,
                             "rewards": RewardWeights}
#: training keys mmreason sets itself (a config must not override them)
RESERVED_TRAINING_KEYS = ("reward_weights", "remove_unused_columns", "assistant_only_loss", "dataset_kwargs")


def trl_config_class(kind: str) -> type:
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig
    from trl import GRPOConfig

    return GRPOConfig


def load_config(path: str | Path, kind: str, output_dir: str | Path | None = None) -> RunConfig:
    """Read and validate a YAML config for ``kind`` (``sft`` or ``grpo``).

    Args:
        path: the YAML file.
        kind: ``sft`` or ``grpo``; a ``rewards`` section is only allowed for ``grpo``.
        output_dir: overrides ``training.output_dir`` (the ``--out`` option).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type, missing model or output directory.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return config_from_dict(raw, kind, source=str(path), output_dir=output_dir)


def config_from_dict(raw: Any, kind: str, source: str = "<dict>",
                     output_dir: str | Path | None = None) -> RunConfig:
    """Validate a config given as a dict (the parsed YAML); see `load_config`."""
    if kind not in KINDS:
        raise ConfigError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(raw).__name__}")
    allowed = [*SECTIONS, "training"] if kind == "grpo" else [s for s in [*SECTIONS, "training"] if s != "rewards"]
    for key in raw:
        if key not in allowed:
            hint = " (rewards apply to grpo only)" if key == "rewards" else _did_you_mean(key, allowed)
            raise ConfigError(f"{source}: unknown section '{key}'{hint}; sections: {', '.join(allowed)}")
    sections = {name: _build(cls, raw.get(name) or {}, f"{source}: {name}") for name, cls in SECTIONS.items()}
    training = dict(raw.get("training") or {})
    if not isinstance(raw.get("training") or {}, dict):
        raise ConfigError(f"{source}: 'training' must be a mapping of {trl_config_class(kind).__name__} arguments")
    if output_dir is not None:
        training["output_dir"] = str(output_dir)
    cfg = RunConfig(kind=kind, training=training, source=source, **sections)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Cross-field checks and the ``training`` section against TRL's config class."""
    where = cfg.source
    if not cfg.model.name_or_path:
        raise ConfigError(f"{where}: model.name_or_path is missing; give a hub id or a checkpoint directory "
                          f"(for a CPU smoke run: python -m mmreason.tiny_models DIR, then model.name_or_path: DIR)")
    if cfg.model.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ConfigError(f"{where}: model.dtype must be auto, float32, bfloat16 or float16, got {cfg.model.dtype!r}")
    if cfg.data.limit is not None and cfg.data.limit < 1:
        raise ConfigError(f"{where}: data.limit must be at least 1 (or null for all cases), got {cfg.data.limit}")
    if cfg.env.max_turns < 1:
        raise ConfigError(f"{where}: env.max_turns must be at least 1, got {cfg.env.max_turns}")
    if not cfg.training.get("output_dir"):
        raise ConfigError(f"{where}: training.output_dir is missing; set it or pass --out DIR (--output-dir, the older spelling, still works)")
    trl_cls = trl_config_class(cfg.kind)
    known = [f.name for f in dataclasses.fields(trl_cls)]
    for key in cfg.training:
        if key in RESERVED_TRAINING_KEYS:
            raise ConfigError(f"{where}: training.{key} is set by mmreason (reward weights go in the 'rewards' "
                              f"section; SFT masks non-assistant tokens itself); remove it")
        if key not in known:
            raise ConfigError(f"{where}: unknown key training.{key}{_did_you_mean(key, known)}; it must be an "
                              f"argument of trl.{trl_cls.__name__}")
    if cfg.kind == "grpo" and cfg.training.get("use_vllm") and cfg.training.get("vllm_mode", "colocate") not in (
            "server", "colocate"):
        raise ConfigError(f"{where}: training.vllm_mode must be 'server' or 'colocate'")


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'{_did_you_mean(key, list(fields))}; "
                              f"known keys: {', '.join(fields)}")
        kwargs[key] = _check_type(value, hints[key], f"{where}.{key}", fields[key].metadata.get("help", ""))
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, where: str, help_text: str) -> Any:
    """``value`` if it fits ``hint`` (ints are accepted for floats); raises `ConfigError` otherwise."""
    if _fits(value, hint):
        return float(value) if hint is float and isinstance(value, int) else value
    want = str(hint).replace("typing.", "") if typing.get_origin(hint) else getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} must be {want}, got {value!r} ({type(value).__name__}). {help_text}".strip())


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def describe(kind: str) -> str:
    """Every key of every section with its help text (for ``--help`` and the README)."""
    lines = []
    for name, cls in SECTIONS.items():
        if name == "rewards" and kind != "grpo":
            continue
        lines.append(f"{name}:")
        for f in dataclasses.fields(cls):
            lines.append(f"  {f.name}: {f.metadata.get('help', '')}")
    lines.append(f"training: any argument of trl.{'SFTConfig' if kind == 'sft' else 'GRPOConfig'}")
    return "\n".join(lines)
