"""Lung masses on CT: soft tissue the lung encloses, too large for the nodule search.

The lung masks leave a large enclosed region of soft tissue out when it touches the pleura on a
few slices (`grounding.segmenters.chest` keeps a slice hole open when it opens onto more than a
vessel's section of tissue above or below, which is how the abdomen under a diaphragm dome stays
out of the lung), and the nodule search (`grounding.segmenters.lesions.lung_nodules`) looks
inside the masks only. So a 45 mm tumour with lung on nearly every side was "no nodule".

`lung_masses` finds them four ways, per lung, on a grid of about `SEARCH_GRID_MM`:

* **holes**: dense voxels (at least `HU_AIR`, below `MASS_MAX_HU`: not bone) the lung surrounds
  within a slice, joined across slices;
* **bites** out of the lateral half of the lung's slice-wise convex hull (a mass against the chest
  wall: the wall lies outside the hull; the medial half holds the hilum and the heart);
* **cores** of the dense tree inside the lung mask deeper than `CORE_RADIUS_MM` (no vessel inside
  the lung is that thick), grown back by that radius (`_attached`), unless on the scan's first or
  last slice (a dome the scan range cuts lies inside the lung's outline there).

A hole or bite joined by a vessel to another (a mass and a diaphragm dome the lung encloses on the
same slices) is parted where it narrows below `OPEN_RADIUS_MM` (`_split`), and each part tested. A
hole or bite is completed where it touches the pleura by the dense voxels joined to it inside the
hull and within `GROW_RADIUS` of its largest section's radius of its centre, with what is thinner
than `OPEN_RADIUS_MM` opened away. It is a mass when it holds a ball of `MASS_MIN_DIAMETER_MM` to
`MASS_MAX_DIAMETER_MM`, is solid (`MIN_FILL`, `MIN_MEDIAN_HU`), narrows below its widest section and
ends above the lung's base (a diaphragm dome opens downward onto the abdomen: its section is widest
at its lowest slice; `MIN_TAPER`), and the lung goes on beyond both its ends, lies over one of them
(over both for a bite: the liver reaches into the hull from below) and around `MIN_SURROUND` (bites
`MIN_SURROUND_BITE`) of its surface, the air its wall encloses (a cavitating mass) counting as part
of it (`_with_cavity`).

* **abutting** masses, which the lung wraps on one side only (growing into the mediastinum or the
  hilum, resting on the diaphragm: three real NSCLC tumours of 35-359 mL were "not found" before):
  soft tissue, fat and contrast-enhanced blood left out, holding a ball of `ABUT_CORE_MM` (`_abutting`)
  that one lung's hull holds and borders, with lung over and under it, or, reaching the lung's apex
  (`APEX_REACH`), under most of its footprint only (the apex narrows to nothing over an upper-lobe mass:
  named uncertain in extent). With lung over it only, it cannot be told from
  the heart or the liver under a dome it rests on: the search names it as a doubt instead. Built
  from balls about its deepest part, a found one loses a lobulated outline: it is completed with
  the tissue of its own HU band inside its lung's hull that the lung borders (`_extent`: lobules
  poke into the lung; the heart or the aorta beside it goes on in soft tissue and is left out).

* **bulges** of the lung's outline beside the spine (`_bulges`): a paravertebral mass fused with the
  aorta, the oesophagus or the spine holds no core clear of them and fat (a real tumour of 68 mL fused
  with the descending aorta did not), but the lung flows round it: soft tissue where the lung lies
  above and below within `BULGE_REACH_MM`, deep, at the back of the lung beside the spine, not
  enhanced like blood and unmatched at its mirror place on the other side. The part inside the lung's
  expected outline (0.58-0.70 of a ball on synthetic chests) is completed into the mediastinum as the
  round lobe its lung-facing surface outlines (`_rounded`); its volume is still named as uncertain.

* **part-solid** masses (`_part_solid`): ground glass about a solid core, which the lung masks hold as lung
  and the searches above, reading tissue at `HU_AIR` or more, find as the core alone (4-12 % of 80 mL masses
  on synthetic chests): non-aerated lung holding a ball of `GROUND_GLASS_CORE_MM`, mostly ground glass, about
  a solid core, bordered by aerated lung; measured with its ground glass, named part-solid and uncertain in
  extent in a doubt (ground glass thinner than that ball, a lobe of it, is left out).

Limits: a mass on the diaphragm (its section largest at the lung base) is taken for a dome, and
merged with the liver or the heart it is only a doubt; a mass fused with the mediastinum without a
fat plane in front of the lung's back third (hilar, beside the heart), or mostly outside its lung's
hull, is not found (the heart and hila are bulges with lung above and below too), unless it pushed the lung
back so far that the lung's hull leaves its core out (`_pushed`: a large mass in the front recess against the
heart, with lung over and under it, named uncertain in extent); collapsed lung the
lung borders may be taken into a completed mass (a doubt says so when the completion added half the mass
or more against the mediastinum, or grew a hole or bite `COMPLETE_GROWTH_DOUBT`-fold with an outline the
lung borders little: `_overgrown`); all are why a negative lung search is not a proof. The thresholds were
set on phantoms and the stress generator's normal chests; one real tumour (TCIA 4D-Lung, found as a bulge at
43 of 68 mL, completed to 68 mL; `BULGE_COMPLETE_REACH` was set on it) is in the tuning set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from grounding.plausibility import GROUND_GLASS_MIN_HU
from grounding.segmenters.chest import HU_AIR
from grounding.segmenters.lesions import MASS_MAX_DIAMETER_MM, SIZE_TOLERANCE, NoduleSearch
from grounding.segmenters.morphology import (
    CONN6,
    CONN26,
    PLANAR4,
    bounding_box,
    component_sizes,
    ellipsoid,
    fill_holes_slicewise,
    grown_box,
    label_components,
    largest_component,
)

#: a mass holds at least a sphere of this diameter (smaller ones are the nodule search's)
MASS_MIN_DIAMETER_MM = 20.0
#: the search grid keeps about this spacing (mm; a mass is eight times as wide)
SEARCH_GRID_MM = 2.5
#: inside the lung no vessel is thicker than a ball of this radius (a lobar artery is about 12 mm)
CORE_RADIUS_MM = 8.0
#: bone and calcified plaque are not tumour
MASS_MAX_HU = 250.0
#: the tissue a mass is completed with lies within this many times its largest section's radius
GROW_RADIUS = 1.3
GROW_ROUNDS = 3
#: what the growth took that is thinner than a ball of this radius (vessels, septa) is left out
OPEN_RADIUS_MM = 4.0
#: lung covers at least this share of a mass's top or bottom section ...
MIN_CAP = 0.5
#: ... and of its surface
MIN_SURROUND = 0.6
#: ... or, for a mass against the chest wall (a bite out of the lung's outline on its lateral side,
#: `MIN_LATERAL` or further out across the lung: the medial side holds the hilum and the heart)
MIN_SURROUND_BITE = 0.4
MIN_LATERAL = 0.5
#: a mass fills at least this share of its bounding box (a ball fills 0.52) ...
MIN_FILL = 0.25
#: ... or, for one the lung encloses or bites into that is a ball of at least `IRREGULAR_MIN_DIAMETER_MM` across,
#: this share, named as irregular in a doubt: a large tumour spanning the lung from the chest wall to the
#: mediastinum follows the lung's curve (a 373 mL wall-to-mediastinum mass on synthetic 5 mm slices filled 0.229
#: of its box and was found at 16 mL); haze along a fissure or a streak that large would be a thin sheet
IRREGULAR_MIN_DIAMETER_MM = 50.0
ENCLOSED_MIN_FILL = 0.2
#: ... and its median is soft tissue (and below `BLOOD_MIN_HU`: a "mass" most of which reads as contrast-filled blood
#: is a knot of enhanced vessels; on synthetic contrast chests of 5 mm slices the hilar branches of the right lung,
#: a hole the lung encloses within a slice, were a 16 mL mass of median 158 HU beside a true left one, and read
#: as tissue only because contrast lifts their partial-volume rim out of fat's band; tumours, enhanced or
#: necrotic, read 35-75 HU there. A strongly enhancing tumour, a carcinoid, may read above and is missed)
MIN_MEDIAN_HU = -100.0
#: ... and at most this share of its tissue (the voxels at least fat's lower bound, `FAT_HU`: not aerated
#: lung or its partial-volume rim) is fat: the mediastinal fat about a bronchus at the hilum, with the
#: bronchial wall in it, was a 22 mm "mass" of median -92 HU on a stress chest (55 % of its tissue fat); a
#: solid tumour's rim passes through fat's band on a few voxels only, and a part-solid one's halo is ground
#: glass, below it
MAX_FAT_SHARE = 0.4
FAT_HU = (-150.0, -50.0)
#: a completed mass whose last growth ball cut off dense tissue on at least this share of its outline
#: merges with the heart, the diaphragm or the chest wall: its extent is named in a doubt (masses the
#: completion closed around cut off at most 0.17 on phantoms, ones merged with the heart 0.28-0.34)
COMPLETE_MAX_CUT = 0.25
#: a completed hole or bite at least this many times the candidate it was grown from (the part the lung
#: encloses), with aerated lung on less than `OVERGROWN_MAX_SURROUND` of its outline, is mostly tissue whose
#: boundary with the mass cannot be seen: on synthetic chests a hilar mass with the upper lobe beyond it
#: collapsed (same HU without contrast) was grown 10-37-fold to 2.3-3 times the tumour's volume with the lung on
#: 0.60-0.62 of its outline, stated as fact; true masses grew 1-11-fold, those of 8-fold or more bordered by the
#: lung on 0.65-0.82 (the 0.65 ones, an upper-lobe mass spanning the lung to the chest wall, over-grown by 12 %).
#: On real CT obstructive atelectasis is pleura-based soft tissue of the tumour's HU before contrast, so the
#: completion cannot stop at it either: its extent is named in a doubt (on 70 stress chests it named one mass,
#: the heart found as a 467 mL false mass, already named as maybe the heart)
COMPLETE_GROWTH_DOUBT = 8.0
OVERGROWN_MAX_SURROUND = 0.7
#: the largest section lies at least this share of the component's height above its lowest slice
MIN_TAPER = 0.25
#: soft tissue for masses against the mediastinum or the diaphragm (HU, the median of each voxel's
#: 3-voxel neighbourhood): fat and the lung's partial-volume rim below, bone and contrast-filled
#: vessels at `MASS_MAX_HU` or above
SOFT_MIN_HU = -30.0
#: such a mass holds a ball of soft tissue of the first radius (mm) clear of fat, lung and bone: the
#: aorta and the hilar arteries (radius up to about 15 mm, less their partial-volume rim) hold none;
#: the larger radii part a large mass from the heart it touches (the neck between them is narrower)
ABUT_CORE_MM = (14.0, 22.0, 30.0)
#: lung within this distance (mm) of a voxel borders it (the partial-volume rim lies between)
ABUT_NEAR_MM = 5.0
#: a mass whose top reaches within this share of its lung's height of the lung's top needs lung under it
#: only, not over it too: an upper-lobe mass reaching the apex (a 380 mL one from the mediastinum to the
#: lateral wall on synthetic chests, lung over 0 % of its top section) was missed. Lung lies under `MIN_CAP`
#: of its footprint (`_lung_under`)
APEX_REACH = 0.15
#: ... at least this share of it lies inside its lung's slice-wise convex hull (the lung wraps it)
ABUT_MIN_HULL = 0.7
#: ... lung borders at least this share of its surface ...
ABUT_MIN_SURROUND = 0.5
#: ... or, filling the lung's recess between the front chest wall and the mediastinum (whose corners lie
#: outside the hull: 0.63 of a 55 mm anterior mass on synthetic chests), at least the first share inside the
#: hull when the lung borders at least the second share of its surface (that mass 0.68; the heart, which the
#: left lung borders on its side only, 0.54-0.55 at a hull share of 0.60-0.62), its centre in the front
#: `ABUT_RECESS_FRONT` of its lung's front-to-back extent (a paravertebral mass fused with the aorta is the
#: bulges' search's, which estimates its part in the mediastinum); its part outside the hull is not completed
#: (`_extent`), so its extent is named uncertain; one of `HEART_SIZED_ML` or more there is the heart (a 468 mL
#: one, bordered on 0.66 of its surface, on a stress chest)
ABUT_RECESS = (0.6, 0.65)
ABUT_RECESS_FRONT = 0.5
#: ... and the other lung at most this share of what its own lung borders (the heart lies between
#: both lungs)
ABUT_MAX_OTHER = 0.05
#: a large mass that pushed its lung back (`_pushed`), the lung's hull leaving it out, is bordered by the lung on
#: at least this share of its surface (a 310 mL mass in the front recess against the heart and the chest wall 0.38)
PUSHED_MIN_SURROUND = 0.3
#: blood enhanced by contrast (150 HU or more in the heart and the arteries) reads at least this HU (a 3-voxel
#: mean): it is not tumour, so the soft tissue `_abutting` and `_pushed` read leaves it out, parting a mass from
#: the heart's chambers or a hilar artery it touches
BLOOD_MIN_HU = 120.0
#: a found mass against the mediastinum is completed with the tissue joined to it within this many
#: robust standard deviations of its median HU (at least `EXTENT_MIN_BAND_HU` either side) and within
#: this many times its equivalent radius of its centre (a lobule reaches about half a radius out)
EXTENT_BAND_SD = 3.0
EXTENT_MIN_BAND_HU = 60.0
EXTENT_RADIUS = 1.5
#: ... taking only pieces the lung borders on this share of their surface away from the mass (a lobule
#: pokes into the lung; the heart or the aorta beside the mass goes on in soft tissue)
EXTENT_MIN_SURROUND = 0.6
#: ... and named in a doubt when it grew by at least this share of itself
EXTENT_DOUBT = 0.5
#: a mass fused with the mediastinum beside the spine (paravertebral: no fat plane, no core clear of the
#: aorta or the spine) shows as a bulge of the lung's outline: soft tissue where the lung lies both above
#: and below it within this distance (mm) at the same place (the aorta, the spine and the oesophagus run
#: on along the whole chest; the lung flows round a bulge only as long as it)
BULGE_REACH_MM = 60.0
#: ... holding a ball of this radius (mm; the lung's partial-volume rim and a vessel's stump hold less)
BULGE_MIN_DEPTH_MM = 8.0
#: ... lying at least this share of its lung's front-to-back extent from the lung's front (the heart, the
#: great vessels and the hila, which lung also lies above and below, are further forward)
BULGE_MIN_POSTERIOR = 0.65
#: ... within this distance (mm) of the spine (dense tissue, `MASS_MAX_HU` or more, within `SPINE_HALF_WIDTH_MM`
#: of the lungs' middle and behind `BULGE_MIN_POSTERIOR` of their front-to-back extent: the vertebrae, and
#: with contrast the descending aorta beside them); a heart reaching far back is further from it
BULGE_SPINE_MM = 20.0
SPINE_HALF_WIDTH_MM = 30.0
#: ... with a median HU at most this (a contrast-filled heart or aorta reaching back to the spine reads
#: above; a lung tumour, enhanced or not, below)
BULGE_MAX_MEDIAN_HU = 100.0
#: ... not enclosed by its lung within a slice on more than this share of its outline (an enclosed one is
#: the holes' search's)
BULGE_MAX_ENCLOSED = 0.9
#: ... and without such a bulge of the other lung at its mirror place on more than this share of it
#: (normal anatomy beside the spine is much the same on both sides; a mass is on one)
BULGE_MAX_MIRROR = 0.3
#: a bulge is completed into the mediastinum as the ball its lung-facing surface outlines (`_rounded`) when
#: that ball's radius is at most this many times the found part's equivalent radius (the found part of a
#: paravertebral ball is 0.58-0.70 of it, radius ratio about 1.2; a lobulated real tumour's 1.6; a flatter
#: outline fits a far larger ball) ...
BULGE_FIT_MAX_RADIUS = 2.0
#: ... taking only the ball's tissue within this many times that equivalent radius of the found part (a
#: lobe reaches about half its radius beyond the lung's expected outline; the whole ball of the real tumour's
#: flattened outline, 34 mm, took in the aorta: 114 mL for a 68 mL tumour)
BULGE_COMPLETE_REACH = 0.5
#: with lung over its top only, the soft tissue it rests on (on the slice under it) is at least this
#: many times its widest section for a doubt (the liver, the heart; the aortic arch rests on the
#: descending aorta, as wide as itself)
ABUT_MIN_BASE = 2.0
#: a found mass of at least this volume (mL; a ball of 78 mm) against the medial half of the left lung
#: (`HEART_MAX_LATERAL` across it) is as large as the heart and lies where it does: the heart a lung
#: wraps, above and below it as well, was found whole as a 424-475 mL mass (hole, bite or abutting) on
#: three of 183 stress chests; the real lung tumours found against the mediastinum were 35-359 mL
HEART_SIZED_ML = 250.0
HEART_MAX_LATERAL = 0.5
#: a part-solid mass (a solid core in ground glass) holds little tissue at `HU_AIR` or more, which the other
#: searches read: 4-12 % of such 80 mL masses was found, as the core's nodule. Ground glass is the band
#: between aerated lung (about -850 HU and below) and solid tissue, read in the majority of each voxel's 3-voxel
#: neighbourhood (`_opaque`)
GROUND_GLASS_HU = (GROUND_GLASS_MIN_HU, -300.0)
#: ... the mass holds a ball of this radius (mm) of ground glass or tissue clear of aerated lung ...
GROUND_GLASS_CORE_MM = 8.0
#: ... at least this share of its voxels lies in the ground-glass band (a thick vessel at the hilum, grown
#: back, is tissue with a thin partial-volume rim: 0.1-0.25 on synthetic chests; part-solid masses 0.8) ...
GROUND_GLASS_MIN_SHARE = 0.5
#: ... it holds a solid core, a ball of this radius (mm) of tissue (neighbourhood mean `SOLID_CORE_HU` or more;
#: the vessels running through ground glass are thinner): without one, ground glass is as likely inflammation,
#: haemorrhage or oedema ...
SOLID_CORE_MM = 3.5
SOLID_CORE_HU = -100.0
#: ... and aerated lung borders this share of its surface (dependent haze and pleural thickening lie along the
#: chest wall)
GROUND_GLASS_MIN_SURROUND = 0.4


@dataclass
class LungMasses:
    """The masses a lung search found (``mask``) and the ones it cannot vouch for (``doubts``: short
    sentences naming a soft-tissue mass the lung lies over but not under, against the diaphragm or
    the heart, which may be a lung mass or the organ itself)."""

    mask: np.ndarray
    doubts: list[str] = field(default_factory=list)


def lung_masses(data: np.ndarray, lungs: list[np.ndarray], spacing: tuple[float, float, float]) -> LungMasses:
    """The masses enclosed by or abutting ``lungs`` (full-resolution boolean masks: the left lung,
    the right).

    A mass is at least `MASS_MIN_DIAMETER_MM` across: it is searched on every voxel that keeps
    the grid at least `SEARCH_GRID_MM` apart, and its mask taken back to the full grid as the soft
    tissue inside the search grid's voxels."""
    steps = tuple(max(1, round(SEARCH_GRID_MM / s)) for s in spacing)
    grid = tuple(slice(None, None, f) for f in steps)
    coarse = tuple(s * f for s, f in zip(spacing, steps))
    found = _masses(data[grid], [lung[grid] for lung in lungs], coarse)
    glass, glassy = _part_solid(data[grid], [lung[grid] for lung in lungs], found.mask, coarse)
    for axis, f in enumerate(steps):
        found.mask = found.mask.repeat(f, axis=axis)
        glass = glass.repeat(f, axis=axis)
    mask = found.mask[: data.shape[0], : data.shape[1], : data.shape[2]]
    glass = glass[: data.shape[0], : data.shape[1], : data.shape[2]]
    # a cavitating mass keeps the air its wall encloses
    mask &= _with_cavity(mask & (data >= HU_AIR) & (data < MASS_MAX_HU), data)
    box = bounding_box(glass)
    if box is not None:
        # a part-solid mass keeps its ground glass, and the aerated lung it encloses within a slice
        mask[box] |= glass[box] & fill_holes_slicewise(glass[box] & _opaque(data[box]))
    return LungMasses(mask, found.doubts + glassy)


