"""Shared helpers for the imaging.io tests: real test files shipped with pydicom/nibabel, phantoms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from imaging.volume import Volume


def pydicom_file(name: str) -> Path:
    """A file bundled with pydicom (never downloaded); skip the test if this one is absent."""
    import pydicom.data

    base = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent
    path = base / name
    if not path.exists():
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def pydicom_dir() -> Path:
    return pydicom_file("CT_small.dcm").parent


def nibabel_file(name: str) -> Path:
    """A file from nibabel's test data; skip the test if this one is absent."""
    from nibabel.testing import data_path

    path = Path(data_path) / name
    if not os.path.exists(path):
        pytest.skip(f"nibabel test file {name} is not installed")
    return path


def ct_phantom(shape: tuple[int, int, int] = (6, 10, 12), affine: np.ndarray | None = None, seed: int = 0) -> Volume:
    """Integral HU-like values (air, soft tissue, bone) on the given geometry."""
    rng = np.random.default_rng(seed)
    data = rng.choice(np.array([-1000.0, -50.0, 40.0, 700.0]), size=shape) + rng.integers(-20, 20, size=shape)
    if affine is None:
        affine = np.array([[0, 0, 0.7, -40.0], [0, 0.8, 0, 20.0], [2.5, 0, 0, 100.0], [0, 0, 0, 1]])
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    return Volume(data=data.astype(np.float32), spacing=spacing, affine=affine, modality="CT", name="phantom")


def oblique_affine(degrees: float = 20.0, shear: float = 0.3) -> np.ndarray:
    """A canonical-ish (z, y, x) -> LPS affine rotated about z and with a slice-direction shear."""
    t = np.radians(degrees)
    a = np.eye(4)
    a[:3, 2] = [0.7 * np.cos(t), 0.7 * np.sin(t), 0.0]
    a[:3, 1] = [-0.8 * np.sin(t), 0.8 * np.cos(t), 0.0]
    a[:3, 0] = [0.0, shear, 2.5]
    a[:3, 3] = [-50.0, 20.0, 100.0]
    return a
