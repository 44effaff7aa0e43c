"""The `Volume`: voxels in one canonical orientation, with spacing, affine and modality.

Canonical orientation (every loader produces it):

* the array is float32 in ``(z, y, x)`` order;
* ``x`` (last axis) increases towards the patient's **Left**, ``y`` towards **Posterior**,
  ``z`` towards **Superior**: the voxel axes are LPS+, the DICOM patient convention;
* ``affine`` maps homogeneous array indices ``(z, y, x, 1)`` to patient coordinates in
  millimetres, also LPS+ (DICOM). NIfTI (RAS+) inputs are converted on load.

With this choice an axial slice ``data[z]`` shown as an image already follows the radiological
convention (patient right on the image left, anterior at the top); coronal and sagittal views flip
``z`` so that superior is at the top. A 2-D image (X-ray, PNG) is a volume with one slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging.errors import MMReasonError
from imaging.provenance import UNKNOWN_SEQUENCE, Fact, fact_sources

ORIENTATION = "LPS"
MODALITIES = ("CT", "MR", "XR", "PT", "US", "OT")


class VolumeError(MMReasonError, ValueError):
    """A volume's arrays or geometry are inconsistent."""


@dataclass
class Volume:
    """Voxels plus the geometry needed to put them in millimetres.

    Attributes:
        data: float32 array ``(z, y, x)`` in the canonical LPS orientation. CT is in Hounsfield
            units (rescale slope/intercept already applied).
        spacing: voxel size in mm as ``(z, y, x)``; for 2-D images the z entry is 1.0.
        affine: 4x4 map from ``(z, y, x, 1)`` indices to LPS patient coordinates in mm.
        modality: ``CT``, ``MR``, ``XR``, ... (see `MODALITIES`).
        metadata: technical tags only (allow-listed by the loaders); never patient identifiers.
        name: a short de-identified label (file stem or series description), shown to models.
        color: optional ``(z, y, x, 3)`` uint8 copy for colour inputs the caller asked to keep.
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str = "OT"
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "volume"
    color: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise VolumeError(f"Volume data must be 3-D (z, y, x), got shape {self.data.shape}")
        if self.data.dtype != np.float32:
            self.data = self.data.astype(np.float32)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if len(self.spacing) != 3 or min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
            raise VolumeError(f"spacing must be three positive mm values (z, y, x), got {self.spacing}")
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise VolumeError(f"affine must be 4x4, got {self.affine.shape}")

    @classmethod
    def from_array(
        cls,
        data: np.ndarray,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
        **kwargs: Any,
    ) -> "Volume":
        """An axis-aligned volume: ``origin`` is the LPS position (x, y, z) of voxel (0, 0, 0)."""
        data = np.asarray(data, dtype=np.float32)
        if data.ndim == 2:
            data = data[None]
        return cls(data=data, spacing=spacing, affine=axis_aligned_affine(spacing, origin), **kwargs)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def is_2d(self) -> bool:
        return self.data.shape[0] == 1

    @property
    def orientation(self) -> str:
        return ORIENTATION

    @property
    def facts(self) -> dict[str, Fact]:
        """Modality, spacing and orientation, and an MR volume's sequence (``metadata["sequence"]``,
        `UNKNOWN_SEQUENCE` when nothing named it), each with its source (see `imaging.provenance`).

        A volume built from an array (phantoms, tests) has the ``caller`` source for every fact
        the loaders' notes in ``metadata`` do not classify.
        """
        sources = fact_sources(self.metadata)
        values = {"modality": self.modality, "spacing": self.spacing, "orientation": ORIENTATION}
        if self.modality == "MR":
            values["sequence"] = str(self.metadata.get("sequence") or UNKNOWN_SEQUENCE)
        return {name: Fact(name, value, *sources.get(name, ("caller", "")))
                for name, value in values.items()}

    def assumed_facts(self) -> list[Fact]:
        """The facts that were guessed or defaulted (empty when every fact has a real source)."""
        return [f for f in self.facts.values() if f.assumed]

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3, from the affine.

        ``|det|`` rather than the product of ``spacing``: on a sheared grid (gantry tilt) the
        column lengths of the affine overstate the voxel by 1/cos(tilt).
        """
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def pixel_area_mm2(self, plane_axis: int = 0) -> float:
        """Area in mm^2 of one voxel face in the plane normal to voxel axis ``plane_axis`` (0 = axial)."""
        a, b = [i for i in range(3) if i != plane_axis]
        return float(np.linalg.norm(np.cross(self.affine[:3, a], self.affine[:3, b])))

    def voxel_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """Continuous ``(z, y, x)`` indices (N, 3) -> LPS mm ``(x, y, z)`` (N, 3)."""
        pts = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
        return pts @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """LPS mm ``(x, y, z)`` (N, 3) -> continuous ``(z, y, x)`` indices (N, 3)."""
        pts = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        return np.linalg.solve(self.affine[:3, :3], (pts - self.affine[:3, 3]).T).T

    def summary(self) -> dict[str, Any]:
        finite = self.data[np.isfinite(self.data)]
        return {
            "name": self.name,
            "shape_zyx": list(self.shape),
            "spacing_mm_zyx": [round(s, 4) for s in self.spacing],
            "orientation": ORIENTATION,
            "modality": self.modality,
            "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
            "is_2d": self.is_2d,
            "facts": {name: f.to_dict() for name, f in self.facts.items()},
        }


def axis_aligned_affine(
    spacing: tuple[float, float, float], origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Affine for a volume whose (z, y, x) axes point S, P, L with the given spacing (z, y, x)."""
    sz, sy, sx = spacing
    affine = np.zeros((4, 4))
    affine[0, 2] = sx  # column index x -> L (world x)
    affine[1, 1] = sy  # row index y -> P (world y)
    affine[2, 0] = sz  # slice index z -> S (world z)
    affine[:3, 3] = origin
    affine[3, 3] = 1.0
    return affine