def _masses(data: np.ndarray, lungs: list[np.ndarray], spacing: tuple[float, float, float]) -> LungMasses:
    out = np.zeros(data.shape, dtype=bool)
    voxel_mm3 = float(np.prod(spacing))
    smallest = math.pi / 6 * MASS_MIN_DIAMETER_MM ** 3 / voxel_mm3
    largest = math.pi / 6 * MASS_MAX_DIAMETER_MM ** 3 / voxel_mm3
    hulls = []
    doubts: list[str] = []
    for lung, lateral_sign, side in zip(lungs, (1, -1), ("left", "right")):
        box = bounding_box(lung)
        hulls.append(np.zeros(data.shape, dtype=bool))
        if box is None:
            continue
        crop, values = lung[box], data[box]
        cut = (box[0].start == 0, box[0].stop == data.shape[0])
        out[box] |= _attached(crop, values, spacing, smallest, largest, cut)
        dense = (values >= HU_AIR) & (values < MASS_MAX_HU) & ~crop
        holes = fill_holes_slicewise(crop) & dense
        hull = _hulls(crop)
        hulls[-1][box] = hull
        bites = hull & dense & ~holes
        for candidates, surround in ((holes, MIN_SURROUND), (bites, MIN_SURROUND_BITE)):
            if np.count_nonzero(candidates) < smallest:
                continue
            pieces, n = label_components(candidates, CONN6)
            sizes = component_sizes(pieces, n)
            for piece in (part for k in np.flatnonzero(sizes >= smallest) if k > 0
                          for part in _split(pieces == k, spacing, smallest)):
                if candidates is bites and _lateral(piece, lateral_sign) < MIN_LATERAL:
                    continue
                grown, cut = _completed(piece, dense, crop, spacing, hull)
                grown = _with_cavity(grown, values)
                diameter = ball_diameter_mm(np.count_nonzero(grown), math.prod(spacing))
                min_fill = ENCLOSED_MIN_FILL if diameter >= IRREGULAR_MIN_DIAMETER_MM else MIN_FILL
                if not (smallest <= np.count_nonzero(grown) <= largest and _tapers(grown)
                        and _solid(grown, values, min_fill) and _enclosed(grown, crop, surround, candidates is bites)):
                    continue
                out[box] |= grown
                fill = _fill(grown)
                if fill < MIN_FILL:
                    doubts.append(f"the {side} lung mass of about {diameter:.0f} mm is irregular (it fills "
                                  f"{100 * fill:.0f}% of its bounding box, a ball about half): it may hold "
                                  f"tissue beside the tumour, so its extent and volume are uncertain")
                if cut >= COMPLETE_MAX_CUT:
                    doubts.append(f"the mass of about {diameter:.0f} mm found in the {side} lung merges with soft "
                                  f"tissue beyond its outline (the heart, the diaphragm or the chest wall): its extent "
                                  f"and volume are uncertain")
                overgrown = _overgrown(piece, grown, crop)
                if overgrown is not None:
                    growth, bordered = overgrown
                    doubts.append(f"the {side} lung mass of about {diameter:.0f} mm was completed to {growth:.0f} "
                                  f"times the part of it the lung encloses, and the lung borders only "
                                  f"{100 * bordered:.0f}% of its outline: the mass may include collapsed lung (or "
                                  f"fluid) beside it, so its extent and volume are uncertain")
    found, more = _abutting(data, lungs, hulls, out, spacing, smallest, largest)
    bulged, bulges = _bulges(data, lungs, out | found, spacing, smallest, largest)
    mask = out | found | bulged
    return LungMasses(mask, doubts + more + bulges + _heart_sized(mask, lungs, spacing))


