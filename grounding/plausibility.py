"""Quality assessments of segmentations and measurements (see `grounding.quality`).

A classical segmenter tuned on some scans can return confident wrong masks on others (half a lung
lost at a thin chest wall, a liver found in part). These checks compare each result with what
anatomy allows, with the scan's own facts and with its companion structures, so that the evidence
says when it may be wrong:

* **assumed facts**: a spacing the file did not give makes every mm figure a guess; an assumed
  orientation makes every side a guess; a modality guessed from the values makes HU thresholds a
  guess (`imaging.provenance`); a modality other than CT (given or from the DICOM tag) on values
  with the Hounsfield signature of CT makes the search for that modality doubtful.
* **normative adult volumes** (`NORMAL_ML`, CT at full inspiration for the lungs): outside the range
  is ``doubtful``; below `FAR_BELOW` of its lower end or above `FAR_ABOVE` of its upper end is
  ``implausible``. A mask cut by the field of view (touching the first or last slice, or the image
  border) is a lower bound: too small is then only ``doubtful``; so are small lungs, whose volume
  varies with inspiration and coverage (a lung partly lost shows in the pair ratio instead).
* **expected side**: liver and the right kidney/lung on the patient's right, spleen and the left
  kidney/lung on the left; the wrong side is ``implausible``.
* **HU consistency** (CT, `EXPECTED_HU`): a mean outside the tissue's range is ``implausible``; a lung
  lesion's below its band but within the ground-glass nodule's, a share of it solid
  (`LESION_MIN_SOLID_SHARE`), is a part-solid mass measured with aerated lung: ``doubtful``.
* **companions**: the right/left lung volume ratio (normal about 1.1; `LUNG_RATIO` doubtful
  outside, `LUNG_RATIO_FAR` implausible outside), since losing part of one lung shows there first.
* **cardiothoracic ratio** outside `CTR_RANGE` is ``implausible`` (heart or thorax mis-found); below
  `CTR_DOUBTFUL_BELOW` it is ``doubtful`` (a heart border probably missed).
* **radiograph shapes** (`radiograph_quality`): lung fields reaching the image's side edge, two
  fields of very different size, a flat-band cardiac silhouette are ``implausible``; lung fields
  whose lower borders are faint (no diaphragm under them, `XR_DIAPHRAGM_CONTRAST`) are ``doubtful``
  for their area (`XR_FAINT_BORDERS`), and for the widths between them too when the two fields are
  also short for their width (`XR_FIELDS_MIN_HEIGHT`: lower zones lost). What a hidden lower heart
  does to the ratio is also the segmenter's own caveat, given only when it changes the answer.

* **the image itself** (`image_quality`, on every view): a constant image holds nothing to see
  (``implausible``); a modality guessed from the values other than CT (a photograph, a CT stored
  without its rescale intercept, a synthetic image are all "MR" or "XR" by that guess) is
  ``doubtful``, so an answer naming the modality says it is a guess.
* **radiograph view** (`radiograph_view_quality`): the lung fields, the cardiac silhouette and the
  cardiothoracic ratio are defined on a frontal (PA/AP) film; a lateral or oblique film (DICOM
  ``ViewPosition``, or a ``PatientOrientation`` whose rows run anterior-posterior) is
  ``implausible`` for them, a decubitus film ``doubtful``; the heart on an AP film is ``doubtful``
  (magnified against the PA film the 0.5 cut-off is defined on).
* **lung scale**: a nodule found in lungs that the scan range does not cut but that measure far
  outside the adult range (`lung_scale_quality`) is ``doubtful``: its millimetres rest on a spacing
  (or lung mask) that is probably wrong.
* **a larger lung mass missed** (`missed_mass_quality`): lesions found in the lungs that are all
  smaller than a mass (or none), beside one lung markedly smaller than the other (`MISSED_MASS_RATIO`, tighter
  than `LUNG_RATIO`: a lung search that found only small lesions has no mass to explain it), are
  ``doubtful``: a mass fused with the mediastinum or the collapse around it, which the lung mask
  leaves out, may take the missing lung's place.
* **MR sequence** (`sequence_quality`): the classical lesion search looks for lesions brighter than
  white and grey matter, as they are on FLAIR and T2. On a T1 (named by the files, `imaging.io.sequence`)
  they are dark: the search is ``implausible``; on T1 with contrast only enhancing lesions are
  bright (``doubtful``), as on any other named sequence. When nothing names the sequence, the
  image's own grey-white contrast may say T1 (``doubtful``, found or not) or FLAIR/T2 (no caveat);
  when it says neither, "no lesion" is ``doubtful`` and a lesion found keeps its quality.
* **field of view of a negative search**: a lung search on a scan whose range cuts the lungs
  covers only the part shown, so "no nodule" is ``doubtful`` (`negative_quality`).

The ranges are the ones radiology uses for adults; children, resections and situs inversus fall
outside them, which is why a level is a caveat for the reader, not a verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from grounding.quality import Quality
from imaging.io.metadata import looks_like_ct
from imaging.provenance import UNKNOWN_SEQUENCE
from imaging.volume import Volume

#: adult volumes in mL (whole organ). Lungs: CT at inspiration; liver 1.0-2.6 L; spleen up to
#: 500 mL before splenomegaly; kidneys 90-300 mL each.
NORMAL_ML: dict[str, tuple[float, float]] = {
    "lungs": (2200.0, 9000.0),
    "lung_left": (900.0, 4200.0),
    "lung_right": (1100.0, 4800.0),
    "liver": (900.0, 2800.0),
    "spleen": (60.0, 600.0),
    "kidney_left": (80.0, 320.0),
    "kidney_right": (80.0, 320.0),
}
#: a volume under this share of the lower bound, or over this multiple of the upper, is implausible
FAR_BELOW = 0.4
FAR_ABOVE = 2.5
#: side each lateral structure must lie on
EXPECTED_SIDE: dict[str, str] = {
    "liver": "right", "spleen": "left", "kidney_left": "left", "kidney_right": "right",
    "lung_left": "left", "lung_right": "right",
}
#: plausible mean HU per target on CT (plain to enhanced; fatty liver down to -30 HU)
EXPECTED_HU: dict[str, tuple[float, float]] = {
    "lungs": (-1000.0, -450.0), "lung_left": (-1000.0, -450.0), "lung_right": (-1000.0, -450.0),
    "liver": (-40.0, 220.0), "spleen": (0.0, 230.0), "kidney_left": (0.0, 350.0), "kidney_right": (0.0, 350.0),
    "nodule": (-450.0, 1200.0), "lesion": (-150.0, 1200.0), "bone": (150.0, 3000.0), "airways": (-1024.0, -500.0),
}
#: a lung lesion whose mean lies below the lesion band but within the nodule's (ground-glass) band, with at
#: least this share of its voxels solid (`SOLID_MIN_HU` or more), is a part-solid mass: a solid core in
#: ground glass or consolidation, or a mass with air in it (air bronchograms, a cavity) whose mask holds
#: aerated lung at its edge (a real NSCLC mass was declined at a mean of -167 HU; a 30 mm solid ball in a
#: 7 mm -340 HU halo reads -167 HU with 0.41 solid). Its extent is unsure, not its being tissue: ``doubtful``
LESION_MIN_SOLID_SHARE = 0.3
SOLID_MIN_HU = -100.0
#: ... or, ground glass about a small solid core (a part-solid mass the lung-mass search grew into its ground glass:
#: mean -480 HU, 0.07-0.11 solid on synthetic chests), at least the first share of its voxels at
#: `GROUND_GLASS_MIN_HU` or more (not aerated lung, about -850 HU) and at least the second solid
LESION_MIN_OPAQUE_SHARE = (0.8, 0.03)
GROUND_GLASS_MIN_HU = -750.0
#: right/left lung volume ratio: normal about 1.1
LUNG_RATIO = (0.65, 1.8)
LUNG_RATIO_FAR = (0.45, 2.6)
#: right/left lung volume ratios outside this range make lesions found in the lungs that are all smaller
#: than a mass doubtful (`missed_mass_quality`): adult ratios lie within about 0.9-1.35 (the heart takes
#: the left's room); a real paravertebral tumour fused with the aorta left its lung at 1.69
MISSED_MASS_RATIO = (0.75, 1.45)
#: the cardiothoracic ratio above which the heart is enlarged (on a PA film)
CTR_ENLARGED = 0.5
#: cardiothoracic ratios outside this range mean a mis-found heart or thorax
CTR_RANGE = (0.25, 0.85)
#: below this the ratio is doubtful: adult ratios are about 0.45 +- 0.05, so under 0.30 the heart
#: mask has more likely lost a border (a lower lung zone as bright as the heart) than the heart is small
CTR_DOUBTFUL_BELOW = 0.30
#: on a radiograph the smaller lung field holds at least this share of the larger one's area
XR_FIELD_BALANCE = 0.35
#: the cardiac silhouette (from the lungs' mid-height down, so flatter than the heart: 0.45-0.7 on
#: radiographs it reads right) is at least this tall for its width; a band between wrong fields is flatter
HEART_MIN_ASPECT = 0.4
#: the diaphragm under a lung field is a strong edge (abdomen against aerated lung): the median rise
#: from just above to just below a field's lower border, as a share of the film's 1-99 percentile
#: range, is at least this for one of the two fields; fainter borders mean the field ends inside lung
#: (lower zones under soft tissue lost), so the lung area and a heart width between the fields are short
XR_DIAPHRAGM_CONTRAST = 0.15
#: how the faint-lower-border doubt begins. It bears on the lung fields' area only: their widths
#: (the thorax, at the inner rib margins, traced on down the lateral recesses) and a heart width between
#: them carry their own doubts (`grounding.segmenters.xray`), so an answer stating no area skips it
XR_FAINT_BORDERS = "the lung fields' lower borders are faint"
#: both lung fields together (apex to base over their outer span, in pixels) are at least this tall for
#: their width when their lower zones are in them (SCR masks of 57 JSRT tuning films: 0.81-1.14, 5th-95th
#: percentile, median 0.98); faint lower borders on shorter fields mean lower zones lost, which can make
#: the thoracic width and a heart width short as well (114 JSRT tuning films: of the 44 ratios no other
#: caveat named, 3 of the 5 off by over 0.05 and 5 of the 39 right ones had such fields)
XR_FIELDS_MIN_HEIGHT = 0.95
#: the rise is measured over this share of the image height above and below the border
XR_BORDER_BAND = 0.03
#: a mask is cut by the field of view where its section on the edge is this share of its largest
CUT_FRACTION = 0.25
#: DICOM ViewPosition values of radiographs that are not frontal projections (lateral, oblique)
NON_FRONTAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLO", "RLO", "LAO", "RAO", "LPO", "RPO", "OBLIQUE"})
#: frontal films taken with the patient lying on one side: the heart and mediastinum shift
DECUBITUS_VIEWS = frozenset({"LLD", "RLD", "DECUBITUS"})
#: targets measured on a frontal radiograph
FRONTAL_TARGETS = frozenset({"lungs", "lung_left", "lung_right", "heart"})
#: targets whose HU thresholds assume CT
CT_TARGETS = frozenset(NORMAL_ML) | {"body", "bone", "airways", "nodule", "lesion", "lungs"}


def fact_quality(volume: Volume, *, uses_mm: bool = True, uses_side: bool = False,
                 uses_hu: bool = False) -> Quality:
    """Caveats from the volume's assumed facts, for a result that depends on them."""
    q = Quality(checks=["facts"])
    facts = volume.facts
    if uses_mm and facts["spacing"].assumed:
        q.flag("doubtful", "pixel spacing assumed (not in the file): mm and mL figures are not calibrated")
    if uses_side and facts["orientation"].assumed and not volume.is_2d:
        q.flag("doubtful", "orientation assumed (no trusted header): left and right may be swapped")
    if uses_hu and volume.metadata.get("hu_offset_assumed") is not None:
        q.flag("doubtful", f"the file holds CT values without their rescale intercept (air near 0): "
                           f"{volume.metadata['hu_offset_assumed']:g} (the usual one) was assumed, so HU figures may "
                           f"be off by tens of HU")
    if uses_hu and facts["modality"].assumed:
        # "not CT" says nothing of the sequence: an MR lesion search assumes FLAIR or T2
        sequence = facts.get("sequence")
        unnamed = " (the sequence is unknown)" if sequence is None or sequence.assumed else ""
        _guessed_modality(q, volume, unnamed, "the search may not apply")
    elif uses_hu and volume.modality != "CT" and looks_like_ct(volume.data):
        # a stated modality the values contradict: a CT given as MR gets an MR search of a "brain"
        stated = facts["modality"].detail or facts["modality"].source
        q.flag("doubtful", f"the voxel values carry the Hounsfield-unit signature of CT (air near -1000, fat near "
                           f"-100) although the modality is {volume.modality} ({stated}): the {volume.modality} "
                           f"search may not apply")
    return q


