"""The tiny SAM of `grounding.segmenters.tiny`, re-exported for the test modules that use it."""

from grounding.segmenters.tiny import TINY_SAM, save_tiny_sam

__all__ = ["TINY_SAM", "save_tiny_sam"]