def _part_solid(data: np.ndarray, lungs: list[np.ndarray], known: np.ndarray,
                spacing: tuple[float, float, float]) -> tuple[np.ndarray, list[str]]:
    """Part-solid masses: ground glass (`GROUND_GLASS_HU`) about a solid core, inside a (hole-filled) lung,
    which the lung masks hold as lung and the other searches, reading tissue at `HU_AIR` or more, find as the
    core alone. The parts of the non-aerated lung deeper than `GROUND_GLASS_CORE_MM`, grown back by that
    radius, are one when at least `MASS_MIN_DIAMETER_MM` to `MASS_MAX_DIAMETER_MM` across, mostly ground glass
    (`GROUND_GLASS_MIN_SHARE`), holding a solid core (`SOLID_CORE_MM`), bordered by aerated lung
    (`GROUND_GLASS_MIN_SURROUND`), clear of the scan's first and last slices and touching no ``known`` mass.
    Returns their mask and a doubt each: where ground glass ends, and whether all of it is tumour, is
    uncertain."""
    out = np.zeros(data.shape, dtype=bool)
    doubts: list[str] = []
    voxel_mm3 = math.prod(spacing)
    smallest = math.pi / 6 * MASS_MIN_DIAMETER_MM ** 3 / voxel_mm3
    largest = math.pi / 6 * MASS_MAX_DIAMETER_MM ** 3 / voxel_mm3
    for lung, side in zip(lungs, ("left", "right")):
        box = bounding_box(lung)
        if box is None:
            continue
        values = data[box]
        mean = ndimage.uniform_filter(values, 3)
        dense = _opaque(values)
        opaque = fill_holes_slicewise(lung[box]) & dense
        cores = ndimage.distance_transform_edt(opaque, sampling=spacing) > GROUND_GLASS_CORE_MM
        if not cores.any():
            continue
        reach = ndimage.distance_transform_edt(~cores, sampling=spacing) <= GROUND_GLASS_CORE_MM + max(spacing)
        pieces, n = label_components(reach & opaque, CONN26)
        aerated = lung[box] & ~dense
        for k, where in enumerate(ndimage.find_objects(pieces), start=1):
            if where is None or where[0].start == 0 or where[0].stop == values.shape[0]:
                continue
            part = grown_box(where, 1, values.shape)
            piece = pieces[part] == k
            inside = values[part][piece]
            if not smallest <= inside.size <= largest or (known[box][part] & piece).any():
                continue
            glass = np.count_nonzero((inside >= GROUND_GLASS_HU[0]) & (inside < GROUND_GLASS_HU[1]))
            if glass < GROUND_GLASS_MIN_SHARE * inside.size:
                continue
            solid = piece & (mean[part] >= SOLID_CORE_HU)
            core_mm = float(ndimage.distance_transform_edt(solid, sampling=spacing).max()) if solid.any() else 0.0
            shell = ndimage.binary_dilation(piece, CONN6) & ~piece
            if core_mm < SOLID_CORE_MM or (np.count_nonzero(shell & aerated[part])
                                           < GROUND_GLASS_MIN_SURROUND * np.count_nonzero(shell)):
                continue
            out[box][part] |= piece
            diameter = ball_diameter_mm(inside.size, voxel_mm3)
            doubts.append(f"the {side} lung mass of about {diameter:.0f} mm is part-solid: mostly ground glass "
                          f"({100 * glass / inside.size:.0f}% of it, {GROUND_GLASS_HU[0]:.0f} to "
                          f"{GROUND_GLASS_HU[1]:.0f} HU) about a solid core; where the ground glass ends, and "
                          f"whether all of it is tumour (not inflammation or haemorrhage about it), is unsure, so "
                          f"its extent and volume are uncertain")
    return out, doubts