#: MR sequences on which the lesions the classical search looks for are brighter than brain tissue
BRIGHT_LESION_SEQUENCES = frozenset({"FLAIR", "T2"})


def sequence_quality(volume: Volume, *, found: bool, weighting: str | None = None,
                     contrast: str = "") -> Quality:
    """How far a search for bright MR lesions applies to ``volume``'s sequence (see the module
    docstring). ``weighting`` (``"T1"``, ``"FLAIR/T2"`` or None) and ``contrast`` (its measurement in
    words) come from the image itself: they decide an unnamed sequence and are held against a named
    FLAIR/T2; ``found``: the search found a lesion."""
    q = Quality(checks=["MR sequence"])
    fact = volume.facts.get("sequence")
    if fact is None:
        return q
    said = f"{fact.source}: {fact.detail}" if fact.detail else fact.source
    if fact.value in BRIGHT_LESION_SEQUENCES:
        if weighting == "T1":  # a mislabelled series or a wrong --sequence
            q.flag("doubtful", f"the sequence is given as {fact.value} ({said}) but the image's contrast is T1-like "
                               f"({contrast}): if it is T1, most lesions are dark and the bright-lesion search misses them")
        return q
    if fact.value == "T1":
        q.flag("implausible", f"lesions are searched as bright on FLAIR/T2; this is T1 ({said}), where most lesions "
                              f"are dark: the search can neither find nor exclude them; ask on the FLAIR or T2")
    elif fact.value == "T1C":
        q.flag("doubtful", f"lesions are searched as bright on FLAIR/T2; this is T1 with contrast ({said}), where only "
                           f"enhancing lesions are bright: non-enhancing ones are missed, enhancing vessels may be counted")
    elif fact.value != UNKNOWN_SEQUENCE:
        q.flag("doubtful", f"lesions are searched as bright on FLAIR/T2; this is {fact.value} ({said}): the search "
                           f"may not apply")
    elif weighting == "T1":
        q.flag("doubtful", f"the sequence is not known and the image's contrast is T1-like ({contrast}): lesions are "
                           f"searched as bright on FLAIR/T2, on T1 most are dark")
    elif weighting is None and not found:
        q.flag("doubtful", "the sequence is not known; the search assumes FLAIR or T2 (give a file named for its "
                           "sequence, e.g. *_FLAIR.nii.gz)")
    elif weighting is not None:
        q.checks.append(f"sequence not named; the image's contrast is {weighting}-like ({contrast})")
    return q


