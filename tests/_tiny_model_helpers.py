"""Tiny Qwen-VL checkpoints shared by every test module that needs a real model.

Usage in a test module::

    from _tiny_model_helpers import random_image, tiny_model_dir  # noqa: F401 (fixture)

    def test_something(tiny_model_dir):
        path = tiny_model_dir("qwen3_vl")      # built once per session, then reused

Each arch is built once per pytest process into the session's temporary directory and cached
here at module level: a fixture imported into several test modules gets one definition per
module, so the cache (not pytest's fixture scope) is what makes the loop, benchmark and training
tests share the same two checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from mmreason.tiny_families import FAMILIES, build_tiny_family
from mmreason.tiny_models import ARCHS, build_tiny_qwen_vl

_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A function ``arch -> Path`` of a tiny checkpoint: ``"qwen2_5_vl"``, ``"qwen3_vl"`` or a
    family of `mmreason.tiny_families` (``"gemma3"``, ``"internvl"``, ``"qwen3_5"``, ``"lingshu"``)."""

    def get(arch: str = "qwen2_5_vl") -> Path:
        if arch not in ARCHS + FAMILIES:
            raise ValueError(f"unknown tiny arch {arch!r}; choose one of {ARCHS + FAMILIES}")
        if arch not in _BUILT:
            out = tmp_path_factory.mktemp(f"tiny_{arch}")
            _BUILT[arch] = (build_tiny_qwen_vl(out, arch=arch, seed=0) if arch in ARCHS
                            else build_tiny_family(out, arch, seed=0))
        return _BUILT[arch]

    return get


def random_image(width: int, height: int, seed: int = 0):
    """A reproducible RGB noise image (PIL) of the given size in pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
