"""`RunSpec`: everything that defines how episodes run, built once and used by every front door.

``infer``, ``bench``, ``train`` and the app (and ``serve``/``mcp`` for the parts they use) hold one
`RunSpec`: the backend and its options (`BackendSpec`), the segmenter and its weights
(`grounding.segmenters.spec.SegmenterSpec`), the loop's settings and limits
(`mmreason.loop.LoopConfig`: turns, tokens, temperature, image budget, tool-call and time limits),
the loader options of `imaging.io.load` (``series``, ``frame``, ``allow_uneven``, ``spacing``,
``assume_orientation`` ...), the tool registry recipe (`ToolRecipe`) and the seed. It is built
from the command line (`mmreason.commands.run_args.run_spec_from_args`) or from a YAML/JSON file
(`RunSpec.from_file`, the ``--config`` option; command-line flags override the file)::

    backend: {name: openai, model: Qwen/Qwen2.5-VL-7B-Instruct, base_url: [http://gpu0:8000/v1],
              image_resize: qwen2_5_vl, max_pixels: 1003520, options: {timeout: 300}}
    segmenter: {name: sam, weights: [sam_vit_b.pth], device: cpu}
    loop: {max_turns: 8, max_new_tokens: 512, temperature: 0.0, max_images: 12}
    loader: {series: 1, allow_uneven: true, spacing: [0.7, 0.7]}
    tools: {names: [view, segment, measure], segment_targets: [lungs, nodule]}
    seed: 0

The module imports nothing heavy: the backend, the segmenter, the loop and the loader are
imported when a spec is turned into them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaging.errors import MMReasonError

if TYPE_CHECKING:
    from grounding.segmenters.base import Segmenter
    from grounding.segmenters.spec import SegmenterSpec
    from grounding.tool import ToolRegistry
    from imaging.volume import Volume
    from mmreason.loop import LoopConfig

#: the backends `mmreason.backends.get_backend` knows by name (``module:attr`` is also accepted)
BACKEND_NAMES = ("rules", "hf", "openai")


class RunSpecError(MMReasonError, ValueError):
    """A run specification (options or config file) that cannot work; the message names the fix."""


class BackendOptionError(RunSpecError):
    """Backend options that do not fit together; the message names the option to change."""


@dataclass
class BackendSpec:
    """The model backend and its constructor options.

    Attributes:
        name: ``rules``, ``hf``, ``openai`` or ``module:attr`` of a backend factory; None: ``hf``
            when ``model`` is given, else ``rules``.
        model: hub id or checkpoint directory (hf), served model name (openai).
        base_url: OpenAI-compatible server URLs (openai); several spread the requests.
        min_pixels, max_pixels: the image area the model sees (Qwen processors).
        image_resize: openai: the served model's resize rule, so boxes are read in its frame.
        box_format: the model's box coordinates (``absolute``/``relative``; default auto).
        thinking, thinking_tokens: hf: reasoning of thinking templates and its extra token budget.
        options: further constructor options (``--backend-option KEY=VALUE``).
    """

    name: str | None = None
    model: str | None = None
    base_url: list[str] = field(default_factory=list)
    min_pixels: int | None = None
    max_pixels: int | None = None
    image_resize: str | None = None
    box_format: str | None = None
    thinking: str | None = None
    thinking_tokens: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url or [])

    def resolve(self) -> tuple[str, dict[str, Any]]:
        """``(backend name, constructor options)``; refuses options the backend would ignore."""
        return backend_spec(self.name, model=self.model, base_urls=self.base_url, min_pixels=self.min_pixels,
                            max_pixels=self.max_pixels, image_resize=self.image_resize, box_format=self.box_format,
                            thinking=self.thinking, thinking_tokens=self.thinking_tokens, extra=self.options)

    def build(self) -> Any:
        """The backend (loads weights or checks the server as its constructor does)."""
        from mmreason.backends import get_backend

        name, options = self.resolve()
        return get_backend(name, **options)


def backend_spec(backend: str | None = None, *, model: str | None = None, base_urls: list[str] | tuple[str, ...] = (),
                 min_pixels: int | None = None, max_pixels: int | None = None, image_resize: str | None = None,
                 box_format: str | None = None, thinking: str | None = None, thinking_tokens: int | None = None,
                 extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The backend name and constructor options; refuses an unknown name and options the backend
    would ignore (a pixel limit never silently does nothing: ``rules`` refuses it, ``hf`` refuses
    it for processors without a Qwen pixel budget and ``openai`` unless an ``image_resize`` rule
    makes it change the box frame).

    ``extra`` (``--backend-option``) is merged last; a key also given by its own option is an error.
    """
    name = backend or ("hf" if model else "rules")
    given = {"model": model, "base_url": list(base_urls) or None, "min_pixels": min_pixels, "max_pixels": max_pixels,
             "image_resize": image_resize, "box_format": box_format, "thinking": thinking,
             "thinking_tokens": thinking_tokens}
    options = {k: v for k, v in given.items() if v is not None}
    if options.get("base_url") and len(options["base_url"]) == 1:
        options["base_url"] = options["base_url"][0]
    clash = sorted(set(options) & set(extra or {}))
    if clash:
        raise BackendOptionError(f"{', '.join(clash)} given twice (its own option and --backend-option); give it once")
    options.update(extra or {})
    if ":" in name:
        return name, options  # a custom factory takes what it takes
    allowed = {
        "rules": set(),
        "hf": {"model", "min_pixels", "max_pixels", "box_format", "thinking", "thinking_tokens"},
        "openai": {"model", "base_url", "min_pixels", "max_pixels", "image_resize", "box_format"},
    }.get(name)
    if allowed is None:
        raise BackendOptionError(f"unknown backend '{name}'; choose one of {', '.join(BACKEND_NAMES)} or give "
                                 "module:attr of an importable backend factory")
    if name == "hf" and not model:
        raise BackendOptionError("the hf backend needs --model (a hub id or a local checkpoint directory)")
    refused = [k for k in given if k in options and k not in allowed]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        owner = {"model": "hf or openai", "base_url": "openai", "image_resize": "openai (hf reads the resize from "
                 "the checkpoint's processor)", "thinking": "hf", "thinking_tokens": "hf", "min_pixels": "hf or openai",
                 "max_pixels": "hf or openai", "box_format": "hf or openai"}
        why = "; ".join(f"--{k.replace('_', '-')} needs --backend {owner[k]}" for k in refused)
        raise BackendOptionError(f"{flags} would do nothing with the {name} backend: {why}")
    return name, options