@dataclass(frozen=True)
class FieldCut:
    """Where a mask is cut by the edge of the scanned field (`touches_field_edge`): through its
    first or last slice (the scan range), or at the in-plane image border (the field of view).
    False when nothing is cut."""

    first_slice: bool = False
    last_slice: bool = False
    image_border: bool = False

    def __bool__(self) -> bool:
        return self.first_slice or self.last_slice or self.image_border

    @property
    def through_slices(self) -> bool:
        """Cut by the scan range (its first or last slice), not only at the image border."""
        return self.first_slice or self.last_slice

    def describe(self) -> str:
        """``first slice and image border``: the edges that cut, in words ("" when none does)."""
        where = [name for name, cut in (("first slice", self.first_slice), ("last slice", self.last_slice),
                                         ("image border", self.image_border)) if cut]
        return " and ".join(where)

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FieldCut":
        return cls(**{k: bool(v) for k, v in (d or {}).items() if k in cls.__dataclass_fields__})


def touches_field_edge(mask: np.ndarray, bbox: tuple[slice, slice, slice], volume: Volume) -> FieldCut:
    """Where a mask is cut by the edge of the scanned field.

    Grazing the edge (an organ's tip on the last slice, a few border pixels) loses little; a cut
    is where the mask's section on the edge is at least `CUT_FRACTION` of its largest section.
    """
    nz, ny, nx = mask.shape
    sub = mask[bbox]
    first = last = False
    if not volume.is_2d:
        areas = np.count_nonzero(sub, axis=(1, 2))
        largest = max(int(areas.max()), 1)
        first = bbox[0].start == 0 and bool(areas[0] >= CUT_FRACTION * largest)
        last = bbox[0].stop == nz and bool(areas[-1] >= CUT_FRACTION * largest)
    border = False
    for axis, n in ((1, ny), (2, nx)):
        sections = np.count_nonzero(sub, axis=tuple(a for a in range(3) if a != axis))
        extent = max(int(np.count_nonzero(sub.any(axis=axis))), 1)  # voxels of the widest face
        edges = ([0] if bbox[axis].start == 0 else []) + ([-1] if bbox[axis].stop == n else [])
        if any(sections[e] >= CUT_FRACTION * extent for e in edges):
            border = True
            break
    return FieldCut(first_slice=first, last_slice=last, image_border=border)


