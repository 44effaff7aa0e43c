"""Intensity windows: CT presets in HU, robust percentile scaling for MR and X-ray."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.errors import MMReasonError


class WindowError(MMReasonError, ValueError):
    """Unknown window preset or invalid window."""


@dataclass(frozen=True)
class Window:
    """A linear window: values in ``[level - width/2, level + width/2]`` map to 0..255."""

    level: float
    width: float

    @property
    def low(self) -> float:
        """Value (HU for CT) mapped to 0."""
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        """Value (HU for CT) mapped to 255."""
        return self.level + self.width / 2


#: CT presets (level, width) in Hounsfield units.
CT_PRESETS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0),
    "mediastinum": Window(50.0, 350.0),
    "soft_tissue": Window(40.0, 400.0),
    "abdomen": Window(40.0, 400.0),
    "liver": Window(60.0, 160.0),
    "bone": Window(400.0, 1800.0),
    "brain": Window(40.0, 80.0),
}

#: Percentiles used by the ``auto`` window for MR and by X-ray normalisation.
MR_PERCENTILES = (1.0, 99.0)
XR_PERCENTILES = (0.5, 99.5)

PRESETS = tuple(CT_PRESETS) + ("auto",)

#: CT is shown in the lung window when at least this fraction of body voxels is aerated lung
LUNG_FRACTION = 0.05
LUNG_HU = (-950.0, -500.0)


def percentile_window(data: np.ndarray, low_pct: float, high_pct: float) -> Window:
    """A window spanning the given percentiles of the finite values (robust to outliers)."""
    finite = data[np.isfinite(data)]
    if finite.size > 2_000_000:  # a strided sample keeps this O(1) in memory for huge volumes
        finite = finite[:: finite.size // 1_000_000]
    if finite.size == 0:
        return Window(0.0, 1.0)
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    return Window(float(lo + hi) / 2, max(float(hi - lo), 1e-6))


def resolve_window(preset: str | Window | None, modality: str, data: np.ndarray) -> Window:
    """Turn a preset name (or ``None``/``"auto"``) into a concrete window for this modality.

    ``auto`` means: soft tissue for CT, percentiles `MR_PERCENTILES` for MR, `XR_PERCENTILES`
    for X-ray and anything else.
    """
    if isinstance(preset, Window):
        return preset
    name = (preset or "auto").lower()
    if name in CT_PRESETS:
        return CT_PRESETS[name]
    if name != "auto":
        raise WindowError(f"unknown window '{preset}'; choose one of {', '.join(PRESETS)}")
    if modality == "CT":
        return CT_PRESETS["soft_tissue"]
    pcts = MR_PERCENTILES if modality == "MR" else XR_PERCENTILES
    return percentile_window(data, *pcts)


def display_window(modality: str, data: np.ndarray) -> str:
    """The preset a study is first shown in: ``lung`` for CT with aerated lung (at least
    `LUNG_FRACTION` of body voxels in `LUNG_HU`), else ``soft_tissue``; ``auto`` for other modalities.

    Every view of a study (initial views, overlays, the app's viewer) starts from this one
    window, so a mask overlay never shows the lungs black beside lung-window views.
    """
    if modality != "CT":
        return "auto"
    sample = data[:: max(1, data.shape[0] // 32), ::4, ::4]
    body = np.count_nonzero(sample > LUNG_HU[0])
    lung = np.count_nonzero((sample > LUNG_HU[0]) & (sample < LUNG_HU[1]))
    return "lung" if body and lung / body >= LUNG_FRACTION else "soft_tissue"


def apply_window(data: np.ndarray, window: Window) -> np.ndarray:
    """Map values through the window to uint8 (NaN becomes 0)."""
    scaled = (np.nan_to_num(data, nan=window.low) - window.low) * (255.0 / window.width)
    return np.clip(scaled, 0, 255).astype(np.uint8)
