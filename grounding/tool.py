"""The tool protocol: `Tool`, `ToolError`, the per-episode `ToolContext` and the registry.

A tool is defined once (name, description for a VLM, JSON Schema of its arguments, and a plain
function ``fn(context, **arguments) -> Evidence``). The registry renders that one definition as
OpenAI/transformers function specs (``tools=`` of a chat template) and as plain Python callables
with type hints and Google-style docstrings (what TRL's ``GRPOTrainer`` expects of tools).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema

from imaging.errors import MMReasonError

from grounding.evidence import Evidence
from imaging.geometry import GeometryError
from imaging.views import View
from imaging.volume import Volume


class ToolError(MMReasonError):
    """A tool call cannot be carried out. The message is shown to the model: say how to fix it."""


@dataclass
class ToolContext:
    """Everything the tools of one episode share.

    Attributes:
        volumes: the study, keyed by a short id (``"0"``, ``"1"``... or names like ``prior``).
        views: every view shown so far, keyed by view id (``V1``, ``V2``...).
        evidence: the evidence board, in order (ids ``E1``, ``E2``...).
        segmenter: the segmenter backend name used by ``segment`` (``classical`` by default).
        options: per-episode tool options (e.g. SAM checkpoint path).
        segmenter_instance: a ready segmenter ``segment`` uses instead of building ``segmenter``
            by name (a perturbed or custom one given by a program).
    """

    volumes: dict[str, Volume]
    views: dict[str, View] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    segmenter: str = "classical"
    options: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    segmenter_instance: Any = None

    def add_view(self, view: View) -> str:
        view.view_id = f"V{len(self.views) + 1}"
        self.views[view.view_id] = view
        return view.view_id

    def next_evidence_id(self) -> str:
        return f"E{len(self.evidence) + 1}"

    def add_evidence(self, ev: Evidence) -> Evidence:
        ev.id = self.next_evidence_id()
        self.evidence.append(ev)
        return ev

    def get_view(self, view_id: str) -> View:
        if view_id not in self.views:
            known = ", ".join(self.views) or "none yet (call view first)"
            raise ToolError(f"unknown view_id '{view_id}'; views available: {known}")
        return self.views[view_id]

    def get_volume(self, volume_id: str | None = None) -> tuple[str, Volume]:
        if volume_id is None:
            volume_id = next(iter(self.volumes))
        if str(volume_id) not in self.volumes:
            raise ToolError(f"unknown volume '{volume_id}'; volumes available: {', '.join(self.volumes)}")
        return str(volume_id), self.volumes[str(volume_id)]

    def volume_of(self, view: View) -> tuple[str, Volume]:
        """The (id, `Volume`) that ``view`` was rendered from."""
        return self.get_volume(view.geometry.volume)

    def find(self, evidence_id: str) -> Evidence | None:
        return next((e for e in self.evidence if e.id == evidence_id), None)


@dataclass
class Tool:
    """One tool: the single definition every rendering (spec, callable, prompt) comes from."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Evidence]

    def validate(self, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments of '{self.name}' must be a JSON object, got {type(arguments).__name__}")
        exc = jsonschema.exceptions.best_match(self._validator.iter_errors(arguments))
        if exc is not None:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            allowed = ", ".join(self.parameters.get("properties", {}))
            raise ToolError(f"bad arguments for '{self.name}' at {where}: {clip(exc.message)}. "
                            f"Parameters: {allowed}") from None
        where = _nonfinite_at(arguments)
        if where is not None:
            raise ToolError(f"bad arguments for '{self.name}' at {where}: NaN and Infinity are not numbers a tool "
                            "can use; give a finite value")
        return arguments

    @functools.cached_property
    def _validator(self) -> jsonschema.protocols.Validator:
        # `jsonschema.validate` checks the schema itself on every call: a tenth of a rules episode's time
        cls = jsonschema.validators.validator_for(self.parameters)
        cls.check_schema(self.parameters)
        return cls(self.parameters)

    def run(self, context: ToolContext, **arguments: Any) -> Evidence:
        """Validate, run, and put the evidence on the board. Raises `ToolError` on bad input."""
        self.validate(arguments)
        try:
            ev = self.fn(context, **arguments)
        except GeometryError as exc:
            raise ToolError(str(exc)) from None
        ev.tool, ev.arguments = self.name, dict(arguments)
        return context.add_evidence(ev)

    def spec(self) -> dict[str, Any]:
        """OpenAI / transformers function spec."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def docstring(self) -> str:
        """Google-style docstring built from the schema (what transformers' `get_json_schema` reads)."""
        lines = [self.description, "", "Args:"]
        for pname, p in self.parameters.get("properties", {}).items():
            desc = p.get("description", pname).replace("\n", " ")
            if "enum" in p:
                desc += f" (choices: {json.dumps(p['enum'])})"
            lines.append(f"    {pname}: {desc}")
        lines += ["", "Returns:", "    The evidence id and a short text result."]
        return "\n".join(lines)

    def as_callable(self, context_getter: Callable[[], ToolContext],
                    render: Callable[[Evidence], Any] | None = None) -> Callable[..., Any]:
        """A plain function with a typed signature and docstring that runs this tool.

        ``context_getter`` returns the episode's context; ``render`` turns the evidence into the
        return value (default: its text). Tool errors come back as text so the model can retry.
        """
        tool = self

        def call(**kwargs: Any) -> Any:
            args = {k: v for k, v in kwargs.items() if v is not None}
            try:
                ev = tool.run(context_getter(), **args)
            except ToolError as exc:
                return f"Error: {exc}"
            return render(ev) if render else f"[{ev.id}] {ev.text}"

        required = set(self.parameters.get("required", []))
        params = []
        for pname, p in self.parameters.get("properties", {}).items():
            ann = _PY_TYPES.get(p.get("type", "string"), Any)
            if ann is list and "type" in p.get("items", {}):  # keep item types: list[float] -> items
                ann = list[_PY_TYPES.get(p["items"]["type"], Any)]  # type: ignore[misc]
            default = inspect.Parameter.empty if pname in required else None
            if default is None:
                ann = ann | None  # type: ignore[operator]
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))
        call.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
        call.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
        call.__name__ = call.__qualname__ = self.name
        call.__doc__ = self.docstring()
        return call


#: longest piece of a model's argument quoted back in an error message
ECHO_CHARS = 200


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out (error messages quote
    the model's arguments, which can be megabytes)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters not shown]"


def _nonfinite_at(value: Any, path: str = "arguments") -> str | None:
    """The path of the first NaN or infinite number in ``value`` (JSON allows them, jsonschema
    accepts them as numbers, and a tool would fail on them with an unhelpful error)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nonfinite_at(item, f"{path}/{key}" if path != "arguments" else str(key))
        if found is not None:
            return found
    return None


_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                             "array": list, "object": dict}


class ToolRegistry:
    """An ordered set of tools."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or []:
            self.register(t)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool '{tool.name}' is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            raise ToolError(f"unknown tool '{name}'; available tools: {', '.join(self._tools)}")
        return self._tools[name]

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self._tools.values()]

    def callables(self, context_getter: Callable[[], ToolContext],
                  render: Callable[[Evidence], Any] | None = None) -> list[Callable[..., Any]]:
        return [t.as_callable(context_getter, render) for t in self._tools.values()]

    def run(self, context: ToolContext, name: str, arguments: dict[str, Any]) -> Evidence:
        return self.get(name).run(context, **arguments)