def _opaque(values: np.ndarray) -> np.ndarray:
    """Ground glass or tissue (`GROUND_GLASS_HU` to `MASS_MAX_HU`) in the majority of each voxel's 3-voxel
    neighbourhood: noise neither pits ground glass nor, as a neighbourhood mean would, takes the aerated lung
    along its edge (a voxel thick: 5 mm on 5 mm slices, 37 % more volume on a 46 mm ball)."""
    tissue = (values >= GROUND_GLASS_HU[0]) & (values < MASS_MAX_HU)
    return ndimage.uniform_filter(tissue.astype(np.float32), size=3) > 0.5


def _heart_sized(mask: np.ndarray, lungs: list[np.ndarray], spacing: tuple[float, float, float]) -> list[str]:
    """A doubt for each found mass (``mask``, on the search grid) of `HEART_SIZED_ML` or more whose centre
    lies in the medial half of the left lung's width (``lungs``: the left, the right) and which borders the
    left lung more than the right: it may be the heart, which no test of the lung's outline tells from a
    mass of its size there."""
    left = np.flatnonzero(lungs[0].any(axis=(0, 1)))
    pieces, n = label_components(mask, CONN26)
    if n == 0 or left.size == 0:
        return []
    voxel_ml = math.prod(spacing) / 1000.0
    sizes = component_sizes(pieces, n)
    doubts = []
    for k, where in enumerate(ndimage.find_objects(pieces), start=1):
        if where is None or sizes[k] * voxel_ml < HEART_SIZED_ML:
            continue
        box = grown_box(where, 1, mask.shape)
        piece = pieces[box] == k
        shell = ndimage.binary_dilation(piece, CONN6) & ~piece
        if np.count_nonzero(shell & lungs[0][box]) <= np.count_nonzero(shell & lungs[1][box]):
            continue
        # the left lung's lateral side lies towards larger x (see `_lateral`)
        centre = ndimage.center_of_mass(piece)[2] + box[2].start
        if (centre - left[0]) / max(left[-1] - left[0], 1) >= HEART_MAX_LATERAL:
            continue
        diameter = ball_diameter_mm(sizes[k], math.prod(spacing))
        doubts.append(f"the mass of about {diameter:.0f} mm ({sizes[k] * voxel_ml:.0f} mL) found against the "
                      f"mediastinal side of the left lung is as large as the heart and lies where it does: it may be "
                      f"the heart the lung wraps around, not a lung mass")
    return doubts


def ball_diameter_mm(voxels: float | np.ndarray, voxel_mm3: float) -> float | np.ndarray:
    """The diameter (mm) of a ball of the volume of ``voxels`` voxels of ``voxel_mm3`` each (a count or
    an array of counts): the size a lesion's volume is named by."""
    return np.cbrt(6 / math.pi * voxels * voxel_mm3)


def _hulls(lung: np.ndarray) -> np.ndarray:
    """The convex hull of each slice of ``lung``: the pixels on the inner side of every edge of the
    hull of its outline's points (skimage's `convex_hull_image` and polygon fills test pixels
    one by one, many times slower on a lung)."""
    hull = lung.copy()
    outline = lung & ~ndimage.binary_erosion(lung, structure=PLANAR4)
    rows, cols = np.indices(lung.shape[1:], dtype=np.float32)
    for i, section in enumerate(outline):
        points = np.argwhere(section)
        if len(points) < 3 or np.linalg.matrix_rank(points - points[0]) < 2:
            continue
        # scipy gives a 2-D hull's vertices counter-clockwise: the inside is left of each edge
        start = points[ConvexHull(points).vertices].astype(np.float32)
        step = np.roll(start, -1, axis=0) - start
        side = (step[:, 1, None, None] * (rows - start[:, 0, None, None])
                - step[:, 0, None, None] * (cols - start[:, 1, None, None]))
        hull[i] |= (side >= -0.5).all(axis=0) | (side <= 0.5).all(axis=0)
    return hull


def _lateral(piece: np.ndarray, sign: int) -> float:
    """Where the piece's centre lies across its lung's bounding box, 0 at the lung's medial edge, 1
    at its lateral one (``sign`` 1: the left lung, whose lateral side is towards larger x; -1: the
    right lung)."""
    cx = float(np.mean(np.nonzero(piece.any(axis=(0, 1)))[0]))
    last = piece.shape[2] - 1
    return (cx if sign > 0 else last - cx) / max(float(last), 1.0)


def _attached(lung: np.ndarray, values: np.ndarray, spacing: tuple[float, float, float], smallest: float,
              largest: float, cut: tuple[bool, bool]) -> np.ndarray:
    """Masses inside the (hole-filled) ``lung`` that vessels join into one dense tree, which the
    nodule search's shape tests reject: the parts of the tree deeper than `CORE_RADIUS_MM`
    (thicker than any vessel inside the lung), grown back by that radius within the tree, solid
    and mostly surrounded by aerated lung. A part on the first or last slice of ``lung`` is left
    out where that slice is the scan's (``cut``: first, last): a liver or stomach dome the scan
    range cuts lies inside the lung's outline there, with no lung under it that could show it is
    not a mass."""
    out = np.zeros(lung.shape, dtype=bool)
    tree = lung & (values >= HU_AIR) & (values < MASS_MAX_HU)
    if np.count_nonzero(tree) < smallest:
        return out
    cores = ndimage.distance_transform_edt(tree, sampling=spacing) > CORE_RADIUS_MM
    if not cores.any():
        return out
    reach = ndimage.distance_transform_edt(~cores, sampling=spacing) <= CORE_RADIUS_MM + max(spacing)
    pieces, n = label_components(reach & tree, CONN26)
    aerated = lung & (values < HU_AIR)
    for k in range(1, n + 1):
        piece = pieces == k
        if not smallest <= np.count_nonzero(piece) <= largest or not _solid(piece, values):
            continue
        if (cut[0] and piece[0].any()) or (cut[1] and piece[-1].any()):
            continue
        shell = ndimage.binary_dilation(piece, CONN6) & ~piece
        if np.count_nonzero(shell & aerated) >= MIN_SURROUND * np.count_nonzero(shell):
            out |= piece
    return out


