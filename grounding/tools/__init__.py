"""The grounding tools (``view``, ``crop``, ``segment``, ``measure``) and their default registry.

Each tool is one `grounding.tool.Tool`: a description and JSON Schema written for a VLM and a
plain function ``fn(context, **arguments) -> Evidence``. Boxes are Qwen-style absolute pixels
``bbox_2d = [x1, y1, x2, y2]`` in the named view; points are ``point_2d = [x, y]``.
"""

from __future__ import annotations

from grounding.tool import ToolRegistry
from grounding.tools.crop import CROP
from grounding.tools.measure import MEASURE
from grounding.tools.segment import segment_tool
from grounding.tools.view import VIEW

__all__ = ["CROP", "MEASURE", "VIEW", "default_registry", "segment_tool"]


def default_registry(targets: dict[str, str] | None = None) -> ToolRegistry:
    """A registry with ``view``, ``crop``, ``segment`` and ``measure``.

    Args:
        targets: segment targets (name -> description) offered to the model; default all of
            `grounding.segmenters.TARGETS`.
    """
    return ToolRegistry([VIEW, CROP, segment_tool(targets), MEASURE])