def structure_quality(
    volume: Volume,
    target: str | None,
    *,
    volume_ml: float | None,
    side: str | None,
    mean_hu: float | None,
    cut_at: FieldCut,
    whole_target: bool,
    solid_share: float | None = None,
    opaque_share: float | None = None,
) -> Quality:
    """Plausibility of one segmented structure (see the module docstring).

    ``whole_target``: the mask is meant to be the whole named structure (a 3-D segmentation by
    name, not a prompted piece or a single slice), so its volume can be held against the range.
    ``solid_share``: the share of its voxels of `SOLID_MIN_HU` or more (see `LESION_MIN_SOLID_SHARE`).
    ``opaque_share``: the share of its voxels of `GROUND_GLASS_MIN_HU` or more (see `LESION_MIN_OPAQUE_SHARE`).
    """
    q = Quality(checks=["volume range", "side", "HU"])
    if target is None:
        return q
    if cut_at:
        q.flag("doubtful", f"reaches the {cut_at.describe()} of the scan: the structure may be cut off, "
                           f"its size is a lower bound")
    if whole_target and volume_ml is not None and target in NORMAL_ML:
        lo, hi = NORMAL_ML[target]
        name = target.replace("_", " ")
        if volume_ml < lo:
            # lungs vary with inspiration and coverage; a lung partly lost shows in the pair ratio
            far = volume_ml < FAR_BELOW * lo and not cut_at and not target.startswith("lung")
            q.flag("implausible" if far else "doubtful",
                   f"{name} volume {volume_ml:.0f} mL is {'far ' if far else ''}below the adult range "
                   f"{lo:.0f}-{hi:.0f} mL; the segmentation is probably incomplete")
        elif volume_ml > hi:
            far = volume_ml > FAR_ABOVE * hi
            q.flag("implausible" if far else "doubtful",
                   f"{name} volume {volume_ml:.0f} mL is {'far ' if far else ''}above the adult range "
                   f"{lo:.0f}-{hi:.0f} mL; the mask probably includes neighbouring tissue")
    expected = EXPECTED_SIDE.get(target)
    if expected and side in ("left", "right") and side != expected and not volume.is_2d:
        q.flag("implausible", f"{target.replace('_', ' ')} found on the patient's {side}, expected {expected}")
    if mean_hu is not None and volume.modality == "CT" and target in EXPECTED_HU:
        lo, hi = EXPECTED_HU[target]
        solid = solid_share or 0.0
        part_solid = target == "lesion" and mean_hu < lo and (
            EXPECTED_HU["nodule"][0] <= mean_hu and solid >= LESION_MIN_SOLID_SHARE
            or (opaque_share or 0.0) >= LESION_MIN_OPAQUE_SHARE[0] and solid >= LESION_MIN_OPAQUE_SHARE[1])
        if part_solid:
            q.flag("doubtful", f"mean {mean_hu:.0f} HU is below solid lesion tissue ({lo:.0f} to {hi:.0f} HU) but "
                               f"{100 * solid:.0f}% of it is solid: a part-solid mass (ground glass or "
                               f"consolidation around it, or air in it) whose mask may hold aerated lung, so its "
                               f"extent and volume are uncertain")
        elif not lo <= mean_hu <= hi:
            q.flag("implausible", f"mean {mean_hu:.0f} HU is not {target.replace('_', ' ')} tissue "
                                  f"(expected {lo:.0f} to {hi:.0f} HU)")
    return q