def _abutting(data: np.ndarray, lungs: list[np.ndarray], hulls: list[np.ndarray], known: np.ndarray,
              spacing: tuple[float, float, float], smallest: float, largest: float) -> tuple[np.ndarray, list[str]]:
    """Masses against the mediastinum, the hilum or the diaphragm, which the lung wraps on one side
    only: their mask, and doubts (`LungMasses`).

    Soft tissue (`SOFT_MIN_HU` to `MASS_MAX_HU`, outside the lungs) holding a ball of one of the
    radii `ABUT_CORE_MM` (the core), grown back by that radius, is a mass when one lung's slice-wise
    ``hulls`` hold `ABUT_MIN_HULL` of it, that lung borders `ABUT_MIN_SURROUND` of its surface and
    the other lung hardly any (`ABUT_MAX_OTHER`), and the lung lies over both its top and its
    bottom (`MIN_CAP`), or, at the lung's apex (`_at_apex`), under `MIN_CAP` of its footprint (`_lung_under`:
    a doubt names its extent uncertain). With lung over its top only it may be the heart, the liver under a dome or
    a mass resting on them: a doubt. One the scan range cuts, or touching a mass already
    ``known``, is left alone."""
    found = np.zeros(data.shape, dtype=bool)
    doubts: list[str] = []
    both = lungs[0] | lungs[1]
    box = bounding_box(both)
    if box is None:
        return found, doubts
    # the masses lie within the lungs' box grown by the largest core's reach (on the diaphragm, below it)
    margin = [int(math.ceil((ABUT_CORE_MM[-1] + max(spacing)) / s)) + 1 for s in spacing]
    box = grown_box(box, margin, data.shape)
    lungs, hulls, known = [lung[box] for lung in lungs], [hull[box] for hull in hulls], known[box]
    soft = _soft(data[box], both[box])
    # blood enhanced by contrast is not tumour: the heart's chambers and the arteries part from a mass against them
    # (on contrast chests, left hilar masses of 33-51 mL were corners of one core of the mediastinum: "not found")
    tumour = soft & (ndimage.uniform_filter(data[box], 3) < BLOOD_MIN_HU)
    depth = ndimage.distance_transform_edt(tumour, sampling=spacing)
    cores = (depth > ABUT_CORE_MM[0]) & (hulls[0] | hulls[1])
    if not cores.any():
        return found, doubts
    inside = np.zeros(soft.shape, dtype=bool)
    doubted = np.zeros(soft.shape, dtype=bool)
    for radius in ABUT_CORE_MM:
        reach = radius + max(spacing)
        pad = [int(math.ceil((reach + ABUT_NEAR_MM) / s)) + 1 for s in spacing]
        pieces, _ = label_components(cores & (depth > radius), CONN26)
        for k, where in enumerate(ndimage.find_objects(pieces), start=1):
            if where is None:
                continue
            part = grown_box(where, pad, soft.shape)
            grown = (ndimage.distance_transform_edt(pieces[part] != k, sampling=spacing) <= reach) & tumour[part]
            voxels = np.count_nonzero(grown)
            if not smallest <= voxels <= largest or (grown & (known | inside | doubted)[part]).any():
                continue
            side, top, bottom, hulled = _abutment(grown, part, lungs, hulls, spacing)
            if side is None:
                continue
            apical = (top < MIN_CAP and _at_apex(grown, part, lungs[side])
                      and _lung_under(grown, lungs[side][part], spacing) >= MIN_CAP)
            if top < MIN_CAP and not apical:
                continue
            if bottom >= MIN_CAP or apical:
                wide, whole = _extent(grown, part, data[box], tumour & hulls[side] & ~known, lungs, spacing)
                inside[part] |= grown
                before = np.count_nonzero(inside)
                inside[wide] |= whole
                added = np.count_nonzero(inside) - before
                if apical:
                    doubts.append(f"the {('left', 'right')[side]} lung mass found at the lung's apex has lung under it "
                                  f"but not over it: where it ends towards the thoracic inlet and the mediastinum "
                                  f"cannot be seen, so its extent and volume are uncertain")
                if hulled < ABUT_MIN_HULL:
                    doubts.append(f"the {('left', 'right')[side]} lung mass found against the mediastinum lies "
                                  f"{100 * (1 - hulled):.0f}% outside its lung's outline (against the chest wall or "
                                  f"in the mediastinum), where it cannot be told from the tissue beside it: its "
                                  f"extent and volume are uncertain")
                if added >= EXTENT_DOUBT * voxels:
                    extra_ml = added * math.prod(spacing) / 1000
                    doubts.append(f"the {('left', 'right')[side]} lung mass against the mediastinum was completed with "
                                  f"{extra_ml:.0f} mL of soft tissue joined to it that the lung borders (its lobules, "
                                  f"or collapsed lung or a vessel beside it): its volume may be overstated")
                continue
            if _base(grown, part, soft) < ABUT_MIN_BASE:
                continue
            doubted[part] |= grown
            diameter = ball_diameter_mm(voxels, math.prod(spacing))
            doubts.append(f"a soft-tissue mass of about {diameter:.0f} mm lies under the {('left', 'right')[side]} "
                          f"lung, which covers its top but not its bottom: it may be the heart or the liver, or a lung "
                          f"mass resting on the diaphragm or growing into the mediastinum")
    pushed, more = _pushed(tumour, depth, lungs, hulls, known | inside | doubted, spacing, smallest, largest)
    found[box] = inside | pushed
    return found, doubts + more


def _pushed(soft: np.ndarray, depth: np.ndarray, lungs: list[np.ndarray], hulls: list[np.ndarray],
            taken: np.ndarray, spacing: tuple[float, float, float], smallest: float,
            largest: float) -> tuple[np.ndarray, list[str]]:
    """Large masses that push their lung back, so that its slice-wise hull leaves them out (masses of 180 and 310 mL in
    the right lung's front recess against the heart, 0.17-0.3 of them inside the hull, were "not found" on synthetic
    chests): soft tissue (``soft``: fat and contrast-enhanced blood, `BLOOD_MIN_HU`, left out) holding a ball of one
    of the `ABUT_CORE_MM` radii whose core reaches outside both ``hulls``, grown back by that radius, that one lung
    borders on at least `PUSHED_MIN_SURROUND` of its surface (the other hardly any, `ABUT_MAX_OTHER`) and lies over
    and under (`MIN_CAP`: the heart rests on the diaphragm, the liver and the spleen lie under it, the great vessels
    go on upward), in front of `BULGE_MIN_POSTERIOR` of its lung's front-to-back extent (beside the spine it is the
    bulges' search's), touching none of the ``taken`` voxels (fired on none of 200 tuning stress chests).
    Joined to the mediastinum, where it ends there cannot be seen: each comes with a doubt naming its extent
    uncertain. ``depth`` is ``soft``'s depth (mm). Returns their mask
    (on ``soft``'s grid) and the doubts."""
    found = np.zeros(soft.shape, dtype=bool)
    doubts: list[str] = []
    outside = ~(hulls[0] | hulls[1])
    for radius in ABUT_CORE_MM:
        reach = radius + max(spacing)
        pad = [int(math.ceil((reach + ABUT_NEAR_MM) / s)) + 1 for s in spacing]
        # whole cores, not their parts outside the hulls: a corner of the heart the hull leaves out is no mass
        pieces, n = label_components(depth > radius, CONN26)
        # a core is soft tissue, so one larger than the largest mass grows no smaller (the heart's, the liver's)
        sizes = component_sizes(pieces, n)
        for k, where in enumerate(ndimage.find_objects(pieces), start=1):
            if where is None or sizes[k] > largest or not (outside[where] & (pieces[where] == k)).any():
                continue
            part = grown_box(where, pad, soft.shape)
            grown = (ndimage.distance_transform_edt(pieces[part] != k, sampling=spacing) <= reach) & soft[part]
            voxels = np.count_nonzero(grown)
            if not smallest <= voxels <= largest or (grown & (taken | found)[part]).any():
                continue
            side, top, bottom, _ = _abutment(grown, part, lungs, hulls, spacing, PUSHED_MIN_SURROUND)
            if side is None or min(top, bottom) < MIN_CAP:
                continue
            # one beside the spine is the bulges' search's, which estimates its part in the mediastinum
            rows = np.flatnonzero(lungs[side].any(axis=(0, 2)))
            back = (ndimage.center_of_mass(grown)[1] + part[1].start - rows[0]) / max(rows[-1] - rows[0], 1)
            if back >= BULGE_MIN_POSTERIOR:
                continue
            found[part] |= grown
            diameter = ball_diameter_mm(voxels, math.prod(spacing))
            doubts.append(f"the {('left', 'right')[side]} lung mass of about {diameter:.0f} mm found against the "
                          f"mediastinum has pushed the lung back around it and is joined to the mediastinum (or the "
                          f"heart) with no boundary in between: where it ends there cannot be seen, so its extent and "
                          f"volume are uncertain")
    return found, doubts


