"""The classical segmenter: HU thresholds, connected components and morphology; no weights.

Targets (`TARGETS`):

* CT in Hounsfield units: ``body``, ``lungs``, ``lung_left``, ``lung_right``, ``airways``,
  ``bone`` (method and limits in `grounding.segmenters.chest`); ``liver``, ``spleen``,
  ``kidney_left``, ``kidney_right`` (a heuristic, `grounding.segmenters.organs`).
* 2-D chest radiographs (XR): ``lungs``, ``lung_left``, ``lung_right`` (lung fields), ``heart``
  (cardiac silhouette), ``thorax`` (`grounding.segmenters.xray`).
* ``lesion`` / ``nodule``: lung nodule candidates on CT, the lesion inside a prompt box on any
  modality, a lesion inside an organ given as ``Prompt.within`` on CT, and hyperintense lesions
  on MR (see `grounding.segmenters.lesions`).

Prompts: a box restricts the result to that voxel region, for every target; a point keeps the
connected component containing the point (or the nearest one). With a prompt and no target the
segmenter returns the region inside the box (or around the point) that differs from its
surroundings. ``Prompt.within`` (a mask) confines every result to it. Candidate targets
(``lesion``, ``nodule``) return an empty mask when nothing is found; a prompt on the lungs that
holds no compact nodule gives the dense lung tissue at the point (or nearest the box centre)
within the box; a prompted lesion search elsewhere that finds nothing raises `SegmentationError`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from grounding.segmenters.base import TARGETS, Prompt, SegmentationError, resolve_target
from grounding.segmenters.chest import (
    AIRWAY,
    COARSE_MM,
    HU_AIR,
    HU_BONE,
    LEFT,
    RIGHT,
    ChestLabels,
    analyze_chest,
    require_ct,
)
from grounding.segmenters.lesions import (
    MASS_MAX_DIAMETER_MM,
    MR_MIN_LESION_MM3,
    MR_SURFACE_MM,
    BrainContrast,
    MRLesions,
    NODULE_MAX_DIAMETER_MM,
    PLEURA_POCKET_MM,
    THICK_SLICE_MM,
    NoduleSearch,
    box_lesion,
    lung_nodules,
    mr_hyperintense_lesion,
    organ_lesion,
)
from grounding.segmenters.masses import MASS_MIN_DIAMETER_MM, LungMasses, lung_masses, with_masses
from grounding.segmenters.morphology import nearest_component, restrict_to_prompt
from grounding.segmenters.organs import ABDOMEN_TARGETS, AbdomenOrgans, find_abdominal_organs
from grounding.segmenters.xray import RadiographLabels, analyze_radiograph, require_radiograph
from imaging.volume import Volume

#: half size (mm) of the search window around a point prompt given without a box
POINT_WINDOW_MM = 20.0
#: a box counts as "on the lungs" when at least this fraction of it is lung
LUNG_BOX_FRACTION = 0.5
#: targets found on a 2-D chest radiograph
RADIOGRAPH_TARGETS = ("lungs", "lung_left", "lung_right", "heart", "thorax")


class ClassicalSegmenter:
    """Weight-free segmentation of CT and chest radiograph structures and lesion candidates.

    Args:
        coarse_mm: voxel size (mm) of the coarse grid used for connectivity analysis (default
            2.5); smaller is slower and follows thinner structures.

    Each analysis (chest CT, abdominal organs, radiograph) of the last volume is cached (keyed
    on the array's identity, geometry and a sample of its values), so asking for
    ``lung_left`` then ``lung_right`` costs one analysis.
    """

    name = "classical"
    targets: tuple[str, ...] = tuple(TARGETS)

    def __init__(self, coarse_mm: float = COARSE_MM) -> None:
        if coarse_mm <= 0:
            raise SegmentationError(f"coarse_mm must be positive, got {coarse_mm}")
        self.coarse_mm = float(coarse_mm)
        self._cache: dict[str, tuple[tuple, Any]] = {}

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape`` for ``target`` and/or ``prompt``.

        Raises:
            SegmentationError: unknown target (the message lists the known ones), a CT-only
                target on another modality, or nothing found where a prompt pointed.
        """
        prompt = prompt or Prompt()
        drawn = prompt.region(volume.shape)
        region = self._slab(volume, drawn, prompt.plane_axis)
        point = prompt.point_index(volume.shape)
        within = prompt.within_mask(volume.shape)
        if target is None and region is None and point is None:
            raise SegmentationError(f"give a target or a box/point prompt; known targets: {', '.join(self.targets)}")
        if target is None and volume.modality == "CT":
            # a bare prompt on CT asks for the lesion it shows: a nodule in the lung, else a focal lesion
            mask = self._lesion(volume, "lesion", region, point, within, drawn)
        elif target is None:
            mask = box_lesion(
                volume.data, region or self._point_window(volume, point), point, volume.spacing, False
            )
        else:
            name = resolve_target(target, self.targets)
            if name in ("lesion", "nodule"):
                mask = self._lesion(volume, name, region, point, within, drawn)
            elif volume.modality == "XR" and name in RADIOGRAPH_TARGETS:
                mask = restrict_to_prompt(self._radiograph(volume, name), region, point, volume.spacing)
            else:
                if name in ("heart", "thorax"):
                    require_radiograph(volume, name)
                require_ct(volume, name)
                mask = restrict_to_prompt(self._structure(volume, name), region, point, volume.spacing, drawn)
        return mask if within is None else mask & within

    @staticmethod
    def search_description(target: str | None, prompt: Prompt | None) -> str | None:
        """What an unprompted search for ``target`` covers, for the evidence of a negative finding."""
        if prompt is not None or target not in ("nodule", "lesion"):
            return None
        largest = NODULE_MAX_DIAMETER_MM if target == "nodule" else MASS_MAX_DIAMETER_MM
        return (f"CT: compact soft-tissue lesions of 4-{largest:.0f} mm inside the aerated lung masks or on the "
                f"pleura, every slice (on the mediastinal side only round ones touching it with a small part of "
                f"themselves), and masses of {MASS_MIN_DIAMETER_MM:g} mm or more the lung surrounds or wraps against "
                f"the mediastinum (one on the diaphragm or the heart only as a doubt, one fused with the mediastinum "
                f"beside the spine as a bulge of the lung's outline of uncertain volume, one fused with it further "
                f"forward or growing into the chest wall not at all; consolidations and ground-glass opacities are "
                f"not searched); MR: lesions of at least {MR_MIN_LESION_MM3:g} mm3 brighter than normal "
                f"white and grey matter (levels from the brain's own histogram), with cores at least "
                f"{MR_SURFACE_MM:g} mm inside the brain's edge")

    def search_weakness(self, volume: Volume, target: str | None, prompt: Prompt | None) -> list[str]:
        """Why a search of ``volume`` may be wrong (a prompt that selects from it keeps its doubts,
        except a CT nodule's: the missed-nodule caveats are about the rest of the lungs): on CT slices thicker than
        `THICK_SLICE_MM` nodules touching a vessel are found only when two slices wide or beside one straight vessel, and the lung search's own
        doubts (`lesions.NoduleSearch`, a mass larger than it counts first) once it has run on this volume; on MR the lesions found
        may be normal tissue (`MRLesions.doubt`); on a radiograph, the analysis' caveats on the
        heart (`RadiographLabels.caveats`); one lung's mask may hold part of the other where the
        lungs touch (`grounding.segmenters.chest.split_doubt`); on CT, why a spleen, left kidney or
        liver found may be a neighbour (`AbdomenOrgans.doubts`)."""
        # A prompt that selects from the same search (a point on the whole-brain lesions, any prompt
        # on a named structure) keeps that search's doubts: the part picked is no surer than the whole.
        whole_brain = prompt is None or (prompt.box_zyx is None and prompt.within is None)
        if whole_brain and target == "lesion" and volume.modality == "MR" and not volume.is_2d:
            doubt = self.mr_lesions(volume).doubt()
            return [doubt] if doubt else []
        if target == "heart" and volume.modality == "XR" and volume.is_2d:
            return list(self.radiograph(volume).caveats)
        if target in ("lung_left", "lung_right") and volume.modality == "CT":
            doubt = self.analysis(volume).split_doubt
            return [doubt] if doubt else []
        organ = _known(target, ABDOMEN_TARGETS)
        if organ and volume.modality == "CT" and not volume.is_2d:
            return list(self.organs(volume).doubts.get(organ, []))
        if prompt is not None or target not in ("nodule", "lesion") or volume.modality != "CT" or volume.is_2d:
            return []
        search = self._cache.get(f"search_{target}")
        search = search[1] if search is not None and search[0] == self._key(volume) else None
        out = list(search.masses) if search is not None else []
        if volume.spacing[0] > THICK_SLICE_MM:
            out.append(f"on {volume.spacing[0]:g} mm slices (thicker than {THICK_SLICE_MM:g} mm) nodules touching a "
                       f"vessel are found only when at least two slices ({2 * volume.spacing[0]:g} mm) wide and clearly "
                       f"wider than the vessel, or beside one straight vessel they are wider than: one may have been missed")
        if search is not None:
            out.extend(search.doubts)
        return out

    def nodule_search(self, volume: Volume, name: str, lungs: np.ndarray) -> NoduleSearch:
        """The (cached) unprompted lung search of a CT volume for ``name`` (``nodule``: up to
        `NODULE_MAX_DIAMETER_MM`; ``lesion``: masses up to `MASS_MAX_DIAMETER_MM` as well), with the
        masses the lungs enclose (`grounding.segmenters.masses`; a larger one is a doubt of a nodule search)."""
        def search() -> NoduleSearch:
            chest = self.analysis(volume)
            pockets = chest.pleural_pockets(volume.data, PLEURA_POCKET_MM, volume.spacing)
            largest = NODULE_MAX_DIAMETER_MM if name == "nodule" else MASS_MAX_DIAMETER_MM
            found = lung_nodules(volume.data, lungs, volume.spacing, pockets, largest)
            return with_masses(found, self.masses(volume), volume.spacing, largest)

        return self._cached(f"search_{name}", volume, search)

    def masses(self, volume: Volume) -> LungMasses:
        """The (cached) lung masses of a CT volume (`grounding.segmenters.masses`): the same for the
        ``nodule`` and the ``lesion`` search, which differ only in what they keep of them."""
        def search() -> LungMasses:
            labels = self.analysis(volume).full_labels(volume.data)
            return lung_masses(volume.data, [labels == LEFT, labels == RIGHT], volume.spacing)

        return self._cached("masses", volume, search)

    def analysis(self, volume: Volume) -> ChestLabels:
        """The (cached) coarse chest analysis of a CT volume."""
        return self._cached("chest", volume, lambda: analyze_chest(volume, self.coarse_mm))

    def radiograph(self, volume: Volume) -> RadiographLabels:
        """The (cached) analysis of a 2-D chest radiograph (`grounding.segmenters.xray`)."""
        return self._cached("radiograph", volume, lambda: analyze_radiograph(volume))

    def organs(self, volume: Volume) -> AbdomenOrgans:
        """The (cached) abdominal organs of a CT volume (`grounding.segmenters.organs`)."""
        return self._cached(
            "organs", volume, lambda: find_abdominal_organs(volume, self.analysis(volume))
        )

    def _key(self, volume: Volume) -> tuple:
        """What identifies a volume for the cache (its array, geometry and a sample of its values)."""
        data = volume.data
        return (
            id(data), data.shape, volume.spacing, volume.affine.tobytes(), self.coarse_mm,
            float(data[:: max(1, data.shape[0] // 7), :: 29, :: 31].sum()),
        )

    def _cached(self, kind: str, volume: Volume, compute: Callable[[], Any]) -> Any:
        key = self._key(volume)
        if kind not in self._cache or self._cache[kind][0] != key:
            self._cache.pop(kind, None)  # drop the old full-resolution masks before computing new ones
            self._cache[kind] = (key, compute())
        return self._cache[kind][1]

    def _radiograph(self, volume: Volume, name: str) -> np.ndarray:
        return self.radiograph(volume).mask(name)[None].copy()

    def _structure(self, volume: Volume, name: str) -> np.ndarray:
        if name in ABDOMEN_TARGETS:
            return self.organs(volume).mask(name).copy()
        chest = self.analysis(volume)
        if name == "body":
            return chest.full_body(volume.data).copy()
        if name == "bone":
            return (volume.data >= HU_BONE) & chest.full_body(volume.data)
        if name != "airways" and chest.lung_error:
            raise SegmentationError(chest.lung_error)
        if name == "lungs":
            return chest.full_mask(volume.data, LEFT, RIGHT)
        return chest.full_mask(volume.data, {"lung_left": LEFT, "lung_right": RIGHT, "airways": AIRWAY}[name])

    def _lungs_or_none(self, volume: Volume) -> np.ndarray | None:
        try:
            chest = self.analysis(volume)
        except SegmentationError:
            return None
        if chest.lung_error:
            return None
        labels = chest.full_labels(volume.data)
        return (labels == LEFT) | (labels == RIGHT)

    def _lesion(
        self,
        volume: Volume,
        name: str,
        region: tuple[slice, slice, slice] | None,
        point: tuple[int, int, int] | None,
        within: np.ndarray | None = None,
        drawn: tuple[slice, slice, slice] | None = None,
    ) -> np.ndarray:
        if volume.modality == "MR" and name == "lesion":
            return self._mr_lesion(volume, region, point, within)
        if volume.modality == "CT" and name == "lesion" and within is not None and region is None:
            return organ_lesion(volume.data, within, volume.spacing, point)
        if volume.modality != "CT":
            if region is None and point is None or name == "nodule":
                raise SegmentationError(
                    f"'{name}' candidates without a prompt need CT (lung nodules) or MR (bright lesions), "
                    f"got {volume.modality}; draw a box around the lesion"
                )
            return box_lesion(
                volume.data, region or self._point_window(volume, point), point, volume.spacing, False
            )
        lungs = self._lungs_or_none(volume)
        # a mass the lung surrounds lies outside the lung masks but in the lung search's result
        on_lungs = lungs is not None and (name == "nodule" or _mostly_in(lungs, drawn, point)
                                          or _mostly_in(self.nodule_search(volume, name, lungs).mask, drawn, point))
        if name == "nodule" and lungs is None:
            raise SegmentationError("no lungs found, so no lung nodules; use target 'lesion' with a box prompt")
        if on_lungs or (region is None and point is None):
            if lungs is None:
                raise SegmentationError(
                    "found no lungs to search for nodules; draw a box around the lesion to segment it"
                )
            found = restrict_to_prompt(self.nodule_search(volume, name, lungs).mask, region, point, volume.spacing,
                                       drawn)
            if found.any() or (region is None and point is None):
                return found
            # the prompt shows something that is no compact nodule (a mass, a pleural lesion):
            # the dense lung tissue at the point, or nearest the box centre, within the box
            dense = (volume.data >= HU_AIR) & lungs
            centre = point or tuple((s.start + s.stop - 1) // 2 for s in drawn)  # type: ignore[union-attr]
            return restrict_to_prompt(dense, region, centre, volume.spacing)
        return box_lesion(
            volume.data, region or self._point_window(volume, point), point, volume.spacing, True
        )

    def _mr_lesion(
        self, volume: Volume, region: tuple[slice, slice, slice] | None, point: tuple[int, int, int] | None,
        within: np.ndarray | None,
    ) -> np.ndarray:
        if within is None and region is None:
            found = self.mr_lesions(volume)
        else:
            search = np.ones(volume.shape, dtype=bool) if within is None else within.copy()
            if region is not None:
                boxed = np.zeros(volume.shape, dtype=bool)
                boxed[region] = True
                search &= boxed
            found = mr_hyperintense_lesion(volume.data, volume.spacing, search)
        if not found.kept:
            return np.zeros(volume.shape, dtype=bool)
        if point is not None:
            return nearest_component(np.isin(found.labels, found.kept), point, volume.spacing)
        return np.isin(found.labels, found.kept)

    def mr_contrast(self, volume: Volume) -> BrainContrast | None:
        """The brain's own grey-white contrast (`lesions.BrainContrast`), which can tell a T1 from a
        FLAIR or T2 when the files do not name the sequence; None on 2-D or non-MR images."""
        if volume.modality != "MR" or volume.is_2d:
            return None
        try:
            return self.mr_lesions(volume).contrast
        except SegmentationError:
            return None

    def mr_lesions(self, volume: Volume) -> MRLesions:
        """The (cached) hyperintense lesions of a brain MR, searched over the whole brain."""
        return self._cached("mr_lesions", volume, lambda: mr_hyperintense_lesion(
            volume.data, volume.spacing, np.ones(volume.shape, dtype=bool)))

    @staticmethod
    def _slab(
        volume: Volume, region: tuple[slice, slice, slice] | None, plane_axis: int | None
    ) -> tuple[slice, slice, slice] | None:
        """The 3-D search region of a box drawn on one slice of a 3-D volume.

        The box is one slice thick along ``plane_axis``; a 3-D search extends it by the box's
        larger in-plane size (mm) on each side of that slice, so an object boxed on any of its
        slices, not only its widest, lies inside whole. Other boxes are returned unchanged.
        """
        if region is None or plane_axis is None or volume.is_2d:
            return region
        axis_slice = region[plane_axis]
        if axis_slice.stop - axis_slice.start != 1:
            return region
        width_mm = max((s.stop - s.start) * volume.spacing[a] for a, s in enumerate(region) if a != plane_axis)
        half = int(np.ceil(width_mm / volume.spacing[plane_axis]))
        out = list(region)
        out[plane_axis] = slice(max(axis_slice.start - half, 0),
                                min(axis_slice.stop + half, volume.shape[plane_axis]))
        return tuple(out)  # type: ignore[return-value]

    @staticmethod
    def _point_window(
        volume: Volume, point: tuple[int, int, int] | None
    ) -> tuple[slice, slice, slice]:
        """A box of +-`POINT_WINDOW_MM` around ``point``, clipped to the volume (one slice in 2-D)."""
        assert point is not None
        out = []
        for p, n, sp in zip(point, volume.shape, volume.spacing):
            half = int(round(POINT_WINDOW_MM / sp))
            out.append(slice(max(p - half, 0), min(p + half + 1, n)))
        return tuple(out)  # type: ignore[return-value]


def _known(target: str | None, names: tuple[str, ...]) -> str | None:
    """The canonical name of ``target`` (aliases resolved) when it is one of ``names``, else None."""
    try:
        name = resolve_target(target, TARGETS) if target else None
    except SegmentationError:
        return None
    return name if name in names else None


def _mostly_in(mask: np.ndarray, region: tuple[slice, slice, slice] | None, point: tuple[int, int, int] | None) -> bool:
    """Whether a prompt lies on ``mask``: the point inside it, or most of the box."""
    if point is not None and mask[point]:
        return True
    if region is None:
        return False
    return float(mask[region].mean()) >= LUNG_BOX_FRACTION