def lung_pair_quality(right_ml: float, left_ml: float, cut: bool = False) -> Quality:
    """Right/left lung volume ratio check (see the module docstring).

    ``cut``: the scan range cuts the lungs (a scan of the lung bases), so the ratio compares the
    parts shown, which differ with the heights of the two domes: an unusual ratio is then only
    doubtful.
    """
    q = Quality(checks=["lung ratio"])
    if left_ml <= 0 or right_ml <= 0:
        q.flag("implausible", "only one lung was found")
        return q
    ratio = right_ml / left_ml
    shown = "; the scan range cuts the lungs, so only the parts shown are compared" if cut else ""
    if not LUNG_RATIO_FAR[0] <= ratio <= LUNG_RATIO_FAR[1]:
        q.flag("doubtful" if cut else "implausible",
               f"right/left lung volume ratio {ratio:.2f} ({right_ml:.0f} / {left_ml:.0f} mL) is far from the normal "
               f"1.1: part of one lung is probably missing from the mask{shown}")
    elif not LUNG_RATIO[0] <= ratio <= LUNG_RATIO[1]:
        q.flag("doubtful", f"right/left lung volume ratio {ratio:.2f} ({right_ml:.0f} / {left_ml:.0f} mL) is "
                           f"unusual (normal about 1.1){shown}")
    return q