def _bulges(data: np.ndarray, lungs: list[np.ndarray], known: np.ndarray, spacing: tuple[float, float, float],
            smallest: float, largest: float) -> tuple[np.ndarray, list[str]]:
    """Masses fused with the mediastinum beside the spine, which the lung masks leave out and which hold
    no core clear of the aorta, the spine or fat for `_abutting`: soft tissue (as `_abutting` reads it)
    where its lung lies both above and below within `BULGE_REACH_MM` at the same place, holding a ball
    of `BULGE_MIN_DEPTH_MM`, at least `BULGE_MIN_POSTERIOR` back across its lung and within
    `BULGE_SPINE_MM` of the spine, of median HU up to `BULGE_MAX_MEDIAN_HU`, not enclosed by the
    lung within a slice (`BULGE_MAX_ENCLOSED`), unmatched by the other lung at its mirror place about
    the lungs' middle (`BULGE_MAX_MIRROR`) and touching no ``known`` mass: their mask and one doubt
    each, completed into the mediastinum as a round lobe (`_rounded`: where the mass ends there cannot be
    seen, so its volume is uncertain)."""
    found = np.zeros(data.shape, dtype=bool)
    doubts: list[str] = []
    # a bulge has lung above and below it at its place: it lies within the lungs' bounding box
    region = bounding_box(lungs[0] | lungs[1])
    if region is None:
        return found, doubts
    data, lungs, known = data[region], [lung[region] for lung in lungs], known[region]
    both = lungs[0] | lungs[1]
    columns = np.flatnonzero(both.any(axis=(0, 1)))
    soft = _soft(data, both)
    reach = max(1, int(round(BULGE_REACH_MM / spacing[0])))
    gaps = [_flowed_round(lung, reach) & soft for lung in lungs]
    middle = 0.5 * (columns[0] + columns[-1])
    rows = np.flatnonzero(both.any(axis=(0, 2)))
    spine = data >= MASS_MAX_HU
    spine[:, : rows[0] + int(BULGE_MIN_POSTERIOR * (rows[-1] - rows[0]))] = False
    spine[..., np.abs(np.arange(data.shape[2]) - middle) * spacing[2] > SPINE_HALF_WIDTH_MM] = False
    if not spine.any():
        return found, doubts
    from_spine = ndimage.distance_transform_edt(~spine, sampling=spacing)
    ring = np.zeros((3, 3, 3), dtype=bool)
    ring[1] = ndimage.generate_binary_structure(2, 1)
    pad = [int(math.ceil(ABUT_NEAR_MM / s)) + 1 for s in spacing]
    for side, (lung, gap) in enumerate(zip(lungs, gaps)):
        if np.count_nonzero(gap) < smallest:
            continue
        rows = np.flatnonzero(lung.any(axis=(0, 2)))
        pieces, n = label_components(gap, CONN6)
        sizes = component_sizes(pieces, n)
        for k, where in enumerate(ndimage.find_objects(pieces), start=1):
            if where is None or not smallest <= sizes[k] <= largest:
                continue
            box = grown_box(where, pad, data.shape)
            piece = pieces[box] == k
            if (ndimage.binary_dilation(piece, CONN6) & known[box]).any():
                continue
            if ndimage.distance_transform_edt(piece, sampling=spacing).max() < BULGE_MIN_DEPTH_MM:
                continue
            back = (ndimage.center_of_mass(piece)[1] + box[1].start - rows[0]) / max(rows[-1] - rows[0], 1)
            if back < BULGE_MIN_POSTERIOR:
                continue
            if from_spine[box][piece].min() > BULGE_SPINE_MM or np.median(data[box][piece]) > BULGE_MAX_MEDIAN_HU:
                continue
            near = ndimage.distance_transform_edt(~lung[box], sampling=spacing) <= ABUT_NEAR_MM
            outline = ndimage.binary_dilation(piece, ring) & ~piece
            if np.count_nonzero(outline & near) > BULGE_MAX_ENCLOSED * np.count_nonzero(outline):
                continue
            z, y, x = (c + b.start for c, b in zip(np.nonzero(piece), box))
            mirrored = np.round(2 * middle - x).astype(int)
            inside = (mirrored >= 0) & (mirrored < data.shape[2])
            if np.count_nonzero(gaps[1 - side][z[inside], y[inside], mirrored[inside]]) > BULGE_MAX_MIRROR * sizes[k]:
                continue
            wide, whole = _rounded(piece, box, data, soft & ~known, both, spacing)
            found[region][wide] |= whole
            diameter = ball_diameter_mm(np.count_nonzero(whole), math.prod(spacing))
            doubts.append(f"a soft-tissue bulge of about {diameter:.0f} mm indents the {('left', 'right')[side]} lung "
                          f"beside the spine, with lung above and below it, unmatched on the other side: probably a "
                          f"mass fused with the mediastinum; where it ends in the mediastinum is hidden (its part "
                          f"there is estimated as the round lobe its lung side outlines), so its volume is uncertain")
    return found, doubts


def _rounded(piece: np.ndarray, box: tuple[slice, ...], data: np.ndarray, allowed: np.ndarray, lungs: np.ndarray,
             spacing: tuple[float, float, float]) -> tuple[tuple[slice, ...], np.ndarray]:
    """A bulge ``piece`` (in ``box`` of ``data``) completed into the mediastinum as the round lobe its
    lung-facing surface outlines: the ball fitted (least squares) to its outline voxels within
    `ABUT_NEAR_MM` of ``lungs``, with the ``allowed`` tissue (soft, outside the lungs) in it within
    `EXTENT_BAND_SD` robust deviations of the piece's median HU (at least `EXTENT_MIN_BAND_HU`) joined
    to the piece and within `BULGE_COMPLETE_REACH` times the piece's own equivalent radius of it. The part
    inside the lung's outline was 0.58-0.70 of paravertebral balls on synthetic chests (completed:
    0.79-0.87); a lobe whose outline is too flat for a ball up to `BULGE_FIT_MAX_RADIUS` times that
    equivalent radius is left as found. Returns the box the completed mass lies in and its mask there."""
    near = ndimage.distance_transform_edt(~lungs[box], sampling=spacing) <= ABUT_NEAR_MM
    surface = piece & ~ndimage.binary_erosion(piece, CONN6) & near
    points = (np.argwhere(surface) + [b.start for b in box]) * np.asarray(spacing)
    if len(points) < 4:
        return box, piece
    # |p|^2 = 2 c.p + (r^2 - |c|^2): linear in the centre c and the constant
    fit = np.linalg.lstsq(np.c_[2 * points, np.ones(len(points))], (points ** 2).sum(axis=1), rcond=None)[0]
    centre_mm = fit[:3]
    radius_mm = math.sqrt(max(float(fit[3] + centre_mm @ centre_mm), 0.0))
    equivalent_mm = float(ball_diameter_mm(np.count_nonzero(piece), math.prod(spacing))) / 2
    if not 0 < radius_mm <= BULGE_FIT_MAX_RADIUS * equivalent_mm:
        return box, piece
    centre = centre_mm / np.asarray(spacing)
    wide = tuple(slice(max(0, min(b.start, int(c - radius_mm / s) - 1)),
                       min(n, max(b.stop, int(c + radius_mm / s) + 2)))
                 for b, c, s, n in zip(box, centre, spacing, data.shape))
    seed = np.zeros(tuple(w.stop - w.start for w in wide), dtype=bool)
    seed[tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, wide))] = piece
    band = _own_band(data[wide], seed)
    ball = _ball(wide, centre, radius_mm, spacing)
    within = ndimage.distance_transform_edt(~seed, sampling=spacing) <= BULGE_COMPLETE_REACH * equivalent_mm
    whole = ndimage.binary_propagation(seed, structure=CONN6, mask=(ball & band & allowed[wide] & within) | seed)
    return wide, whole


