"""`SegmenterSpec`: the segmenter part of a run specification, shared by every front door.

``infer``, ``bench``, ``segment`` (and the app, the servers and training) hold one of these; it
serialises to JSON with the rest of a run's configuration and turns into the ``segment`` tool's
options (`SegmenterSpec.tool_options`) or a segmenter (`SegmenterSpec.build`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from grounding.segmenters.base import SEGMENTERS, TARGET_DESCRIPTIONS, SegmentationError, Segmenter, get_segmenter


def offered_targets(name: str, options: dict[str, Any] | None = None) -> dict[str, str] | None:
    """Segment targets to offer a model (name -> description) for segmenter ``name`` built with
    ``options``; None for the classical segmenter (the tool's defaults)."""
    if name == "classical":
        return None
    return {t: TARGET_DESCRIPTIONS.get(t, t) for t in get_segmenter(name, **(options or {})).targets}


@dataclass
class SegmenterSpec:
    """Which segmenter the ``segment`` tool uses and how it runs.

    Attributes:
        name: one of `SEGMENTERS`; ``auto`` picks per request among those with weights.
        weights: weights paths: a TotalSegmentator folder, a MONAI bundle folder, a SAM/MedSAM
            ``.pth`` (one for a named model, any number for ``auto``).
        device: ``auto`` (GPU when present), ``cpu``, ``cuda`` / ``cuda:N``, ``mps``.
        half: float16 autocast on a GPU.
        sw_batch_size: sliding-window batch of MONAI bundles (default: the bundle's).
        sw_overlap: sliding-window overlap of MONAI bundles (default: the bundle's).
        fast: TotalSegmentator's 3 mm model (default: full resolution when its weights are present).
        cross_check: ``auto`` compares a model's mask with the classical one (agreement in the evidence).
    """

    name: str = "classical"
    weights: list[str] = field(default_factory=list)
    device: str = "auto"
    half: bool = True
    sw_batch_size: int | None = None
    sw_overlap: float | None = None
    fast: bool | None = None
    cross_check: bool = True

    def __post_init__(self) -> None:
        self.name = "totalseg" if self.name == "totalsegmentator" else self.name
        if self.name not in SEGMENTERS:
            raise SegmentationError(f"unknown segmenter '{self.name}'; choose one of {', '.join(SEGMENTERS)}")
        self.weights = [str(w) for w in ([self.weights] if isinstance(self.weights, str) else self.weights)]

    def options(self) -> dict[str, Any]:
        """Keyword options of `get_segmenter` (defaults left out, so ``classical`` has none)."""
        out: dict[str, Any] = {}
        if self.name == "classical":
            return out
        if self.weights:
            out["weights"] = list(self.weights) if self.name == "auto" else self.weights[0]
            if self.name != "auto" and len(self.weights) > 1:
                raise SegmentationError(f"--segmenter {self.name} takes one --weights path, got {len(self.weights)}; "
                                        "use --segmenter auto to choose among several")
        defaults = SegmenterSpec()
        for key in ("device", "half", "sw_batch_size", "sw_overlap", "fast"):
            if getattr(self, key) != getattr(defaults, key):
                out[key] = getattr(self, key)
        if self.name == "auto" and not self.cross_check:
            out["cross_check"] = False
        return out

    def tool_options(self) -> dict[str, Any]:
        """``ToolContext.options`` / ``LoopConfig.tool_options`` entries for this segmenter."""
        return {"segmenter_options": self.options()}

    def build(self) -> Segmenter:
        """The segmenter (loads its weights)."""
        return get_segmenter(self.name, **self.options())

    def targets(self) -> dict[str, str] | None:
        """Segment targets to offer a model (`offered_targets`)."""
        return offered_targets(self.name, self.options())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SegmenterSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})