def lung_scale_quality(lungs_ml: float, cut_at: FieldCut) -> Quality:
    """The scale a size found in the lungs rests on: lungs that the scan range does not cut but
    that measure far outside the adult range (under `FAR_BELOW` of its lower end, over `FAR_ABOVE`
    of its upper) mean the spacing (or the lung mask) is off, and a nodule's millimetres with it."""
    q = Quality(checks=["lung scale"])
    lo, hi = NORMAL_ML["lungs"]
    if not cut_at and not FAR_BELOW * lo <= lungs_ml <= FAR_ABOVE * hi:
        q.flag("doubtful", f"the lungs it lies in measure {lungs_ml:.0f} mL with the scan's spacing, far from the "
                           f"adult {lo:.0f}-{hi:.0f} mL: the spacing (or the lung mask) may be wrong, and this size "
                           f"with it")
    return q


def missed_mass_quality(right_ml: float, left_ml: float, largest_mm: float, mass_mm: float,
                        cut: bool = False) -> Quality:
    """Lesions found in the lungs, the largest ``largest_mm`` across (the diameter of a ball of its
    volume; 0 when none was found), when a mass is ``mass_mm`` or more: all smaller than a mass beside
    lungs whose right/left volume ratio lies outside `MISSED_MASS_RATIO` mean a mass (or the collapse
    around one) that the lung mask left out may take the smaller lung's room. Not judged when the scan
    range cuts the lungs (``cut``: the parts shown differ with the domes' heights) or when a mass was
    found (it explains the smaller lung)."""
    q = Quality(checks=["missed mass"])
    if cut or largest_mm >= mass_mm or left_ml <= 0 or right_ml <= 0:
        return q
    ratio = right_ml / left_ml
    if not MISSED_MASS_RATIO[0] <= ratio <= MISSED_MASS_RATIO[1]:
        smaller = "left" if ratio > 1 else "right"
        found = f"the largest lesion found is only {largest_mm:.0f} mm" if largest_mm else "the search found no lesion"
        q.flag("doubtful", f"a larger mass may have been missed: the {smaller} lung's mask is much smaller than the "
                           f"other's (right/left {ratio:.2f}: {right_ml:.0f} / {left_ml:.0f} mL, normal about 1.1) and "
                           f"{found}, so a mass fused with the mediastinum, or the collapsed lung around one, may "
                           f"take its room outside the mask")
    return q