def _own_band(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Where ``values`` lie within `EXTENT_BAND_SD` robust deviations (at least `EXTENT_MIN_BAND_HU`) of
    the median over ``seed``: the tissue of a found mass's own HU band."""
    median = float(np.median(values[seed]))
    spread = 1.4826 * float(np.median(np.abs(values[seed] - median)))
    return np.abs(values - median) <= max(EXTENT_BAND_SD * spread, EXTENT_MIN_BAND_HU)


def _soft(data: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Soft tissue outside ``lungs``: `SOFT_MIN_HU` to `MASS_MAX_HU` in the majority of each voxel's
    3-voxel neighbourhood (noise neither pits a mass nor bridges fat)."""
    tissue = (data >= SOFT_MIN_HU) & (data < MASS_MAX_HU) & ~lungs
    return ndimage.uniform_filter(tissue.astype(np.float32), size=3) > 0.5


def _flowed_round(lung: np.ndarray, reach: int) -> np.ndarray:
    """The voxels outside ``lung`` with lung both within ``reach`` slices above and within ``reach``
    slices below them (same row and column)."""
    counts = np.concatenate([np.zeros((1,) + lung.shape[1:], dtype=np.int32), np.cumsum(lung, axis=0, dtype=np.int32)])
    index = np.arange(lung.shape[0])
    below = counts[index] - counts[np.maximum(index - reach, 0)] > 0
    above = counts[np.minimum(index + reach + 1, lung.shape[0])] - counts[index + 1] > 0
    return below & above & ~lung


def _extent(grown: np.ndarray, box: tuple[slice, ...], values: np.ndarray, allowed: np.ndarray,
            lungs: list[np.ndarray], spacing: tuple[float, float, float]) -> tuple[tuple[slice, ...], np.ndarray]:
    """A found mass against the mediastinum, ``grown`` (in ``box`` of the searched volume) from balls
    about its deepest part, which a lobulated mass overflows, completed with the ``allowed`` tissue
    (soft tissue inside its own lung's slice-wise hull: beyond the hull lie the mediastinum and the
    chest wall) joined to it within `EXTENT_BAND_SD` robust deviations of its own median HU and a
    ball of `EXTENT_RADIUS` times its equivalent radius about its centre, less what is thinner than
    `OPEN_RADIUS_MM` (vessels and septa leaving it), piece by piece where the lung borders
    `EXTENT_MIN_SURROUND` of the piece's surface away from the mass. Returns the box the completed
    mass lies in and its mask there."""
    radius_mm = EXTENT_RADIUS * np.cbrt(3 / (4 * math.pi) * np.count_nonzero(grown) * math.prod(spacing))
    centre = [c + b.start for c, b in zip(ndimage.center_of_mass(grown), box)]
    wide = tuple(slice(max(0, int(c - radius_mm / s) - 1), min(n, int(c + radius_mm / s) + 2))
                 for c, s, n in zip(centre, spacing, values.shape))
    core = np.zeros(tuple(w.stop - w.start for w in wide), dtype=bool)
    inner = tuple(slice(max(b.start, w.start) - w.start, min(b.stop, w.stop) - w.start) for b, w in zip(box, wide))
    core[inner] = grown[tuple(slice(max(b.start, w.start) - b.start, min(b.stop, w.stop) - b.start)
                              for b, w in zip(box, wide))]
    band = allowed[wide] & _own_band(values[wide], core)
    ball = _ball(wide, centre, radius_mm, spacing)
    grown_out = ndimage.binary_propagation(core, structure=CONN6, mask=(band & ball) | core)
    added = ndimage.binary_opening(grown_out, ellipsoid(OPEN_RADIUS_MM, spacing)) & ~core
    lung = ndimage.distance_transform_edt(~(lungs[0] | lungs[1])[wide], sampling=spacing) <= ABUT_NEAR_MM
    out = core.copy()
    pieces, _ = label_components(added, CONN6)
    for k, where in enumerate(ndimage.find_objects(pieces), start=1):
        if where is None:
            continue
        part = grown_box(where, 1, core.shape)
        piece = pieces[part] == k
        around = ndimage.binary_dilation(piece, CONN6) & ~piece
        shell = around & ~core[part]
        bordered = np.count_nonzero(shell & lung[part]) >= EXTENT_MIN_SURROUND * np.count_nonzero(shell)
        if bordered and (around & core[part]).any():
            out[part] |= piece
    return wide, out


def _at_apex(grown: np.ndarray, box: tuple[slice, ...], lung: np.ndarray) -> bool:
    """``grown`` (a candidate in ``box`` of ``lung``'s array) reaches within `APEX_REACH` of its lung's
    height of the lung's top: there a mass may have lung under it only (the apex narrows to nothing over
    it), where elsewhere lung over and under a soft-tissue mass is what tells it from the mediastinum."""
    slices = np.flatnonzero(lung.any(axis=(1, 2)))
    top = int(np.flatnonzero(grown.any(axis=(1, 2)))[-1]) + box[0].start
    return slices[-1] - top <= APEX_REACH * (slices[-1] - slices[0] + 1)


def _lung_under(grown: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """The share of ``grown``'s footprint (its voxel columns along z) whose lowest voxel has ``lung`` (within
    `ABUT_NEAR_MM`) on the slice under it: an apical mass's lowest slice may be a lobe of it against the
    mediastinum (lung under 29 % of it, under 89 % of the mass's footprint on a synthetic chest)."""
    near = ndimage.distance_transform_edt(~lung, sampling=spacing) <= ABUT_NEAR_MM
    lowest = np.argmax(grown, axis=0)
    footprint = grown.any(axis=0) & (lowest > 0)
    rows, cols = np.indices(lowest.shape)
    under = near[np.maximum(lowest - 1, 0), rows, cols] & footprint
    return np.count_nonzero(under) / max(np.count_nonzero(grown.any(axis=0)), 1)


def _base(grown: np.ndarray, box: tuple[slice, ...], soft: np.ndarray) -> float:
    """The area of the soft tissue ``grown`` (a candidate in ``box``) rests on, over its widest
    section's: the in-plane components of ``soft`` on the slice under its lowest one that lie under it."""
    areas = np.count_nonzero(grown.reshape(grown.shape[0], -1), axis=1)
    low = int(np.flatnonzero(areas)[0])
    under = soft[low + box[0].start - 1]
    pieces, _ = ndimage.label(under)
    footprint = np.zeros(under.shape, dtype=bool)
    footprint[box[1:]] = grown[low]
    touched = np.unique(pieces[footprint & under])
    return np.count_nonzero(np.isin(pieces, touched[touched > 0])) / areas.max()


def _abutment(grown: np.ndarray, box: tuple[slice, ...], lungs: list[np.ndarray], hulls: list[np.ndarray],
              spacing: tuple[float, float, float],
              pushed: float | None = None) -> tuple[int | None, float, float, float]:
    """Which lung (0: left, 1: right) wraps ``grown`` (a candidate in ``box`` of the searched
    volume, whose first and last slices are the scan's or lie beyond the lungs) as a mass against
    the mediastinum or the diaphragm (None when none does, or it reaches the first or last slice:
    the scan range may cut it), the shares of its top and bottom sections the lung lies over and
    under, lung within `ABUT_NEAR_MM` of a voxel counting as bordering it, and the share of it inside
    that lung's hull. With ``pushed`` (`_pushed`'s share), no share inside the hull is asked for and the lung need
    border only that share of its surface: a mass that pushed its lung back lies outside the hull."""
    near = [ndimage.distance_transform_edt(~lung[box], sampling=spacing) <= ABUT_NEAR_MM for lung in lungs]
    shell = ndimage.binary_dilation(grown, CONN6) & ~grown
    contact = [np.count_nonzero(shell & lung) for lung in near]
    side = int(np.argmax(contact))
    hulled = np.count_nonzero(grown & hulls[side][box]) / np.count_nonzero(grown)
    bordered = contact[side] / np.count_nonzero(shell)
    lung_rows = np.flatnonzero(lungs[side].any(axis=(0, 2)))
    front = (ndimage.center_of_mass(grown)[1] + box[1].start - lung_rows[0]) / max(lung_rows[-1] - lung_rows[0], 1)
    small = np.count_nonzero(grown) * math.prod(spacing) / 1000.0 < HEART_SIZED_ML
    wrapped = hulled >= ABUT_MIN_HULL or (hulled >= ABUT_RECESS[0] and bordered >= ABUT_RECESS[1]
                                          and front < ABUT_RECESS_FRONT and small)
    if pushed is not None:
        # a mass that pushed the lung back: the lung borders less of it and its hull leaves it out
        wrapped, least = True, pushed
    else:
        least = ABUT_MIN_SURROUND
    if bordered < least or contact[1 - side] > ABUT_MAX_OTHER * contact[side] or not wrapped:
        return None, 0.0, 0.0, hulled
    rows = np.flatnonzero(grown.any(axis=(1, 2)))
    low, high = int(rows[0]), int(rows[-1])
    if low + box[0].start == 0 or high + box[0].start == lungs[0].shape[0] - 1:
        return None, 0.0, 0.0, hulled
    lung = near[0] | near[1]
    top, bottom = (np.count_nonzero(lung[z + step] & grown[z]) / np.count_nonzero(grown[z])
                   for z, step in ((high, 1), (low, -1)))
    return side, top, bottom, hulled


def with_masses(search: NoduleSearch, masses: LungMasses, spacing: tuple[float, float, float],
                largest_mm: float) -> NoduleSearch:
    """``search`` with the ``masses`` of at most ``largest_mm`` (equivalent diameter, with the nodule
    search's `SIZE_TOLERANCE`: a mass of that size measures up to a voxel more) added; a larger one is named in the doubts (a search for nodules up to ``largest_mm`` that answers "no"
    beside a mass is no negative), and so are the masses' own doubts."""
    pieces, n = label_components(masses.mask, CONN26)
    if n == 0:
        return NoduleSearch(search.mask, search.doubts, search.masses + masses.doubts)
    diameters = ball_diameter_mm(component_sizes(pieces, n), math.prod(spacing))
    keep = diameters <= largest_mm * (1.0 + SIZE_TOLERANCE)
    keep[0] = False
    doubts = [f"a soft-tissue mass of about {d:.0f} mm (the diameter of a ball of its volume) lies inside the lung, "
              f"larger than the {largest_mm:g} mm this search counts as a nodule: ask about a lung mass"
              for d in diameters[1:][~keep[1:]]]
    found = search.mask.copy()
    big = (pieces > 0) & ~keep[pieces]
    if big.any():
        # a candidate touching a larger mass is a piece of it (a cap the lung mask held), not a nodule
        candidates, _ = label_components(found, CONN26)
        touching = np.unique(candidates[ndimage.binary_dilation(big, CONN26) & found])
        found &= ~np.isin(candidates, touching[touching > 0])
    return NoduleSearch(found | keep[pieces], search.doubts, search.masses + doubts + masses.doubts)


def _tapers(piece: np.ndarray) -> bool:
    """The piece (in its lung's bounding box) narrows below its largest section and ends above the
    lung's lowest slice, the box's first."""
    areas = np.count_nonzero(piece.reshape(piece.shape[0], -1), axis=1)
    rows = np.flatnonzero(areas)
    low, high = int(rows[0]), int(rows[-1])
    widest = int(np.argmax(areas))
    return low > 0 and widest - low >= MIN_TAPER * (high - low + 1)


def _split(piece: np.ndarray, spacing: tuple[float, float, float], smallest: float) -> list[np.ndarray]:
    """``piece`` parted where it narrows below `OPEN_RADIUS_MM` into the parts of at least ``smallest``
    voxels, or whole when it holds fewer than two: a mass and a diaphragm dome the lung encloses on
    the same slices, joined by a vessel, are one candidate, whose completion kept the larger (the dome)."""
    opened = ndimage.binary_opening(piece, ellipsoid(OPEN_RADIUS_MM, spacing))
    parts, n = label_components(opened, CONN6)
    sizes = component_sizes(parts, n)
    big = [k for k in range(1, n + 1) if sizes[k] >= smallest]
    return [parts == k for k in big] if len(big) >= 2 else [piece]


def _with_cavity(piece: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``piece`` with the air its wall encloses within a slice: a cavitating mass (a thick wall of soft
    tissue about air, which the lung masks leave out when no bronchus joins it to the lung) is measured
    with its cavity, as a tumour's contour is, and the lung tests (`_enclosed`) see the wall's outer
    surface only (a 54 mm mass with a 28 mm cavity was "not found": its inner surface faced no lung)."""
    return piece | (fill_holes_slicewise(piece) & (values < HU_AIR))


def _fill(piece: np.ndarray) -> float:
    """The share of its bounding box ``piece`` fills (a ball 0.52)."""
    return np.count_nonzero(piece) / math.prod(s.stop - s.start for s in bounding_box(piece))


def _solid(piece: np.ndarray, values: np.ndarray, min_fill: float = MIN_FILL) -> bool:
    """Soft tissue throughout, filling ``min_fill`` of its bounding box as a ball does, not
    partial-volume haze spread along a fissure or a streak, nor mostly fat (`MAX_FAT_SHARE`), nor mostly
    contrast-enhanced blood (`BLOOD_MIN_HU`)."""
    inside = values[piece]
    tissue = inside >= FAT_HU[0]
    fat = np.count_nonzero(tissue & (inside <= FAT_HU[1]))
    return (_fill(piece) >= min_fill and MIN_MEDIAN_HU <= float(np.median(inside)) < BLOOD_MIN_HU
            and fat <= MAX_FAT_SHARE * np.count_nonzero(tissue))


def _enclosed(piece: np.ndarray, lung: np.ndarray, surround: float, both_ends: bool) -> bool:
    """The lung goes on beyond both ends of the piece and lies over one of them (``both_ends``:
    over both: the liver under a dome reaches into the lung's outline from below), and around
    ``surround`` of its surface (a vessel leaving the lung at the hilum, or the heart the lung wraps
    around, goes on in soft tissue)."""
    rows = np.flatnonzero(piece.reshape(piece.shape[0], -1).any(axis=1))
    low, high = int(rows[0]), int(rows[-1])
    if low == 0 or high == piece.shape[0] - 1:
        return False
    caps = [np.count_nonzero(lung[z + step] & piece[z]) / np.count_nonzero(piece[z])
            for z, step in ((low, -1), (high, 1))]
    capped = min(caps) if both_ends else max(caps)
    return capped >= MIN_CAP and _bordered(piece, lung) >= surround


def _bordered(piece: np.ndarray, lung: np.ndarray) -> float:
    """The share of ``piece``'s outline (the voxels 6-joined to it) in ``lung``."""
    shell = ndimage.binary_dilation(piece, CONN6) & ~piece
    return np.count_nonzero(shell & lung) / max(np.count_nonzero(shell), 1)


def _overgrown(seed: np.ndarray, grown: np.ndarray, lung: np.ndarray) -> tuple[float, float] | None:
    """(how many times ``seed`` ``grown`` is, the share of its outline ``lung`` borders) when ``grown``,
    completed from the hole or bite ``seed``, is at least `COMPLETE_GROWTH_DOUBT` times it and ``lung``
    borders less than `OVERGROWN_MAX_SURROUND` of its outline: most of it is tissue joined to the part the
    lung encloses whose own boundary is unseen (collapsed lung or fluid beside a mass); else None."""
    growth = np.count_nonzero(grown) / np.count_nonzero(seed)
    if growth < COMPLETE_GROWTH_DOUBT:
        return None
    bordered = _bordered(grown, lung)
    return (growth, bordered) if bordered < OVERGROWN_MAX_SURROUND else None


def _ball(box: tuple[slice, ...], centre: Sequence[float], radius_mm: float,
          spacing: tuple[float, float, float]) -> np.ndarray:
    """The voxels of ``box`` within ``radius_mm`` of ``centre`` (voxel coordinates of the whole array)."""
    grid = np.ogrid[box]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius_mm ** 2


def _completed(piece: np.ndarray, dense: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float],
               hull: np.ndarray) -> tuple[np.ndarray, float]:
    """``piece`` and the dense voxels joined to it inside the lung's slice-wise convex ``hull`` and a
    ball about its centre `GROW_RADIUS` times the radius of its largest section (again from what
    was added, `GROW_ROUNDS` times: the enclosed part of a mass on the pleura may be a small cap),
    and the share of its outline where the last ball cut dense tissue in the hull off (see
    `COMPLETE_MAX_CUT`)."""
    grown = piece
    for _ in range(GROW_ROUNDS):
        areas = np.count_nonzero(grown.reshape(grown.shape[0], -1), axis=1)
        radius_mm = GROW_RADIUS * math.sqrt(areas.max() * spacing[1] * spacing[2] / math.pi)
        centre = np.array(ndimage.center_of_mass(grown))
        reach = np.ceil(radius_mm / np.asarray(spacing)).astype(int)
        lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
        hi = np.minimum(np.ceil(centre).astype(int) + reach + 1, piece.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        ball = _ball(box, centre, radius_mm, spacing)
        seeds = grown[box]
        more = np.zeros(piece.shape, dtype=bool)
        more[box] = ndimage.binary_propagation(seeds, structure=CONN6, mask=(dense[box] & hull[box] & ball) | seeds)
        more |= grown
        if np.count_nonzero(more) == np.count_nonzero(grown):
            break
        grown = more
    # the dense tissue the last ball cut off: a mass's completion closes inside it, one that merges with
    # the heart or the diaphragm goes on
    shell = ndimage.binary_dilation(grown[box], CONN6) & ~grown[box]
    cut = np.count_nonzero(shell & dense[box] & hull[box] & ~ball) / max(np.count_nonzero(shell), 1)
    # vessels and septa the growth followed out of the mass are thinner than it
    opened = ndimage.binary_opening(grown, ellipsoid(OPEN_RADIUS_MM, spacing))
    return (largest_component(opened) if opened.any() else grown), cut
