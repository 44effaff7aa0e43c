"""`Trace`: one whole interleaved episode, JSON-serialisable and replayable.

Verifiers, reports, benchmarks and SFT data all read this one type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grounding.evidence import Evidence

TRACE_VERSION = 1


@dataclass
class ToolCall:
    """A parsed tool call from a model turn and what became of it."""

    name: str
    arguments: dict[str, Any]
    raw: str = ""
    evidence_id: str | None = None
    error: str | None = None
    cached: bool = False


@dataclass
class ImageRef:
    """An image shown to the model: the view it came from and the frame the model saw.

    ``index`` is the running image number in the conversation ("Image 3"); ``model_size`` is the
    (width, height) after the processor's resize, the frame in which the model's boxes are given.
    """

    index: int
    view_id: str
    size: tuple[int, int]
    model_size: tuple[int, int]


@dataclass
class Turn:
    """One message of the episode: ``system``, ``user``, ``assistant`` or ``tool``.

    ``prompt_tokens``/``completion_tokens`` (assistant turns, when the backend counts tokens):
    the whole prompt the model read for this turn, images included, and the tokens it wrote.
    """

    role: str
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    evidence_ids: list[str] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Trace:
    question: str
    options: list[str] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    answer: str | None = None
    answer_option: str | None = None
    cited_evidence: list[str] = field(default_factory=list)
    status: str = "running"  # answered | max_turns | abstained | error
    backend: str = ""
    model: str = ""
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def tool_calls(self) -> list[ToolCall]:
        return [c for t in self.turns for c in t.tool_calls]

    def evidence_by_id(self) -> dict[str, Evidence]:
        return {e.id: e for e in self.evidence}

    def to_dict(self, with_images: bool = True) -> dict[str, Any]:
        d = asdict(self) | {"evidence": [e.to_dict(with_images) for e in self.evidence]}
        d["trace_version"] = TRACE_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trace":
        d = dict(d)
        d.pop("trace_version", None)
        turns = []
        for t in d.pop("turns", []):
            t = dict(t)
            t["tool_calls"] = [ToolCall(**c) for c in t.get("tool_calls", [])]
            t["images"] = [ImageRef(i["index"], i["view_id"], tuple(i["size"]), tuple(i["model_size"]))
                           for i in t.get("images", [])]
            turns.append(Turn(**t))
        evidence = [Evidence.from_dict(e) for e in d.pop("evidence", [])]
        return cls(turns=turns, evidence=evidence, **d)

    def save(self, path: str | Path, with_images: bool = True) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(with_images), indent=1))
        tmp.replace(path)  # atomic: a crash never leaves a half-written trace
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        return cls.from_dict(json.loads(Path(path).read_text()))