def radiograph_quality(target: str | None, mask: np.ndarray, image: np.ndarray | None = None) -> Quality:
    """Shape checks of the lung fields and the cardiac silhouette on a frontal chest radiograph.

    Lung fields that reach the image's side edge are dark air outside the body, not lung; two
    fields of very different size mean one was lost or merged; a cardiac silhouette much wider
    than tall is a band between wrong fields, not a heart. With the ``image`` (same shape as the
    mask), lung fields none of whose lower borders shows the diaphragm's edge have probably lost
    their lower zones.
    """
    q = Quality(checks=["radiograph shape"])
    plane = mask[0] if mask.ndim == 3 else mask
    if target in ("lungs", "lung_left", "lung_right"):
        cols = np.flatnonzero(plane.any(axis=0))
        if cols.size and (cols[0] == 0 or cols[-1] == plane.shape[1] - 1):
            q.flag("implausible", "a lung field reaches the side edge of the image: it is probably air outside "
                                  "the body, not lung")
        if target == "lungs":
            labels, n = ndimage.label(plane)
            sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
            if n < 2:
                q.flag("implausible", "only one lung field was found")
            elif sizes[1] < XR_FIELD_BALANCE * sizes[0]:
                q.flag("implausible", f"the two lung fields differ in area {sizes[0] / sizes[1]:.1f}-fold: one was "
                                      f"probably lost or merged with the background")
        if image is not None and plane.any():
            contrast = lower_border_contrast(plane, image[0] if image.ndim == 3 else image)
            rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
            tall = (rows[-1] - rows[0] + 1) / (cols[-1] - cols[0] + 1)
            if contrast < XR_DIAPHRAGM_CONTRAST and target == "lungs" and tall < XR_FIELDS_MIN_HEIGHT:
                q.flag("doubtful", f"the lung fields' lower zones look lost: their lower borders are faint (rise "
                                   f"{contrast:.2f} of the film's range, a diaphragm gives over "
                                   f"{XR_DIAPHRAGM_CONTRAST}) and they are {tall:.2f} as tall as wide (lungs: about "
                                   f"{XR_FIELDS_MIN_HEIGHT} or more), so the lung area, the thoracic width at the "
                                   f"bases and a heart width between them may be short")
            elif contrast < XR_DIAPHRAGM_CONTRAST:
                q.flag("doubtful", f"{XR_FAINT_BORDERS} (rise {contrast:.2f} of the film's range, a diaphragm gives "
                                   f"over {XR_DIAPHRAGM_CONTRAST}): their lower zones may be lost, so the lung area "
                                   f"may be short")
    if target == "heart" and plane.any():
        rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        if height < HEART_MIN_ASPECT * width:
            q.flag("implausible", f"the cardiac silhouette is a flat band ({height} x {width} px, height x width), "
                                  f"not a heart: the lung fields around it are probably wrong")
    return q