@dataclass
class ToolRecipe:
    """Which tools a run offers the model.

    Attributes:
        enabled: False offers no tools (a direct-answer run, the baseline of ``bench --no-tools``).
        names: a subset of the registry's tools (view, crop, segment, measure); empty: all.
        segment_targets: named targets of the segment tool; empty: the segmenter's own.
    """

    enabled: bool = True
    names: list[str] = field(default_factory=list)
    segment_targets: list[str] = field(default_factory=list)

    def registry(self, segmenter: SegmenterSpec) -> ToolRegistry:
        """The `grounding.tool.ToolRegistry` of this recipe for ``segmenter``.

        Raises:
            RunSpecError: an unknown tool or segment target.
        """
        from grounding.segmenters import TARGETS
        from grounding.tool import ToolRegistry
        from grounding.tools import default_registry

        if not self.enabled:
            return ToolRegistry([])
        unknown = [t for t in self.segment_targets if t not in TARGETS]
        if unknown:
            raise RunSpecError(f"tools.segment_targets: unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
        targets = {k: TARGETS[k] for k in self.segment_targets} if self.segment_targets else segmenter.targets()
        full = default_registry(targets)
        unknown = [t for t in self.names if t not in full]
        if unknown:
            raise RunSpecError(f"tools.names: unknown tool(s) {unknown}; known: {', '.join(full.names())}")
        return ToolRegistry([full.get(name) for name in self.names]) if self.names else full


def _segmenter_spec(d: dict[str, Any] | None = None) -> SegmenterSpec:
    from grounding.segmenters.spec import SegmenterSpec

    return SegmenterSpec.from_dict(d)


def _loop_config(d: dict[str, Any] | None = None) -> LoopConfig:
    from mmreason.loop import LoopConfig

    d = dict(d or {})
    if "segmenter" in d or "tool_options" in d and "segmenter_options" in (d["tool_options"] or {}):
        raise RunSpecError("the segmenter is set in the 'segmenter' section (name, weights, device ...), not in 'loop'")
    known = {f.name for f in dataclasses.fields(LoopConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise RunSpecError(f"loop: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "stop" in d:
        d["stop"] = tuple(d["stop"])
    return LoopConfig(**d)


@dataclass
class RunSpec:
    """One run's settings (see the module docstring).

    Attributes:
        backend: the model backend and its options.
        segmenter: the segment tool's segmenter (`SegmenterSpec`).
        loop: the loop's settings and limits (`LoopConfig`; its ``segmenter`` comes from
            ``segmenter``, so it is not set here).
        loader: `imaging.io.load` keywords for every input (``series``, ``frame``, ``modality``,
            ``max_voxels``, ``nonfinite``, ``allow_uneven``, ``spacing``, ``assume_orientation``).
        tools: the tool registry recipe.
        seed: sampling seed (None: unseeded; ``bench`` derives one per case from it).
        segmenter_instance: a ready segmenter the segment tool uses instead of building
            ``segmenter`` by name (a hook for programs: a perturbed or custom segmenter); never
            serialised.
    """

    backend: BackendSpec = field(default_factory=BackendSpec)
    segmenter: SegmenterSpec = field(default_factory=_segmenter_spec)
    loop: LoopConfig = field(default_factory=_loop_config)
    loader: dict[str, Any] = field(default_factory=dict)
    tools: ToolRecipe = field(default_factory=ToolRecipe)
    seed: int | None = None
    segmenter_instance: Segmenter | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ what a run is made of

    def loop_config(self) -> LoopConfig:
        """The loop settings with this spec's segmenter (and instance, when given)."""
        options = {**self.loop.tool_options, **self.segmenter.tool_options()}
        return dataclasses.replace(self.loop, segmenter=self.segmenter.name, tool_options=options,
                                   segmenter_instance=self.segmenter_instance)

    def registry(self) -> ToolRegistry:
        """The tools offered to the model (`ToolRecipe.registry`)."""
        return self.tools.registry(self.segmenter)

    def build_backend(self) -> Any:
        return self.backend.build()

    def load(self, path: str | Path) -> Volume:
        """`imaging.io.load` of ``path`` with this spec's loader options."""
        from imaging.io import load

        try:
            return load(path, **self.loader)
        except TypeError as exc:
            raise RunSpecError(f"loader: {exc}; known keys are the keywords of imaging.io.load") from None

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready sections (``backend``, ``segmenter``, ``loop``, ``loader``, ``tools``, ``seed``)."""
        loop = {f.name: getattr(self.loop, f.name) for f in dataclasses.fields(self.loop)
                if f.name not in ("segmenter", "segmenter_instance")}
        loop["stop"], loop["tool_options"] = list(loop["stop"]), dict(loop["tool_options"])
        loader = {k: list(v) if isinstance(v, tuple) else v for k, v in self.loader.items()}
        return {"backend": dataclasses.asdict(self.backend), "segmenter": self.segmenter.to_dict(), "loop": loop,
                "loader": loader, "tools": dataclasses.asdict(self.tools), "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str = "run spec") -> RunSpec:
        """The spec of ``to_dict``'s sections (each optional); unknown keys are refused.

        Raises:
            RunSpecError: an unknown section or key, naming ``source``.
        """
        d = dict(d or {})
        sections = {"backend", "segmenter", "loop", "loader", "tools", "seed"}
        unknown = sorted(set(d) - sections)
        if unknown:
            raise RunSpecError(f"{source}: unknown section(s) {', '.join(unknown)}; sections: "
                               f"{', '.join(sorted(sections))}")
        try:
            segmenter = d.get("segmenter") or {}
            if isinstance(segmenter, str):
                segmenter = {"name": segmenter}
            loader = dict(d.get("loader") or {})
            if loader.get("spacing") is not None:
                loader["spacing"] = tuple(loader["spacing"])
            return cls(backend=_section(BackendSpec, d.get("backend"), source, "backend"),
                       segmenter=_segmenter_spec(_known(segmenter, source, "segmenter")),
                       loop=_loop_config(d.get("loop")), loader=loader,
                       tools=_section(ToolRecipe, d.get("tools"), source, "tools"), seed=d.get("seed"))
        except RunSpecError as exc:
            raise RunSpecError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> RunSpec:
        """A spec from a YAML (``.yaml``/``.yml``) or JSON file (the ``--config`` option)."""
        path = Path(path)
        if not path.is_file():
            raise RunSpecError(f"run config {path} does not exist")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - yaml and json raise their own error types
            raise RunSpecError(f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                               f"{exc}") from None
        if raw is not None and not isinstance(raw, dict):
            raise RunSpecError(f"{path}: a run config is a mapping of sections, got {type(raw).__name__}")
        return cls.from_dict(raw, source=str(path))


def _known(values: dict[str, Any], source: str, section: str) -> dict[str, Any]:
    from grounding.segmenters.spec import SegmenterSpec

    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(SegmenterSpec)})
    if unknown:
        raise RunSpecError(f"{section}: unknown key(s) {', '.join(unknown)}")
    return values


def _section(cls: type, values: Any, source: str, name: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise RunSpecError(f"{name} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RunSpecError(f"{name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)
