"""Tiny Qwen-VL checkpoints shared by every test module that needs a real model.

Usage in a test module::

    from tests.helpers.tiny_models import random_image

    def test_something(tiny_model_dir):
        path = tiny_model_dir("qwen3_vl")      # built once per session, then reused

The fixture is registered once for the whole suite (``pytest_plugins`` in ``tests/conftest.py``),
so each arch is built once per pytest process into the session's temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from mmreason.tiny_families import FAMILIES, build_tiny_family
from mmreason.tiny_models import ARCHS, build_tiny_qwen_vl

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A function ``arch -> Path`` of a tiny checkpoint: ``"qwen2_5_vl"``, ``"qwen3_vl"`` or a
    family of `mmreason.tiny_families` (``"gemma3"``, ``"internvl"``, ``"qwen3_5"``, ``"lingshu"``)."""

    built: dict[str, Path] = {}

    def get(arch: str = "qwen2_5_vl") -> Path:
        if arch not in ARCHS + FAMILIES:
            raise ValueError(f"unknown tiny arch {arch!r}; choose one of {ARCHS + FAMILIES}")
        if arch not in built:
            out = tmp_path_factory.mktemp(f"tiny_{arch}")
            built[arch] = (build_tiny_qwen_vl(out, arch=arch, seed=0) if arch in ARCHS
                           else build_tiny_family(out, arch, seed=0))
        return built[arch]

    return get


def random_image(width: int, height: int, seed: int = 0):
    """A reproducible RGB noise image (PIL) of the given size in pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