def lower_border_contrast(plane: np.ndarray, image: np.ndarray) -> float:
    """The strongest (over the two largest fields) median rise of intensity across a lung field's
    lower border, in units of the film's 1-99 percentile range (see `XR_DIAPHRAGM_CONTRAST`)."""
    lo, hi = np.percentile(image[:: max(1, image.shape[0] // 512), :: max(1, image.shape[1] // 512)], (1, 99))
    scale = max(float(hi - lo), 1e-6)
    band = max(2, int(round(XR_BORDER_BAND * plane.shape[0])))
    labels, n = ndimage.label(plane)
    largest = np.argsort(np.bincount(labels.ravel())[1:])[::-1][:2] + 1
    best = 0.0
    for label in largest:
        field = labels == label
        cols = np.flatnonzero(field.any(axis=0))
        bottoms = field.shape[0] - 1 - np.argmax(field[::-1, cols], axis=0)  # lowest row per column
        keep = bottoms + band < field.shape[0]
        rises = [image[b + 1:b + band + 1, c].mean() - image[b - band + 1:b + 1, c].mean()
                 for b, c in zip(bottoms[keep], cols[keep]) if b >= band]
        if rises:
            best = max(best, float(np.median(rises)) / scale)
    return best


def ctr_quality(ratio: float) -> Quality:
    q = Quality(checks=["cardiothoracic ratio range"])
    if not CTR_RANGE[0] <= ratio <= CTR_RANGE[1]:
        q.flag("implausible", f"cardiothoracic ratio {ratio:.2f} is outside {CTR_RANGE[0]}-{CTR_RANGE[1]}: "
                              f"the heart or the thorax was probably mis-found")
    elif ratio < CTR_DOUBTFUL_BELOW:
        q.flag("doubtful", f"cardiothoracic ratio {ratio:.2f} is below {CTR_DOUBTFUL_BELOW} (adults: about "
                           f"0.45): the heart's borders may have been missed")
    return q


def negative_quality(volume: Volume, searched: dict[str, Any], region_quality: Quality | None) -> Quality:
    """How sure an empty search is: it can be no better than the region it searched.

    ``searched["region_cut"]`` names where the scan range cuts the searched region (the lungs
    reaching the first or last slice): what lies beyond was not searched.
    """
    q = fact_quality(volume, uses_hu=True)
    q.checks.append("search region")
    if region_quality is not None and region_quality.level == "implausible":
        for reason in region_quality.reasons:
            q.flag("doubtful", f"the searched region is itself implausible: {reason}")
    if searched.get("region_cut"):
        q.flag("doubtful", f"the scan range cuts the searched region (it reaches the {searched['region_cut']}): "
                           f"only the part in the scan was searched")
    if searched.get("limits"):
        q.checks.append(f"not searched: {searched['limits']}")
    return q


def image_quality(volume: Volume) -> Quality:
    """What a view of the whole image can be trusted for: its content and its modality (see the
    module docstring). A CT recognised by its value signature (air and fat peaks in Hounsfield
    units) is noted, not flagged: the signature is what the CT thresholds need."""
    q = Quality(checks=["image content", "modality source"])
    # loaded volumes hold finite values only (`imaging.io.limits`: NaN/inf are refused or replaced)
    lo, hi = (float(volume.data.min()), float(volume.data.max())) if volume.data.size else (0.0, 0.0)
    if lo == hi:
        q.flag("implausible", f"the image is constant (every voxel is {lo:g}): it holds nothing to see")
    if volume.facts["modality"].assumed:
        _guessed_modality(q, volume, " (the file does not say)", "it may be another kind of image")
    return q


def _guessed_modality(q: Quality, volume: Volume, note: str, consequence: str) -> None:
    """A modality guessed from the voxel values: CT is recognised by its value signature (air and
    fat peaks in Hounsfield units), which is what its thresholds need, so that guess is noted, not
    held against every result; any other guess is doubtful, with its ``consequence``."""
    if volume.modality == "CT":
        q.checks.append("modality CT guessed from the voxel values")
    else:
        q.flag("doubtful", f"modality {volume.modality} guessed from the voxel values{note}: {consequence}; "
                           f"{modality_hint(volume) or 'give --modality'}")


def modality_hint(volume: Volume) -> str:
    """What to tell the user when the modality was guessed as something other than CT for values
    that look like CT stored without its rescale intercept (the loader's ``hu_offset_suspected``
    note, `imaging.io.metadata.shifted_ct_offset`; "" otherwise)."""
    offset = volume.metadata.get("hu_offset_suspected")
    if offset is None:
        return ""
    return (f"the values look like CT stored without its rescale intercept (air near 0, water near "
            f"{-offset:g}): if it is CT, give --modality CT")


def radiograph_view(volume: Volume) -> str:
    """The projection of a radiograph: ``frontal``, ``lateral`` (lateral or oblique), ``decubitus``
    or ``unknown``, from DICOM ViewPosition, else from PatientOrientation (rows running anterior or
    posterior are a lateral projection's)."""
    position = _view_position(volume)
    if position in NON_FRONTAL_VIEWS:
        return "lateral"
    if position in DECUBITUS_VIEWS:
        return "decubitus"
    if position in ("PA", "AP"):
        return "frontal"
    orientation = volume.metadata.get("PatientOrientation")
    rows = str(orientation[0] if isinstance(orientation, (list, tuple)) and orientation else "").strip().upper()
    if rows[:1] in ("A", "P"):
        return "lateral"
    if rows[:1] in ("L", "R"):
        return "frontal"
    return "unknown"


def _view_position(volume: Volume) -> str:
    """A radiograph's DICOM ViewPosition, upper case ("" when the file gives none)."""
    return str(volume.metadata.get("ViewPosition") or "").strip().upper()


def radiograph_view_source(volume: Volume) -> str:
    """The header tag `radiograph_view` read the view from, in words (``ViewPosition LL``)."""
    position = volume.metadata.get("ViewPosition")
    return f"ViewPosition {position}" if position else f"PatientOrientation {volume.metadata.get('PatientOrientation')}"


def radiograph_view_quality(volume: Volume, target: str | None) -> Quality:
    """A lung field, cardiac silhouette or cardiothoracic ratio read off a film that is not a
    frontal projection (see the module docstring)."""
    q = Quality(checks=["radiograph view"])
    if target not in FRONTAL_TARGETS:
        return q
    view = radiograph_view(volume)
    position = radiograph_view_source(volume)
    if view == "lateral":
        q.flag("implausible", f"the radiograph is not a frontal film ({position}): lung fields, heart borders and "
                              f"the cardiothoracic ratio are defined on a PA or AP chest film")
    elif view == "decubitus":
        q.flag("doubtful", f"the radiograph is a decubitus film ({position}): the patient lay on one side, which "
                           f"shifts the heart and mediastinum")
    elif target == "heart" and _view_position(volume) == "AP":
        # The 0.5 cut-off is defined on PA films: on an AP film the heart lies far from the detector
        # and is magnified, so a ratio just above 0.5 does not mean an enlarged heart.
        q.flag("doubtful", "the radiograph is an AP film: the heart is magnified against a PA film, so its width "
                           "and the cardiothoracic ratio read larger (the 0.5 cut-off is defined on PA films)")
    return q
