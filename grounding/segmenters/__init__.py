"""Segmentation engines behind one interface (`Segmenter`), used by the ``segment`` tool.

>>> from grounding.segmenters import get_segmenter
>>> seg = get_segmenter("classical")
>>> mask = seg.segment(volume, "lung_left")          # doctest: +SKIP

Backends: ``classical`` (no weights; `ClassicalSegmenter`), ``sam`` / ``medsam`` (a
segment-anything checkpoint; `grounding.segmenters.sam`), ``totalsegmentator`` (optional
package; `grounding.segmenters.totalseg`). Heavy backends are imported only when requested.
"""

from grounding.segmenters.base import (
    ALIASES,
    ORGAN_TARGETS,
    SEGMENTERS,
    TARGETS,
    Prompt,
    SegmentationError,
    Segmenter,
    get_segmenter,
    normalize_target,
    resolve_target,
)
from grounding.segmenters.classical import ClassicalSegmenter

__all__ = [
    "ALIASES",
    "ORGAN_TARGETS",
    "SEGMENTERS",
    "TARGETS",
    "ClassicalSegmenter",
    "Prompt",
    "SegmentationError",
    "Segmenter",
    "get_segmenter",
    "normalize_target",
    "resolve_target",
]
