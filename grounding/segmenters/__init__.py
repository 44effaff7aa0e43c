"""Segmentation engines behind one interface (`Segmenter`), used by the ``segment`` tool.

>>> from grounding.segmenters import get_segmenter
>>> seg = get_segmenter("classical")
>>> mask = seg.segment(volume, "lung_left")          # doctest: +SKIP

Backends (`SEGMENTERS`): ``classical`` (no weights; `ClassicalSegmenter`), ``totalseg``
(TotalSegmentator; `grounding.segmenters.totalseg`), ``monai`` (a MONAI bundle;
`grounding.segmenters.monai_bundle`), ``sam`` / ``medsam`` (a segment-anything checkpoint;
`grounding.segmenters.sam`) and ``auto`` (per request the best one with weights;
`grounding.segmenters.auto`). Heavy backends are imported only when requested; `SegmenterSpec`
(`grounding.segmenters.spec`) is the run-spec form of the choice. `ClassicalSegmenter` too is
imported on first use (it needs scipy), so reading the registry to register command-line options
costs no import of scipy.
"""

from grounding.segmenters.base import (
    ALIASES,
    MODEL_TARGETS,
    ORGAN_TARGETS,
    SEGMENTERS,
    TARGET_DESCRIPTIONS,
    TARGETS,
    Prompt,
    SegmentationError,
    Segmenter,
    get_segmenter,
    normalize_target,
    resolve_target,
)

__all__ = [
    "ALIASES",
    "MODEL_TARGETS",
    "ORGAN_TARGETS",
    "SEGMENTERS",
    "TARGET_DESCRIPTIONS",
    "TARGETS",
    "ClassicalSegmenter",
    "Prompt",
    "SegmentationError",
    "Segmenter",
    "get_segmenter",
    "normalize_target",
    "resolve_target",
]


def __getattr__(name: str):
    if name == "ClassicalSegmenter":
        from grounding.segmenters.classical import ClassicalSegmenter

        return ClassicalSegmenter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
