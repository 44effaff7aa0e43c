"""Classical lesion candidates: lung nodules on CT, a lesion in a prompted box, bright MR lesions.

* **Lung nodules (CT)**: voxels of at least `HU_AIR` (-400 HU, i.e. not aerated lung) inside
  the hole-filled lung masks, split into 26-connected components; a component is a candidate
  when its volume lies between `NODULE_MIN_MM3` and a sphere of `NODULE_MAX_DIAMETER_MM`, it is
  compact (`MIN_SPHERICITY`: volume over the volume of the sphere spanning its largest bounding
  box extent; vessels are long and fail it) and isolated (`ISOLATION_MM`; partial-volume specks of
  the pleura do not count). It may touch the costal pleura with at most `MAX_WALL_CONTACT` of its
  voxels, and the mediastinal surface, where vessel stumps leave the lung at the hilum, as little
  and only when it is a ball (`MEDIASTINAL_MIN_SPHERICITY`; the search then says it may be a
  stump). A large crescent on the costal pleura, all of a nodule the lung mask and its pockets
  hold, is completed by its in-plane hull (`_pleural_completions`). Then three tests in mm
  remove vessel pieces (`plausible_nodule`): the equivalent-sphere diameter is at least
  `NODULE_MIN_DIAMETER_MM`; the largest axial section is compact (its area is at least
  `MIN_SECTION_COMPACTNESS` of the circle spanning its longest extent: an oblique vessel cut is
  a thin streak); on slices of at most `THIN_SLICE_MM` the candidate spans at least two slices
  (a nodule of 4 mm or more does), and on slices thicker than `THICK_SLICE_MM` its largest
  section is at least as wide (equivalent diameter) as a slice is thick, since a narrower blob
  seen on one or two thick slices cannot be told from a vessel crossing the slice; such a blob must
  also stay compact when grown over its fainter partial volume (`HALO_FRACTION`,
  `_drop_streak_pieces`: a thin vessel crossing thick slices obliquely breaks into blobs a slice
  tall that its faint part joins again). Limit: on thick slices nodules not much larger than the
  slice thickness may be missed. Sizes are compared with the largest diameter searched with
  `SIZE_TOLERANCE` to spare (a nodule of that size measures up to a voxel more).
  Nodules touching a vessel are one component with the vessel tree and fail these tests; the
  rejected structures are opened by balls of `DETACH_RADII_MM` and a surviving round, isolated,
  soft-tissue piece with at most `DETACH_MAX_ARMS` vessel branches (faint slivers on one slice, its own
  partial-volume halo, are none: `ARM_MIN_HU`; any number when it is
  `MANY_ARMS_MIN_WIDENING` times as wide as all of them), wider than those branches
  (`DETACHED_MIN_WIDENING`: beads that the opening leaves along a thick vessel are not, unless the
  branches are contrast-filled, `ENHANCED_ARMS_HU` brighter than the piece), is a nodule
  (`_detached_nodules`); where a vessel thick enough to survive the same opening is joined to the
  ball, the piece is the ball's own core opened and that vessel its one branch (slices up to
  `THICK_SLICE_MM`). Known limits: on a non-enhanced scan a nodule beside a vessel nearly as thick
  as itself fails that test and is missed, and so is one whose ball the opening cannot part from
  the thick hilar structures the search region holds at the hilum. On slices thicker than `THICK_SLICE_MM` the
  partial-volume haze of vessels leaves ball-like pieces at junctions, about a slice wide: there a
  piece must hold a ball two slices wide, be rounder (`THICK_DETACHED_MIN_SPHERICITY`) and wider
  than its branches by `THICK_DETACHED_MIN_WIDENING`, and its branches are counted in-plane around
  its footprint (its own caps, a slice above and below, are none). Components on the scan's first or last
  slice are not counted either (a vessel the scan range cuts ends there in a round stump),
  unless the range only grazes them: their widest section lies inside the scan and is at least
  `CUT_MIN_SECTION_MM` across, and they reach from it no farther than a ball that wide would, nor
  through every slice of the lungs' box (`_whole_enough`, `_grazed`; the search then says their
  size is less certain).
  A nodule sitting on the chest wall shows the lung only its cap, the rest lying in the wall as
  dense as the wall: a component failing only for its wall contact is that cap when it is a dome
  (`_pleural_caps`: it reaches `CAP_MIN_HEIGHT_MM` and `CAP_MIN_DOME` of its footprint's radius into
  the lung, no farther than it is wide, fills `CAP_MIN_FILL` of the dome of its footprint and height,
  and is soft tissue); the partial-volume rim of the wall and pleural thickening lie flat. On slices
  over `THICK_SLICE_MM`, where the curving wall's partial volume makes domes too, a cap must also hold
  no bone, keep a core off the pleura and have aerated lung on the slice beside it on each side
  (`_thick_pleural_caps`); the search says the dome may be pleural thickening or partial volume. A
  nodule lighting up one thick slice where the wall curves across the slice beside it touches the
  pleura through that slice with most of its voxels: it is kept when it passes the tests of an
  isolated nodule, bulges into the lung in-plane as a round section of soft tissue whose core fills the
  slice, and the lung runs on past it on one side (`_one_slice_domes`; hedged the same way). On
  a contrast scan (`ENHANCED_MIN_SHARE` of the dense structures at `ENHANCED_SPLIT_HU` or above) a
  nodule beside an enhanced vessel as thick as itself is one structure with it that no opening
  parts; the detachment is run again on the structures' soft tissue, where the nodule is apart from the vessel's lumen (`_unenhanced`). Limit: on
  a scan without contrast a nodule beside a vessel as thick as itself is still missed.
  A found candidate that is a ring around air on some slice (`RING_MIN_HOLE_SHARE`, `_rings`) is an
  airway's wall cut short, not a solid nodule (limit: a cavitating nodule is left out too; the
  search says so).
  The search says when it may be wrong (`NoduleSearch.doubts`, read by
  `ClassicalSegmenter.search_weakness`, which flags the evidence doubtful): thick slices, a nodule
  found by detaching it from a vessel or on the mediastinal surface, a borderline piece on a vessel
  left out, a compact candidate cut by the scan range or lying along the pleura left out, a ring
  left out.
* **Lesion in a box (any modality)**: the box is compared with its surroundings. After a
  Gaussian smoothing (1 voxel, within the view's plane), the organ level is the median of a ring
  around the box (the box grown by half its size, at least 5 voxels, in the view's plane); on CT
  only soft-tissue values (`TISSUE_HU`) count, so fat and air around an organ do not. The noise
  SD comes from neighbour differences of the unsmoothed ring (robust to tissue mixtures), scaled
  by the smoothing's noise gain. Voxels in the box deviating by more than `BOX_K` SDs are
  candidates; the polarity (darker or brighter than the organ) is the one at the prompt point,
  else the one covering more of the box's central half. The component at the point (or nearest
  the box centre), if at least 3 mm across (`NODULE_MIN_MM3`), is then cut at half the contrast
  between organ and lesion (a half-maximum edge, so sizes do not depend on the noise), and its
  holes are filled slice by slice.
* **Lesion within an organ (CT)**: given the organ's mask (e.g. the liver from ``segment``), the
  organ level is the median of the smoothed organ at least `ORGAN_MARGIN_MM` inside its edge,
  the noise SD is measured as for a box; voxels deviating by more than `BOX_K` SDs form
  candidates; the largest compact one (at least `NODULE_MIN_DIAMETER_MM` across, not touching
  the organ's edge, where partial volume with fat mimics a lesion) is cut at half the contrast
  between organ and lesion and filled. No candidate gives an empty mask.
* **Hyperintense MR lesions** (FLAIR/T2): the brain is the head (filled Otsu foreground) minus
  `STRIPPED_MARGIN_MM` when the image is skull-stripped (its background is one exact value,
  `skull_stripped`); a head that keeps its scalp and skull is cut from them by opening its bright
  tissue (`_parenchyma`; scalp and skull are 7-16 mm thick, more than any fixed margin fits), or,
  when that fails, loses a `HEAD_MARGIN_MM` shell. After a `MR_SMOOTH_MM`
  Gaussian, the brain's histogram gives its levels (`brain_tissue`): white matter is the dominant
  mode, its SD the half width of the mode's lower flank (the upper one holds grey matter and
  lesions); what lies above a mirror image of that flank is grey matter. On real FLAIR grey matter
  is a shoulder about one SD above white matter, as bright as faint lesion edges and too noisy to
  threshold by; on phantoms (and some T2) it is a peak of its own (`BrainTissue.grey_peak`), and
  lesions must then clear it too. Brain percentiles do not work: small lesions sit at the brain's
  98th-99th percentile, level with the bright tail of the cortex. Lesion cores exceed
  `MR_SEED_WM_K` SDs above white matter at least `MR_SURFACE_MM` inside the brain's edge (the
  surface and cortical ribbon); a lesion is the connected set of voxels above `MR_GROW_WM_K` SDs
  (and half way from white matter to its core's median, a half-maximum edge; for a core above
  `MR_RIM_MAX_CORE_K` SDs, to its `MR_PEAK_PERCENTILE` percentile, its peak) holding cores. It is
  kept from `MR_MIN_LESION_MM3` when compact (`MR_MIN_SPHERICITY`) or thick (`MR_THICK_MM` over
  `MR_THICK_SHARE` of it): bright grey matter reaching lesion level (hippocampus, choroid plexus,
  cortex along a sulcus) forms thin sprawling bands, confluent periventricular lesions sprawl but
  are thick; a lesion cut by the field of view is anatomy (neck, scalp), not a lesion (the faint
  component around it may reach the edge). Where grey matter is a bright shoulder
  above white matter (`MR_CORTEX_GM_K` SDs, no peak of its own: 2-D FLAIR), voxels within
  `MR_CORTEX_MM` of sulcal CSF (dark, connected to the CSF around the brain) and below
  `MR_CORTEX_CLEAR_K` SDs are cortex (`_cortex_band`): they neither seed nor grow lesions, and a
  piece lying along them with a core no brighter is dropped; within `MR_CORTEX_REACH_MM` (sulci too
  thin to show dark) cores must exceed `MR_CORTEX_SEED_K` SDs. There a core brighter than any cortex
  (`_clear_of_cortex`) seeds a lesion however near the region's edge, which deep sulci cut. Where
  that shoulder merges with white matter's mode (the histogram shows no grey matter) but the
  brain's outer ribbon is bright (`BrainContrast.brighter` at least `MR_BRIGHT_CORTEX_SHARE`), a
  part fainter than `MR_FAINT_K` SDs whose median voxel lies within `MR_CORTEX_MM` +
  `MR_CORTEX_NEAR_MM` of sulcal CSF (`_sulcal_csf`) is cortex and dropped. Each
  lesion then gets its faint rim
  (raters draw MS lesions out to where they fade into white matter, 1-2 SDs above it; a voxel between a
  lesion and a CSF-suppressed ventricle averages the two): a hysteresis from the lesion down to
  `MR_RIM_WM_K` SDs (and `MR_RIM_CORE_FRACTION` of its core's contrast), within `MR_RIM_MM` (one
  voxel across thick slices); a rim larger than `MR_RIM_MAX_SHARE` of its lesion means the
  surroundings are as bright (cortex, a periventricular cap) and is left out, and lesions brighter
  than `MR_RIM_MAX_CORE_K` SDs have a sharp edge and no rim. All lesions are returned (the lesion
  load; a point prompt picks one) with the reasons to doubt them (`MRLesions.doubt`), among them
  rims that are a large share of the burden, with the range the burden then spans. Limits: small
  faint lesions without a core are missed; bright grey matter blobs and periventricular caps can
  be counted; a juxtacortical lesion no brighter than a bright cortex loses the part beside it.
  The brain-MR stress benchmark (`python -m benchmarks.stress_mr`) measures these limits.
  Lesions are dark on T1: the search does not apply there (`grounding.plausibility.sequence_quality` holds it against the sequence the files name);
  when nothing names it, `BrainContrast` (the outer ribbon against the deep white matter) can tell
  a T1 from the image itself.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from grounding.segmenters.base import SegmentationError
from grounding.segmenters.chest import HU_AIR
from grounding.segmenters.morphology import (
    CONN6,
    CONN26,
    CoarseGrid,
    bounding_box,
    component_sizes,
    ellipsoid,
    fill_holes_slicewise,
    grown_box,
    largest_component,
    nearest_component,
)

#: smallest candidate: a (3 mm)^3 cube
NODULE_MIN_MM3 = 27.0
#: largest candidate: a sphere of this diameter (larger focal lesions are masses)
NODULE_MAX_DIAMETER_MM = 30.0
#: largest lung lesion searched: a sphere of this diameter (above 30 mm a nodule is a mass)
MASS_MAX_DIAMETER_MM = 100.0
#: the largest diameter searched is measured with this much to spare (a share of it): a nodule of
#: that size measures larger by up to a voxel (whole voxels counted, the partial-volume rim, a stub
#: of the vessel it touches), and a 30 mm nodule on a vessel was missed by both the nodule and the
#: mass search
SIZE_TOLERANCE = 0.1
#: a candidate touching the outer lung surface may have at most this share of its voxels on it
MAX_WALL_CONTACT = 0.3
#: a candidate touching the mediastinal lung surface (where vessels leave the lung at the hilum) may
#: have at most `MAX_WALL_CONTACT` of its voxels on it when it is a ball (its volume over the sphere
#: spanning its largest extent at least this): a nodule on the mediastinal pleura (on the heart or
#: the aorta) is; a vessel's stump, longer than wide, mostly is not
MEDIASTINAL_MIN_SPHERICITY = 0.45
#: a crescent on the costal pleura holding at least a sphere of this diameter (mm) is completed
#: by its in-plane convex hull (`_pleural_completions`)
COMPLETED_MIN_MM = 10.0
#: ... when the hull adds at least this share to the crescent (a vessel's end on the pleura gains a
#: few voxels of the wall) and the completed blob's median is soft tissue, at least this (HU; the
#: partial-volume rims of organs bulging into the lung are mixtures with lung)
COMPLETED_MIN_GAIN = 0.15
COMPLETED_MIN_HU = -100.0
#: radius (mm) of the in-plane closing whose pockets hold nodules sitting on the pleura
PLEURA_POCKET_MM = 16.0
#: radii (mm) of the balls whose openings detach nodules from the vessels they touch
DETACH_RADII_MM = (2.5, 3.5, 5.0, 7.0)
#: a detached piece's volume over the sphere spanning its largest extent (stricter than
#: `MIN_SPHERICITY`: what survives an opening is a ball or a stub of a thick vessel)
DETACHED_MIN_SPHERICITY = 0.45
#: an opening ball must be at least this many in-plane voxels in radius
DETACH_MIN_VOXELS = 2.5
#: what the opening removed around a detached piece may fall into at most this many pieces
DETACH_MAX_ARMS = 2
#: ... unless it is this many times as wide as the widest of them (inscribed radii): where vessels
#: meet, the ball between them is not much wider than they are; a nodule on the pleura's partial-volume
#: rim, which the opening cuts into several thin pieces, or a large nodule touching several vessels is
MANY_ARMS_MIN_WIDENING = 2.0
#: a removed piece lying on one slice and fainter than this (median HU where it crosses the shell of
#: `_arms`) is no vessel branch: it is the partial-volume halo of the ball itself on the slice above or
#: below it (a vessel, 35 HU or more, is mostly soft tissue at its median there); such slivers made a
#: third "arm" of a 13.6 mm nodule on a vessel on 3 mm slices (stress tuning seed 117: -260 and -340 HU).
#: A faint piece over two or more slices still counts: on a real chest CT (4D-Lung 113, 3 mm slices)
#: not counting those let a new 0.55 mL find through where the reference holds no nodule
ARM_MIN_HU = -200.0
#: on slices thicker than `THICK_SLICE_MM`, where vessels crossing a slice obliquely blur into
#: blobs, a detached piece must be rounder than `DETACHED_MIN_SPHERICITY` (its extent across the
#: slices counts from the first to the last slice centre, `_extent_mm`), hold a ball as wide as two
#: slices, and be wider than its branches by this factor (not `DETACHED_MIN_WIDENING`)
THICK_DETACHED_MIN_SPHERICITY = 0.6
THICK_DETACHED_MIN_WIDENING = 1.6
#: a ball that a vessel surviving the same opening joins (`_detached_nodules`) may have this many
#: branches: a nodule beside a vessel touches that one vessel, passing it; where vessels fan out side
#: by side (at the hilum, at a branching) the ball between them has two or more
BESIDE_MAX_ARMS = 1
#: a ball as wide as the vessel it touches is a nodule beside it (`_beside_a_vessel`) when the vessel
#: leaves it in at most this many branches (before and after it, or one wrapping round it) whose
#: axis misses the ball's centre by at least this share of the ball's radius (mm over mm): the centre
#: of a nodule on a vessel lies its radius and half the vessel's off the vessel's axis, a bead of the
#: vessel on it
BESIDE_MAX_BRANCHES = 2
BESIDE_MIN_OFFSET = 1.0
#: ... and that lie within this share of the vessel's radius of one line (mm over mm): one straight
#: vessel passes the ball, not two, nor one the ball continues (a bead of a vessel touching another)
BESIDE_MAX_SCATTER = 0.45
#: on slices thicker than `THICK_SLICE_MM` (`_thick_beside_nodules`) the cores of openings by balls of these radii
#: (mm; those narrower than a slice) are searched for nodules beside a vessel: finer steps than
#: `DETACH_RADII_MM`, since a nodule as thick as its vessel parts from the vessel's core only at a radius
#: between the vessel's and its own
THICK_BESIDE_RADII_MM = (2.5, 3.0, 3.5, 4.0, 4.5)
#: ... where the ball must be at least this many times as wide as the vessel passing it (inscribed radii):
#: a vessel crossing thick slices obliquely stair-steps, each slice's section a ball beside the vessel's
#: course on the next slices and exactly as wide as it; a nodule beside a vessel is at least as wide as
#: it and the two together wider still
THICK_BESIDE_MIN_WIDENING = 1.1
#: ... and its centre lie off the vessel's axis by `BESIDE_MIN_OFFSET` of its radius, and by at most the
#: sum of the two radii (further off, the ball does not touch the vessel: the haze of another joins them);
#: the vessel's axis points may scatter about one line by this share of the vessel's radius (more than
#: `BESIDE_MAX_SCATTER`: the deepest voxels of a vessel across thick slices lie a slice's haze apart)
THICK_BESIDE_MAX_SCATTER = 0.8
#: a ball's or a branch's axis: its voxels at least this share as deep as its deepest (distance, mm)
BESIDE_CORE_SHARE = 0.8
#: a detached piece brighter than this (median HU) is a contrast-filled vessel, not soft tissue
DETACHED_MAX_HU = 150.0
#: a removed piece counts when it reaches this far (mm) from the detached one
ARM_REACH_MM = 3.0
#: on a scan whose lung vessels hold contrast (at least `ENHANCED_MIN_SHARE` of the dense structures'
#: voxels at `ENHANCED_SPLIT_HU` or above: portal-venous blood is 150-200 HU, soft-tissue nodules up to
#: about 100) nodules are searched in the dense structures' soft tissue below it as well (`_unenhanced`)
ENHANCED_SPLIT_HU = 125.0
ENHANCED_MIN_SHARE = 0.2
#: ... where a piece's median must be solid soft tissue, at least this (HU): the fat and partial volume
#: around the hilum's enhanced vessels make pieces of -100 to -70 HU there
ENHANCED_PIECE_MIN_HU = -30.0
#: a detached piece's inscribed radius must exceed its branches' by this factor: a ball sitting
#: on a vessel is wider than the vessel, a bead that an opening leaves on a thick vessel is not
DETACHED_MIN_WIDENING = 1.3
#: ... unless its branches are brighter than it by this much (median HU): contrast-filled vessels
#: tell a nodule from a bead of the vessel, however thick the vessel is
ENHANCED_ARMS_HU = 100.0
#: a detached piece failing the widening test only, by less than this factor of it, is borderline:
#: the search says it may have missed a nodule there
BORDERLINE_WIDENING = 0.8
#: volume / volume of the sphere whose diameter is the largest bounding-box extent
MIN_SPHERICITY = 0.25
#: smallest nodule: equivalent-sphere diameter (mm)
NODULE_MIN_DIAMETER_MM = 4.0
#: area of the largest axial section / area of the circle spanning its longest extent
MIN_SECTION_COMPACTNESS = 0.5
#: a structure along the pleura makes the search doubtful when its widest section is at least
#: `NODULE_MIN_DIAMETER_MM` and this many in-plane pixels across (`_along_the_pleura`)
PLEURA_DOUBT_MIN_PIXELS = 3.0
#: a candidate on the scan's first or last slice is a nodule the range only grazes when its widest
#: section lies inside the scan and is at least this wide (mm; wider than a lung vessel's stump)
CUT_MIN_SECTION_MM = 10.0
#: a structure along the costal pleura (`_along_the_pleura`) is a nodule's cap when it reaches this far
#: (mm) into the lung and this share of its footprint's radius (`_pleural_caps`)
CAP_MIN_HEIGHT_MM = 3.0
CAP_MIN_DOME = 0.5
#: ... and fills at least this share of the dome of its footprint and height (`_pleural_caps`)
CAP_MIN_FILL = 0.7
#: on slices thicker than `THICK_SLICE_MM` a cap (`_thick_pleural_caps`) holds no bone: the `CAP_BONE_PERCENTILE`
#: percentile of its HU stays below `CAP_MAX_HU` (soft-tissue nodules are 0-100 HU; a rib curving across
#: a thick slice lays domes of its partial volume on the pleura, 300-600 HU at their core)
CAP_BONE_PERCENTILE = 90.0
CAP_MAX_HU = 200.0
#: ... and bulges into the lung: at most this share of its voxels lies on the pleura (a nodule's cap keeps
#: a core off it; where the lung's apex or a dome ends across a thick slice its partial volume is a sheet
#: lying on the pleura, nearly all of it surface)
THICK_CAP_MAX_CONTACT = 0.7
#: ... and is a bump on the pleura: on the slice beside it on each side, aerated lung fills at least this share
#: of its in-plane outline (the union of its sections): the lung runs on past a nodule; where the lung's apex
#: or base ends across thick slices, the wall itself lies there
THICK_CAP_MIN_LUNG_BESIDE = 0.5
#: on slices thicker than `THICK_SLICE_MM` a nodule of 6-8 mm on the costal pleura may light up one slice only,
#: where the wall curving across the slice beside it makes most of its voxels touch the pleura through that
#: slice (`_one_slice_domes`): it is one when its section bulges into the lung, at most this share of its pixels
#: on the lung's in-plane edge (a rim or plaque lies along it) ...
ONE_SLICE_MAX_EDGE_SHARE = 0.4
#: ... its section is round: its area at least this share of the circle spanning its longest extent (stricter
#: than `MIN_SECTION_COMPACTNESS`: one slice tall, it has no height of its own to vouch for it)
ONE_SLICE_MIN_COMPACTNESS = 0.6
#: ... and the lung runs on past it: aerated lung fills at least this share of its footprint (the pixels under its
#: section) on one slice beside it
ONE_SLICE_MIN_LUNG_BESIDE = 0.9
#: ... and it fills the slice's thickness at its core: its `CAP_BONE_PERCENTILE` percentile is at least this (HU;
#: solid nodules are 0-100 HU; the wall's partial-volume scallops stay below it, stress tuning seed 546 at 5 mm: 16 HU)
ONE_SLICE_MIN_CORE_HU = 30.0
#: on slices this thin (mm) or thinner a nodule spans at least two slices
THIN_SLICE_MM = 2.5
#: on slices thicker than this (mm) the largest section must be as wide as a slice is thick
THICK_SLICE_MM = 3.0
#: on thick slices the largest section must be at least this wide (mm, equivalent diameter): a
#: 6 mm nodule centred between two 5 mm slices shows sections of about 3 mm on each
THICK_SECTION_MM = 3.0
#: on slices thicker than `THICK_SLICE_MM` a candidate on one or two slices must stay a compact blob
#: (`MIN_SPHERICITY`) when grown over the voxels this share of the way from the lung's level to
#: `HU_AIR` (`_drop_streak_pieces`): a thin vessel crossing thick slices obliquely breaks, at `HU_AIR`,
#: into blobs a slice tall, which its fainter partial volume joins again into a streak; a nodule's
#: faint rim is its cap on the slice beside it
HALO_FRACTION = 0.4
#: ... leaving out, for a candidate on the costal pleura, the chest wall's partial-volume rim: the lung
#: this close (mm, in-plane) to the pleura (`_pleural_streak_pieces`)
PLEURA_RIM_MM = 2.0
#: ... for a candidate at least this large (mm, equivalent-sphere diameter): smaller pieces of the rim
#: itself are as round on one or two thick slices
PLEURA_STREAK_MIN_MM = 6.0
#: a candidate whose in-plane holes (lung or air it encloses) hold at least this share of its filled
#: section on some slice is a ring, an airway's wall, not a solid nodule (`_rings`)
RING_MIN_HOLE_SHARE = 0.1
#: the organ reference level is taken this far (mm) inside the organ's edge
ORGAN_MARGIN_MM = 5.0
#: a candidate must be this far (mm, in-plane; and one slice) from other dense lung structures
ISOLATION_MM = 3.0
#: ... but for specks smaller than `NODULE_MIN_MM3` and than this share of the candidate's volume
ISOLATION_SPECK_FRACTION = 0.05
#: deviation, in noise SDs, from the organ level that marks a lesion in a box
BOX_K = 3.0
#: CT values counted as organ tissue for the box reference (HU): excludes fat, air, bone
TISSUE_HU = (-50.0, 400.0)
#: floor of the noise SD (HU on CT; fraction of the value range otherwise)
MAD_FLOOR_HU = 5.0
MAD_FLOOR_FRACTION = 0.002
#: hyperintense MR lesion cores lie this many SDs of the normal-appearing white matter above its
#: level, and, where grey matter is a peak of its own, as many of grey matter above its level
#: (`BrainTissue`)
MR_SEED_WM_K = 4.0
MR_SEED_GM_K = 4.0
#: a core's lesion extends over connected voxels at least this many SDs above white matter (and
#: above grey matter where it is a peak, and at least half way from white matter to the core's
#: median)
MR_GROW_WM_K = 2.25
MR_GROW_GM_K = 1.0
#: grey matter this many white-matter SDs above white matter is a peak of its own (phantoms,
#: some T2); on real FLAIR it is a shoulder about one SD above
MR_GREY_PEAK_K = 3.0
#: lesion cores must lie this far (mm) inside the brain region's edge: the brain's surface and
#: its cortical ribbon are as bright as small lesions on FLAIR
MR_SURFACE_MM = 3.0
#: a bright lesion's (cores above `MR_RIM_MAX_CORE_K` SDs) half-maximum edge lies half way from
#: white matter to this percentile of its component (its peak): on one that fades gradually the
#: cores' median lies far below the peak, and an edge from it far outside the half-maximum contour
MR_PEAK_PERCENTILE = 99.0
#: lesion cores more than this many white-matter SDs above white matter: the brain's bright
#: normal tissue set the level (bright CSF on T2: 40-80; FLAIR: 4-14) and the search is blind to
#: lesions fainter than it (`MRLesions.doubt`)
MR_BLIND_SEED_K = 20.0
#: where grey matter is a peak of its own, lesion cores more than this many white-matter SDs above
#: white matter (grey matter set the level): lesions as faint as grey matter are missed
MR_FAINT_BLIND_K = 8.0
#: slices thicker than this (mm) partial-volume small lesions: the burden is approximate
MR_THICK_SLICE_MM = 3.0
#: smallest hyperintense MR lesion kept (mm^3)
MR_MIN_LESION_MM3 = 10.0
#: a lesion is compact (its volume over the sphere spanning its largest extent at least this) or
#: thick (it holds a ball of `MR_THICK_MM` radius): bright grey matter found at lesion level
#: (hippocampus, choroid plexus, cortex along a sulcus) is a thin sprawling band, confluent
#: periventricular lesions sprawl but are thick
MR_MIN_SPHERICITY = 0.12
MR_THICK_MM = 3.0
#: ... over at least this share of its voxels (`_thick_share`): where sulci fold the cortex, a
#: network of it holds such a ball at its junctions (on thick slices a flat sheet of one slice
#: does), not along its sheets (stress cortex networks of 5-56 mL: 0.01-0.12; a real confluent
#: periventricular lesion load before its rim: 0.20 and 0.30)
MR_THICK_SHARE = 0.15
#: Gaussian smoothing (mm) before the thresholds: single-voxel noise peaks do not seed lesions
MR_SMOOTH_MM = 0.7
#: `BrainContrast`: the outer ribbon is this deep (mm), the deep part starts this far inside (mm)
MR_RIBBON_MM = 8.0
MR_DEEP_MM = 20.0
#: a ribbon voxel is brighter or darker than the deep part beyond this many of its robust SDs
MR_CONTRAST_K = 1.5
#: T1: at least this share of the ribbon darker (grey matter and CSF), and this many times the share
#: brighter (phantom T1: 68 % and 16 %, its FLAIR 53 % and 29 %: CSF around the brain is dark on both)
MR_T1_DARK_SHARE = 0.4
MR_T1_DARK_RATIO = 3.0
#: FLAIR/T2: at least this share brighter (grey matter), and at least this fraction of the share darker
MR_BRIGHT_SHARE = 0.25
MR_BRIGHT_RATIO = 0.5
#: found lesions whose median lies fewer than this many spreads above grey matter are doubtful:
#: cortex and physiologically bright grey matter (hippocampus) reach that level
MR_MIN_GM_CONTRAST = 2.0
#: found lesions covering more than this share of the brain region are doubtful (MS lesion loads
#: rarely pass 5 %)
MR_MAX_BURDEN_FRACTION = 0.10
#: a lesion's faint rim (partial volume with white matter, the fading edge raters include) is
#: grown from its confident part over connected voxels at least this many white-matter SDs above
#: white matter (below `MR_GROW_WM_K`: grey matter reaches this level, hence the limits below) ...
MR_RIM_WM_K = 1.5
#: ... and at least this fraction of the way from white matter to its core's median (a sharp,
#: bright lesion's neighbours are brightened by the smoothing and the voxel grid, not by lesion)
MR_RIM_CORE_FRACTION = 0.25
#: a lesion whose core's median is more than this many white-matter SDs above white matter stands
#: out with a sharp edge (its half-maximum contour is its extent; below it lie voxels less than half
#: lesion): it is cut half way to its peak and gets no rim. Real MS lesions on FLAIR have cores 3-6
#: SDs up and fade into white matter; on the brain-MR stress benchmark a limit of 8 SDs gave lesions
#: 5-8 SDs up rims and cuts at half their cores' median, tripling their burden
MR_RIM_MAX_CORE_K = 5.0
#: ... at most this far (mm) beyond the confident part, and at least one voxel along each axis (on
#: thick slices the lesion's partial-volume edge is the neighbouring slice)
MR_RIM_MM = 2.0
#: a rim larger than this share of its lesion's confident part means the surroundings are about
#: as bright as the rim (cortex, a periventricular cap, bright deep grey matter): its extent cannot
#: be told, so the rim is left out and counted as uncertain
MR_RIM_MAX_SHARE = 0.7
#: voxels touching CSF-suppressed ventricles beside a lesion are lesion and CSF averaged (at any
#: level between them, often white matter's): CSF is darker than white matter by this many
#: white-matter SDs
MR_CSF_WM_K = 3.0
#: `_lesion_basins`: a brightness summit this many white-matter SDs above the saddle to a brighter one
#: is a lesion of its own, with its own half-maximum edge (lower summits are texture within a lesion)
MR_BASIN_K = 2.0
#: `_shoulders`: cores left below a bright lesion's edge are a fainter plaque on its flank when they are
#: thick as a confluent load is (`MR_THICK_SHARE` of them within balls of `MR_THICK_MM`), not its fading
#: skirt (a shell about 1-3 mm thick on its outside: fresh seed 474, a 15 mL shell of a large load's skirt
#: holding one such ball, share 0.01, was found as 23 mL of lesion, 3 of it true) ...
#: ... unless, on slices thicker than `MR_THICK_SLICE_MM`, more than this share of it lies right above or
#: below the lesion on the next slice (the lesion partial-volumed across a thick slice: dev seeds 1 and
#: 25, 0.54 and 0.34 of white matter at 5 SDs; a confluent plaque along the ventricle, seed 26: 0.14)
MR_SHOULDER_MAX_SHADOW = 0.25
#: plaques found on a brighter lesion's flank (`_shoulders`) making up at least this share of the burden
#: are named in the doubt: where the plaque ends and the bright lesion's skirt begins is a judgement
MR_SHOULDER_REPORT_SHARE = 0.2
#: lesions whose rims (kept or left out) add more than this share to the confident burden are
#: doubtful: their extent, and so the burden, depends on where between the two levels the edge lies
MR_MAX_RIM_FRACTION = 0.3
#: `_cortex_band`: voxels within this distance (mm, the cortex's depth) of sulcal CSF, and less
#: than `MR_CORTEX_CLEAR_K` white-matter SDs above white matter, may be cortex: not lesion
MR_CORTEX_MM = 3.0
MR_CORTEX_CLEAR_K = 6.0
#: ... where grey matter (`BrainTissue.grey`) lies at least this many white-matter SDs above white
#: matter (real 3-D FLAIR: about one)
MR_CORTEX_GM_K = 1.5
#: a found part with this share of its voxels next to bright cortex-band voxels, its core no
#: brighter than the band (`MR_CORTEX_CLEAR_K`), is a piece of the cortex the band cut off
MR_ALONG_CORTEX_SHARE = 0.5
#: ... and within this distance (mm) of sulcal CSF, where sulci thinner than a voxel, which do not
#: show dark, leave cortex farther from the dark CSF the band is measured from, lesion cores must
#: exceed this many white-matter SDs above white matter (the cortex's tail reaches the seed level)
MR_CORTEX_REACH_MM = 8.0
MR_CORTEX_SEED_K = 5.0
#: `_sulcal_csf`: where at least this share of the brain's outer ribbon is brighter than its deep
#: white matter (`BrainContrast.brighter`: stress brains with cortex 2.7-5 white-matter SDs up
#: 0.17-0.56; real 3-D FLAIR 0.04-0.06), cortex reaches the level of faint lesions ...
MR_BRIGHT_CORTEX_SHARE = 0.15
#: ... and a found part whose median lies less than this many white-matter SDs above white matter
#: (the level of cortex's textured top on such scans: stress cortex false positives 2.5-3.5) ...
MR_FAINT_K = 3.5
#: ... unless it lies on the ventricles' lining (`_ventricles`; a voxel within this distance, mm, of
#: ventricular CSF): a confluent periventricular load at 3-3.5 SDs is split off the same way (dev stress
#: seeds 43, 51: 1-3.5 mL missed each) ...
MR_LINING_MM = 3.0
#: ... with its median voxel farther than this (mm) from sulcal CSF, deeper than cortex lies (grey
#: matter split from lesions on dev stress seeds: medians 4-15 mm from it; periventricular loads 28-31
#: mm), and its mirror image across the midline no brighter than `MR_MIRROR_K` SDs (deep grey matter
#: and the ependymal lining along both ventricles are mirrored: dev seed 7, 3.3 mL at 4.2 SDs)
MR_LINING_CLEAR_MM = 20.0
#: ... with its median voxel within this distance (mm) past `MR_CORTEX_MM` of sulcal CSF is cortex
MR_CORTEX_NEAR_MM = 2.0
#: sulcal CSF lies within this depth (mm) of the brain region's edge; deeper dark voxels joined to it
#: through the region's cuts are ventricles, whose neighbours are periventricular lesions
MR_SULCAL_DEPTH_MM = 20.0
#: `_clear_of_cortex`: a lesion core brighter than the cortex's tail holds at least this much
#: (mm^3; a ball about 4 mm across) above its level; smaller bright specks are the tail itself
MR_CLEAR_MIN_MM3 = 40.0
#: `_mirrored_level`: a large, compact (`MR_MIN_SPHERICITY`) found part whose median lies less than
#: `MR_FAINT_K` white-matter SDs above white matter while its mirror image across the brain's midline
#: has its upper quartile at least this many SDs above white matter is bilateral normal tissue (deep
#: grey nuclei, cortex), not a lesion: MS lesions are not mirrored (fresh stress tuning seeds: deep
#: grey nuclei found as lesions 1.8-4.6; faint lesions found mostly below 1, a few small ones
#: 1.6-1.7). Compact only: deep grey nuclei are ovoids, while a confluent periventricular lesion load
#: on real 3-D FLAIR, mirrored along both ventricles, sprawls (sphericity 0.02-0.09, kept for its
#: thickness)
MR_MIRROR_K = 1.5
#: ... and at least this large (mm^3; a ball about 10 mm across; a found deep grey nucleus is 1-6 mL):
#: periventricular lesions beside both ventricles often lie in each other's mirror position
MR_MIRROR_MIN_MM3 = 500.0
#: ... and not when the mirror image overlaps the part itself by more than this share (a part on the
#: midline is its own mirror)
MR_MIRROR_MAX_SELF = 0.2
#: a part whose 90th percentile lies less than this many WM SDs above white matter is barely brighter
#: than the lesion seeds anywhere: when it is also thin (no voxel `MR_FAINT_MIN_DEPTH_MM` inside it) it
#: is grey matter's noise tail (cortex partial-volumed with white matter, the rim of a deep nucleus),
#: not a plaque. On tuning MR seeds 0-59 the false parts' 90th percentile had a median of 4.0 SDs and
#: their depth 1.6 mm (403 parts, 48 mL), the true parts' 7.3 SDs and 2.7 mm. Sphericity does not tell
#: them apart: a faint lesion's edge is ragged in textured white matter, and confluent periventricular
#: bands sprawl, yet both are thick.
MR_FAINT_PEAK_K = 4.5
MR_FAINT_MIN_DEPTH_MM = 2.5
#: ... and named in the doubt from this total (mm^3): less is a few specks
MR_FAINT_REPORT_MM3 = 100.0
#: On slices thicker than `MR_THICK_SLICE_MM` such a faint part (90th percentile below `MR_FAINT_PEAK_K`) is
#: left out, thin or not, when most of its voxels lie within `MR_SULCAL_DEPTH_MM` of the brain region's edge,
#: where the sulci fold the cortex: a sulcus thinner than the slice is averaged with the cortex lining
#: it and shows no dark CSF, so neither the cortex band nor the sulcal test sees that cortex, and the slice
#: smears it into a band as deep as a plaque (tuning seeds 0-100 on 4-6 mm slices: 17.5 mL of such cortex
#: in 31 scans, the largest share of their over-count, against 1.4 mL of faint lesion; deeper faint parts are
#: mostly lesions, a confluent periventricular load among them) ...
#: ... unless it holds a voxel this deep (mm) inside it: a sulcus's two banks of cortex (`MR_CORTEX_MM` each)
#: smeared by the slice make a band whose voxels lie about one cortex deep at most (such cortex on tuning
#: seeds 0-100: at most 3.7 mm, rims included), a faint confluent load is thicker (seed 44: a 5.9 mL part of a
#: faint load, 5.1 mm deep, its median voxel 20 mm inside the brain)
MR_FOLD_MAX_DEPTH_MM = 4.0
#: `_flatten_bias`: the white-matter level is followed across the brain on a grid of this spacing (mm):
#: a scanner's receive-coil bias varies over 100-250 mm, lesions and sulci over a few mm (a confluent
#: periventricular load, brighter than the band below, is left out of the estimate)
MR_BIAS_GRID_MM = 4.0
#: ... from voxels within this many white-matter SDs of white matter (first pass; the bias moves white
#: matter by up to 2-3 SDs), then, on the image flattened so far, within this band below and above it
#: (about white matter's peak: grey matter, lesions and CSF left out)
MR_BIAS_WIDE_K = 3.0
MR_BIAS_LOW_K = 1.0
MR_BIAS_HIGH_K = 1.0
#: ... at least this deep (mm) in the brain region: nearer its edge cortex and sulcal CSF, averaged
#: with white matter on thick slices, fall in the band and would pull the level down there (lifting
#: the cortex to lesion level); the polynomial carries the field out to the edge
MR_BIAS_DEPTH_MM = 10.0
#: ... in this many passes (each narrows the band to the white matter left by the last)
MR_BIAS_PASSES = 4
#: ... as a polynomial of this degree in x, y, z (mm over `MR_BIAS_SCALE_MM`, which keeps its terms near
#: one), from at least this many coarse voxels (fewer: the image is left as it is)
MR_BIAS_DEGREE = 2
MR_BIAS_SCALE_MM = 50.0
MR_BIAS_MIN_VOXELS = 200
#: ... and divided out only where it brightens white matter by more than this many of its SDs
MR_BIAS_TOLERANCE_K = 1.0
#: ... and said in the doubt when it darkened some brain voxel by this share or more (less is within noise)
MR_BIAS_REPORT_SHARE = 0.03
#: thickness (mm) of scalp and skull removed from the head to approximate the brain
HEAD_MARGIN_MM = 10.0
#: ... and of the partial-volume edge removed from a skull-stripped brain, or from the brain
#: `_parenchyma` separates from its skull
STRIPPED_MARGIN_MM = 2.0
#: `_parenchyma`: the opening (mm) that parts brain from scalp through the skull, and the smallest
#: share of the head a brain takes
SKULL_OPENING_MM = 4.0
MIN_PARENCHYMA_FRACTION = 0.2
#: a background (outside the head) holding one exact value in at least this fraction is masked
STRIPPED_BACKGROUND_FRACTION = 0.9


def compact_components(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    forbidden: np.ndarray | None = None,
    max_diameter_mm: float = NODULE_MAX_DIAMETER_MM,
    wall: np.ndarray | None = None,
    mediastinal: np.ndarray | None = None,
) -> tuple[np.ndarray, list[int]]:
    """26-connected components of ``mask`` that look like blobs: ``(labels, kept label ids)``.

    Sizes are in mm (``spacing`` z, y, x). On a single-slice mask the same rules apply to areas
    (circle instead of sphere). Components touching ``forbidden`` are dropped; components touching
    ``wall`` are dropped when more than `MAX_WALL_CONTACT` of their voxels lie on it (a nodule
    sitting on the pleura touches it with its base only; a band of pleural tissue lies along it);
    components touching ``mediastinal`` are dropped unless they touch it as little and are balls
    (`MEDIASTINAL_MIN_SPHERICITY`).
    """
    labels, n = ndimage.label(mask, structure=CONN26)
    if n == 0:
        return labels, []
    planar = mask.shape[0] == 1
    sizes = component_sizes(labels, n)
    touching = np.zeros(n + 1, dtype=bool)
    if forbidden is not None:
        touching[np.unique(labels[forbidden])] = True
    if wall is not None:
        contact = np.bincount(labels[wall], minlength=n + 1)
        touching |= contact > MAX_WALL_CONTACT * sizes
    min_sphericity = np.full(n + 1, MIN_SPHERICITY)
    if mediastinal is not None:
        contact = np.bincount(labels[mediastinal], minlength=n + 1)
        touching |= contact > MAX_WALL_CONTACT * sizes
        min_sphericity[contact > 0] = MEDIASTINAL_MIN_SPHERICITY
    unit = spacing[1] * spacing[2] if planar else float(np.prod(spacing))
    if planar:
        min_size, max_size = NODULE_MIN_MM3 ** (2 / 3), math.pi / 4 * max_diameter_mm**2
    else:
        min_size, max_size = NODULE_MIN_MM3, math.pi / 6 * max_diameter_mm**3
    near = _neighbourhood(spacing, planar)
    reach = [r // 2 for r in near.shape]
    kept = []
    for label, obj in enumerate(ndimage.find_objects(labels), start=1):
        size = sizes[label] * unit
        if obj is None or touching[label] or not (min_size <= size <= max_size):
            continue
        extent = max(_extent_mm(sl.stop - sl.start, sp, axis == 0) for axis, (sl, sp) in enumerate(zip(obj, spacing))
                     if axis or not planar)
        reference = math.pi / 4 * extent**2 if planar else math.pi / 6 * extent**3
        if size / reference < min_sphericity[label]:
            continue
        window = grown_box(obj, reach, labels.shape)
        local = labels[window]
        around = ndimage.binary_dilation(local == label, near)
        # partial-volume specks of the pleura next to a nodule on it do not make it part of a structure
        specks = sizes * unit < min(NODULE_MIN_MM3, ISOLATION_SPECK_FRACTION * size)
        neighbours = local[around & (local != label) & (local > 0)]
        if specks[neighbours].all():
            kept.append(label)
    return labels, kept


def _extent_mm(count: int, spacing_mm: float, across_slices: bool) -> float:
    """Extent (mm) of ``count`` voxels along an axis.

    Across thick slices a blob's extent is the distance between its first and last slice centres
    (at least one slice): partial volume lights up a slice that the blob only grazes, so counting
    whole slices would make a 10 mm nodule on three 5 mm slices 15 mm tall and fail the shape test.
    """
    if across_slices and spacing_mm > THIN_SLICE_MM:
        return max(count - 1, 1) * spacing_mm
    return count * spacing_mm


def _neighbourhood(spacing: tuple[float, float, float], planar: bool) -> np.ndarray:
    """`ISOLATION_MM` in-plane; in the adjacent slices wider by half a slice thickness, since a
    vessel crossing thick slices at 45 degrees moves by the thickness from one slice to the next."""
    inplane = ellipsoid(ISOLATION_MM, spacing, planar=True)
    if planar:
        return inplane
    depth = max(1, int(ISOLATION_MM / spacing[0] + 1e-6))
    wide = ellipsoid(ISOLATION_MM + 0.5 * spacing[0], spacing, planar=True)
    out = np.repeat(wide, 2 * depth + 1, axis=0)
    pad = [(s - i) // 2 for s, i in zip(wide.shape[1:], inplane.shape[1:])]
    out[depth] = False
    out[depth, pad[0] : pad[0] + inplane.shape[1], pad[1] : pad[1] + inplane.shape[2]] = inplane[0]
    return out


@dataclass
class NoduleSearch:
    """A lung nodule search: the union of what it found, and why it may be wrong (``doubts``,
    short sentences for the evidence's quality: what it found or rejected that it cannot vouch for;
    ``masses``: masses larger than it counts, named first since they make any "no" wrong)."""

    mask: np.ndarray
    doubts: list[str] = field(default_factory=list)
    masses: list[str] = field(default_factory=list)


def lung_nodules(
    data: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float], pockets: np.ndarray | None = None,
    max_diameter_mm: float = NODULE_MAX_DIAMETER_MM,
) -> NoduleSearch:
    """The nodule (or, with ``max_diameter_mm`` up to `MASS_MAX_DIAMETER_MM`, mass) candidates
    inside the (hole-filled) ``lungs`` mask; sizes are measured against ``max_diameter_mm`` with
    `SIZE_TOLERANCE` to spare.

    ``pockets``: the concavities of the lung surface (a closing of each lung minus the lung),
    where nodules sitting on the pleura lie. Candidates may touch the lung's outer surface (the
    pleura away from the mediastinum) with a small share of their voxels, and the medial surface,
    where vessels leave the lung at the hilum, as little when they are balls (the search then
    doubts them). The scan's first and last slice stay forbidden: a vessel the scan range cuts ends there in a round stump, which cannot be told from a
    nodule; a compact candidate there is left out and the search says so.
    """
    out = np.zeros(data.shape, dtype=bool)
    if not lungs.any():
        return NoduleSearch(out)
    search = lungs if pockets is None else lungs | pockets
    bbox = bounding_box(search)
    lung = search[bbox]
    surface = lung & ~ndimage.binary_erosion(lung, CONN6, border_value=1)
    medial = _medial(surface)
    dense = (data[bbox] >= HU_AIR) & lung
    planar = data.shape[0] == 1
    max_diameter_mm *= 1.0 + SIZE_TOLERANCE
    cut = np.zeros(lung.shape, dtype=bool)
    if not planar:
        cut[0], cut[-1] = bbox[0].start == 0, bbox[0].stop == data.shape[0]
    forbidden, wall = surface & medial, surface & ~medial
    labels, kept = compact_components(dense, spacing, max_diameter_mm=max_diameter_mm, wall=wall, mediastinal=forbidden)
    doubts = []
    passed = _plausible(labels, kept, spacing, planar)
    if spacing[0] > THICK_SLICE_MM:
        dropped, halo = _drop_streak_pieces(labels, passed, data[bbox], lung, dense, spacing, max_diameter_mm)
        on_pleura = _pleural_streak_pieces(labels, dropped, halo, wall, spacing, max_diameter_mm)
        if on_pleura:
            passed[on_pleura] = True
            doubts.append("a nodule found on the pleura on thick slices is faint where it meets the chest wall's "
                          "partial volume: it may be that partial volume (or pleural thickening), not a nodule")
    on_mediastinum = np.unique(labels[forbidden & dense])
    if passed[on_mediastinum[on_mediastinum > 0]].any():
        doubts.append("a nodule found sits on the lung's mediastinal surface, where vessels leave the lung: it may "
                      "be a vessel's stump")
    if not planar:
        passed, labels = _pleural_completions(labels, passed, wall, data[bbox], spacing, max_diameter_mm)
    thick = spacing[0] > THICK_SLICE_MM
    caps = [] if planar or thick else _pleural_caps(labels, passed, data[bbox], lung, wall, spacing, max_diameter_mm)
    if caps:
        passed[caps] = True
        doubts.append("a nodule found lies on the pleura, which holds it as a dome: it may be a focal pleural "
                      "thickening or plaque")
    # on thick slices the wall curving across a slice makes domes of its partial volume too: stricter tests
    thick_caps = _thick_pleural_caps(labels, passed, data[bbox], lung, wall, spacing, max_diameter_mm) if thick else []
    if thick_caps:
        passed[thick_caps] = True
        doubts.append(f"a nodule found lies on the pleura as a dome on {spacing[0]:g} mm slices: it may be the partial "
                      f"volume of the chest wall curving across a thick slice, or a focal pleural thickening")
    domes = _one_slice_domes(labels, passed, data[bbox], lung, wall, spacing, max_diameter_mm) if thick else []
    if domes:
        passed[domes] = True
        doubts.append(f"a nodule found on the pleura shows on one {spacing[0]:g} mm slice only: it may be the partial "
                      f"volume of the chest wall curving across the slice, or a focal pleural thickening")
    along = 0 if thick else len(_along_the_pleura(labels, passed, wall, spacing, planar, max_diameter_mm))
    if along:
        doubts.append(f"{along} compact dense structure(s) lying along the pleura not counted as nodules (pleural "
                      f"thickening, or a nodule sitting on the pleura): one may have been missed")
    stumps = np.unique(labels[cut & dense])
    grazed = _grazed(labels, stumps[passed[stumps]], spacing)
    stumps = np.setdiff1d(stumps, grazed)
    cut_doubt = ("a compact dense structure on the scan's first or last slice was not counted: the scan range cuts "
                 "it, so a nodule there cannot be told from a cut vessel")
    if passed[stumps].any():
        doubts.append(cut_doubt)
    passed[stumps] = False
    found = passed[labels]
    # nodules attached to vessels: what remains of the rejected dense structures once everything
    # thinner than a ball of each radius is opened away
    rejected = (labels > 0) & ~found
    # on thicker slices the partial-volume haze of vessels crossing them obliquely leaves balls of
    # every size after an opening (false positives at junctions): attached nodules are not searched
    if not planar and rejected.any():
        detached, borderline, _ = _detached_nodules(rejected, data[bbox], spacing, forbidden, wall, max_diameter_mm)
        soft = _unenhanced(rejected, data[bbox])
        if soft is not None:
            # contrast-filled vessels part from the soft-tissue nodules on them by their HU alone
            split, _, narrow = _detached_nodules(soft, data[bbox], spacing, forbidden, wall, max_diameter_mm,
                                                 few_cores=True)
            # what the soft tissue alone gives is a nodule's when solid: not the fat and partial volume round the hilum
            pieces, n = ndimage.label(split, structure=CONN26)
            if n:
                levels = ndimage.median(data[bbox][split], pieces[split], np.arange(1, n + 1))
                split = np.isin(pieces, 1 + np.flatnonzero(np.asarray(levels) >= ENHANCED_PIECE_MIN_HU))
            split &= ~ndimage.binary_dilation(detached, CONN26)
            detached |= split
            if (split & narrow).any():
                doubts.append(f"a nodule found beside contrast-filled vessels is narrower than two {spacing[0]:g} mm "
                              f"slices: it was told from the vessels by its soft-tissue HU alone and may be a vessel's "
                              f"partial volume")
        if spacing[0] > THICK_SLICE_MM:
            beside = _thick_beside_nodules(rejected, data[bbox], spacing, forbidden, wall, max_diameter_mm)
            beside &= ~ndimage.binary_dilation(detached, CONN26)
            detached |= beside
            if beside.any():
                doubts.append(f"a nodule found beside a vessel on {spacing[0]:g} mm slices is barely wider than the "
                              f"vessel: it was told from it by lying off the vessel's axis and may be a bend or a "
                              f"branching of the vessel")
        # a piece cut from a vessel on the first or last slice is as ambiguous as an isolated one there
        pieces, _ = ndimage.label(detached, structure=CONN26)
        at_edge = np.unique(pieces[cut & detached])
        if at_edge.size:
            whole = _grazed(pieces, at_edge, spacing)
            grazed += whole
            detached &= ~np.isin(pieces, np.setdiff1d(at_edge, whole))
            if cut_doubt not in doubts:
                doubts.append(cut_doubt)
        found |= detached
        if detached.any():
            doubts.append("a nodule found touches a vessel and was cut from it by an opening: it may be a vessel "
                          "junction, and its size is less certain")
        if borderline:
            doubts.append(f"{borderline} round piece(s) on a vessel nearly as wide as itself not counted as a "
                          f"nodule: one may have been missed")
    if grazed:
        doubts.append("a nodule found touches the scan's first or last slice: part of it may lie outside the scan "
                      "range, so its size is less certain")
    rings = _rings(found)
    if rings.any():
        found &= ~rings
        doubts.append("a ring of dense tissue around air (an airway's wall, or a cavitating nodule) was not counted "
                      "as a nodule")
    out[bbox] = found
    return NoduleSearch(out, doubts)


def _rings(found: np.ndarray) -> np.ndarray:
    """The components of ``found`` that are rings (`RING_MIN_HOLE_SHARE`): an airway's wall around
    its lumen is as dense and, where the scan range or a branching cuts it short, as compact as a
    nodule; a solid nodule encloses nothing. Limit: a cavitating nodule is left out too."""
    pieces, _ = ndimage.label(found, structure=CONN26)
    out = np.zeros(found.shape, dtype=bool)
    for label, obj in enumerate(ndimage.find_objects(pieces), start=1):
        part = pieces[obj] == label
        filled = np.count_nonzero(fill_holes_slicewise(part), axis=(1, 2))
        holes = filled - np.count_nonzero(part, axis=(1, 2))
        if (holes >= RING_MIN_HOLE_SHARE * np.maximum(filled, 1)).any():
            out[obj] |= part
    return out


def _drop_streak_pieces(
    labels: np.ndarray, passed: np.ndarray, data: np.ndarray, lung: np.ndarray, dense: np.ndarray,
    spacing: tuple[float, float, float], max_diameter_mm: float,
) -> tuple[list[int], np.ndarray | None]:
    """Clear in ``passed`` the candidates on one or two thick slices that are pieces of a streak:
    grown over the lung's voxels at least `HALO_FRACTION` of the way from the lung's level (median
    of its aerated voxels) to `HU_AIR` (the halo), they are no compact blob (`_compact_alone`) and run
    on beyond the slices next to them. Returns the cleared label ids and the halo (None: no candidate
    was tested)."""
    objects = ndimage.find_objects(labels)
    few = [label for label in np.flatnonzero(passed)
           if objects[label - 1][0].stop - objects[label - 1][0].start <= 2]
    if not few:
        return [], None
    aerated = data[lung & ~dense]
    level = float(np.median(aerated[:: max(1, aerated.size // 200_000)]))
    halo = (data >= level + HALO_FRACTION * (HU_AIR - level)) & lung
    dropped = [int(label) for label in few
               if _streak_piece(labels, label, objects[label - 1], halo, spacing, max_diameter_mm)]
    passed[dropped] = False
    return dropped, halo


def _streak_piece(
    labels: np.ndarray, label: int, obj: tuple[slice, ...], halo: np.ndarray, spacing: tuple[float, float, float],
    max_diameter_mm: float,
) -> bool:
    """Whether the candidate ``label`` (box ``obj``) grown over ``halo`` is a piece of a streak
    (`_drop_streak_pieces`)."""
    reach = [int(np.ceil(max_diameter_mm / sp)) for sp in spacing]
    window = grown_box(obj, reach, labels.shape)
    grown, _ = ndimage.label(halo[window], structure=CONN26)
    ids = np.unique(grown[labels[window] == label])
    part = np.isin(grown, ids[ids > 0])
    box = bounding_box(part)
    # a streak runs on through the slices beyond the candidate's neighbours; a nodule's faint rim
    # is its caps beside it (with the haze of the lung's apex or base there, a wide sheet)
    beyond = box[0].stop - box[0].start > obj[0].stop - obj[0].start + 2
    # the window reaches a largest nodule's diameter beyond the candidate: a streak it cuts is longer than wide
    return beyond and not _compact_alone(part[box], spacing, False, max_diameter_mm)


def _pleural_streak_pieces(
    labels: np.ndarray, dropped: list[int], halo: np.ndarray | None, wall: np.ndarray,
    spacing: tuple[float, float, float], max_diameter_mm: float,
) -> list[int]:
    """The ``dropped`` streak pieces (`_drop_streak_pieces`) that touch the costal pleura (``wall``)
    and are no streak once the pleura's partial-volume rim (the lung within `PLEURA_RIM_MM` in-plane
    of ``wall``) is left out of the ``halo``: on slices thicker than `THICK_SLICE_MM` the chest wall
    curving across a slice lays a faint rim along the whole pleura, which joins a nodule sitting on
    it (stress tuning seeds 1, 11, 38, 42 forced to 4-5 mm slices: 7-10 mm juxtapleural nodules) into
    a sheet running on for many slices. The candidate's own voxels stay in the halo; it must be at
    least `PLEURA_STREAK_MIN_MM` across."""
    if not dropped:  # the halo is None only when nothing was dropped
        return []
    sizes = component_sizes(labels, labels.max()) * float(np.prod(spacing))
    least_mm3 = math.pi / 6.0 * PLEURA_STREAK_MIN_MM**3
    objects = ndimage.find_objects(labels)
    touching = [label for label in dropped
                if sizes[label] >= least_mm3 and wall[objects[label - 1]][labels[objects[label - 1]] == label].any()]
    if not touching:
        return []
    rim = ndimage.binary_dilation(wall, ellipsoid(PLEURA_RIM_MM, spacing, planar=True))
    trimmed = halo & ~rim
    return [label for label in touching
            if not _streak_piece(labels, label, objects[label - 1], trimmed | (labels == label), spacing,
                                 max_diameter_mm)]


def _grazed(labels: np.ndarray, candidates: np.ndarray, spacing: tuple[float, float, float]) -> list[int]:
    """The ``candidates`` (labels in ``labels`` touching the scan's first or last slice; 0 is
    skipped) that the scan range only grazes (`_whole_enough`); one spanning every slice of
    ``labels`` (the lungs' box) runs through the scan or the lungs: no nodule."""
    objects = ndimage.find_objects(labels)
    return [label for label in candidates[candidates > 0]
            if objects[label - 1][0].stop - objects[label - 1][0].start < labels.shape[0]
            and _whole_enough(labels[objects[label - 1]] == label, spacing)]


def _whole_enough(part: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """Whether a candidate touching the scan's first or last slice (``part``: its mask) is a nodule
    the scan range only grazes: its widest section lies strictly between its first and last slice
    and is at least `CUT_MIN_SECTION_MM` across (equivalent diameter), and it reaches from there no
    farther than a ball of that section would (its radius, with `SIZE_TOLERANCE` and a slice to
    spare). A vessel the range cuts is about as wide on the edge slice as inside; a nodule cut
    through its middle is widest there and stays left out; a junction of vessels or an airway the
    range cuts reaches on well beyond its widest section's radius."""
    areas = np.count_nonzero(part, axis=(1, 2))
    areas = areas[np.flatnonzero(areas)[0]:np.flatnonzero(areas)[-1] + 1]
    widest = int(np.argmax(areas))
    section_mm = 2.0 * math.sqrt(areas[widest] * spacing[1] * spacing[2] / math.pi)
    reach_mm = max(widest, len(areas) - 1 - widest) * spacing[0]
    return (0 < widest < len(areas) - 1 and section_mm >= CUT_MIN_SECTION_MM
            and reach_mm <= (1.0 + SIZE_TOLERANCE) * section_mm / 2.0 + spacing[0])


def _pleural_completions(
    labels: np.ndarray, passed: np.ndarray, wall: np.ndarray, data: np.ndarray, spacing: tuple[float, float, float],
    max_diameter_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Nodules on the costal pleura that the lung search holds only in part: ``(passed, labels)``
    with each completed one relabelled in ``labels`` and passed.

    The lung mask and its pockets may stop inside a nodule sitting on the chest wall: the part in
    the search is a crescent, bulging into the lung and hollow towards the wall, that fails the
    shape tests. Its in-plane convex hull, slice by slice, covers the rest of the nodule; where the
    dense voxels of that hull form a blob passing the tests of an isolated nodule
    (`compact_components`, `plausible_nodule`), it is one. A band of pleural tissue gains nothing
    (its hull towards the lung holds air) and stays too thin; the hull must add `COMPLETED_MIN_GAIN`
    and the blob be soft tissue (`COMPLETED_MIN_HU`). Only crescents of at least a sphere
    of `COMPLETED_MIN_MM` are completed: the partial-volume rims of the diaphragm's domes and of the
    heart, where they bulge into the lung, make small crescents whose hulls are blobs too.
    """
    n = len(passed) - 1
    contact = np.bincount(labels[wall], minlength=n + 1)
    sizes = component_sizes(labels, n) * float(np.prod(spacing))
    for label, obj in enumerate(ndimage.find_objects(labels), start=1):
        if obj is None or passed[label] or not contact[label] or sizes[label] < math.pi / 6 * COMPLETED_MIN_MM**3:
            continue
        if max((sl.stop - sl.start) * sp for sl, sp in zip(obj, spacing)) > max_diameter_mm:
            continue
        from skimage.morphology import convex_hull_image  # here: importing it costs a second

        part = labels[obj] == label
        hull = np.zeros(part.shape, dtype=bool)
        for k, section in enumerate(part):
            if np.count_nonzero(section) >= 3:
                hull[k] = convex_hull_image(section)
        whole = (hull & (data[obj] >= HU_AIR)) | part
        # a vessel ending on the pleura gains a few voxels of the wall; a partial-volume rim is no soft tissue
        if whole.sum() < (1.0 + COMPLETED_MIN_GAIN) * part.sum() or np.median(data[obj][whole]) < COMPLETED_MIN_HU:
            continue
        if _compact_alone(whole, spacing, False, max_diameter_mm) and plausible_nodule(whole, spacing):
            labels[obj][whole & (labels[obj] == 0)] = label
            passed[label] = True
    return passed, labels


def _along_the_pleura(
    labels: np.ndarray, passed: np.ndarray, wall: np.ndarray, spacing: tuple[float, float, float], planar: bool,
    max_diameter_mm: float,
) -> int:
    """How many components of ``labels`` not ``passed`` fail only for lying along the costal pleura
    (more than `MAX_WALL_CONTACT` of their voxels on ``wall``): a nodule on the pleura that the lung
    mask holds as a thin cap, or pleural thickening; the search cannot tell which."""
    n = len(passed) - 1
    contact = np.bincount(labels[wall], minlength=n + 1)
    heavy = np.flatnonzero((contact > MAX_WALL_CONTACT * component_sizes(labels, n)) & ~passed)
    objects = ndimage.find_objects(labels)
    out = []
    for label in heavy[heavy > 0]:
        part = labels[objects[label - 1]] == label
        # a speck of the pleura's partial volume is no nodule: the widest section must be a nodule's,
        # and on a coarse grid a few pixels across (one 4 mm pixel is no 4 mm nodule)
        section_mm = 2.0 * math.sqrt(np.count_nonzero(part, axis=(1, 2)).max() * spacing[1] * spacing[2] / math.pi)
        least = max(NODULE_MIN_DIAMETER_MM, PLEURA_DOUBT_MIN_PIXELS * max(spacing[1:]))
        if (section_mm >= least and _compact_alone(part, spacing, planar, max_diameter_mm)
                and plausible_nodule(part, spacing, planar)):
            out.append(int(label))
    return out


def _pleural_caps(
    labels: np.ndarray, passed: np.ndarray, data: np.ndarray, lung: np.ndarray, wall: np.ndarray,
    spacing: tuple[float, float, float], max_diameter_mm: float,
) -> list[int]:
    """Label ids of the components of ``labels`` not ``passed`` that lie along the costal pleura (more
    than `MAX_WALL_CONTACT` of their voxels on ``wall``) as domes: the cap of a nodule sitting on the
    chest wall, which the lung shows only in part. A cap spans at least two slices, is a nodule's size
    (`NODULE_MIN_DIAMETER_MM` to ``max_diameter_mm`` across its footprint on the pleura), and reaches at
    least `CAP_MIN_HEIGHT_MM` (and `PLEURA_DOUBT_MIN_PIXELS` in-plane pixels) from the lung's edge into
    the lung and `CAP_MIN_DOME` of its footprint's radius (a hemisphere reaches its radius), no farther
    than it is wide, fills `CAP_MIN_FILL` of the dome of its footprint and height and is soft tissue
    (`COMPLETED_MIN_HU` to `DETACHED_MAX_HU`). The partial-volume rim of the wall and pleural thickening
    lie flat along it; a ridge of the rim with a peak on it fills little of its dome; a vessel reaching
    the pleura is taller than wide. A cap is flat on the pleura and as wide as its footprint: the shape
    tests of an isolated nodule (sphericity, section compactness) do not apply."""
    n = len(passed) - 1
    sizes = component_sizes(labels, n)
    contact = np.bincount(labels[wall], minlength=n + 1)
    heavy = np.flatnonzero((contact > MAX_WALL_CONTACT * sizes) & ~passed)
    voxel_mm3 = float(np.prod(spacing))
    # on a coarse grid a cap is a few pixels tall too: one 3 mm pixel of the wall's rim is no cap
    lowest = max(CAP_MIN_HEIGHT_MM, PLEURA_DOUBT_MIN_PIXELS * max(spacing[1:]))
    objects = ndimage.find_objects(labels)
    out = []
    for label in heavy[heavy > 0]:
        obj = objects[label - 1]
        diameter_mm = (6.0 * sizes[label] * voxel_mm3 / math.pi) ** (1 / 3)
        if obj[0].stop - obj[0].start < 2 or diameter_mm < NODULE_MIN_DIAMETER_MM:
            continue
        window = grown_box(obj, 2, labels.shape)
        part = labels[window] == label
        footprint = bounding_box(part & wall[window])
        width = max(_extent_mm(sl.stop - sl.start, sp, axis == 0)
                    for axis, (sl, sp) in enumerate(zip(footprint, spacing)))
        # a cap fills CAP_MIN_FILL of the dome of its footprint and height, (2/3) pi r^2 h: a rim too thin to
        # fill the lowest dome is left before its height is measured
        volume_mm3, fill_per_mm = sizes[label] * voxel_mm3, CAP_MIN_FILL * 2.0 / 3.0 * math.pi * (width / 2.0) ** 2
        least = max(lowest, CAP_MIN_DOME * width / 2.0)
        if not NODULE_MIN_DIAMETER_MM <= width <= max_diameter_mm or volume_mm3 < fill_per_mm * least:
            continue
        height = float(ndimage.distance_transform_edt(lung[window], sampling=spacing)[part].max())
        level = float(np.median(data[window][part]))
        if (least <= height <= width and volume_mm3 >= fill_per_mm * height
                and COMPLETED_MIN_HU <= level <= DETACHED_MAX_HU):
            out.append(int(label))
    return out


def _thick_pleural_caps(
    labels: np.ndarray, passed: np.ndarray, data: np.ndarray, lung: np.ndarray, wall: np.ndarray,
    spacing: tuple[float, float, float], max_diameter_mm: float,
) -> list[int]:
    """The caps (`_pleural_caps`) of nodules on the costal pleura on slices thicker than `THICK_SLICE_MM`,
    where the chest wall's partial volume makes domes too: a cap must hold no bone (its `CAP_BONE_PERCENTILE`
    percentile under `CAP_MAX_HU`: a rib curving across the slice) and bulge into the lung (at most
    `THICK_CAP_MAX_CONTACT` of its voxels on ``wall``: the lung's apex or a dome ending across a slice
    leaves a sheet on the pleura) as a bump: aerated lung fills `THICK_CAP_MIN_LUNG_BESIDE` of its
    in-plane outline on the slice beside it on each side. Stress tuning seeds 1, 7, 77, 104, 514, 522, 548 on
    4-5 mm slices: 9-17 mm juxtapleural nodules that the lung shows as a dome on two to four slices."""
    caps = _pleural_caps(labels, passed, data, lung, wall, spacing, max_diameter_mm)
    objects = ndimage.find_objects(labels)
    out = []
    for label in caps:
        obj = objects[label - 1]
        part = labels[obj] == label
        contact = np.count_nonzero(part & wall[obj]) / np.count_nonzero(part)
        outline = part.any(axis=0)
        beside = [k for k in (obj[0].start - 1, obj[0].stop) if 0 <= k < labels.shape[0]]
        aerated = [np.count_nonzero(outline & lung[(k,) + obj[1:]] & (data[(k,) + obj[1:]] < HU_AIR))
                   / np.count_nonzero(outline) for k in beside]
        if (contact <= THICK_CAP_MAX_CONTACT and len(beside) == 2 and min(aerated) >= THICK_CAP_MIN_LUNG_BESIDE
                and np.percentile(data[obj][part], CAP_BONE_PERCENTILE) < CAP_MAX_HU):
            out.append(label)
    return out


def _one_slice_domes(
    labels: np.ndarray, passed: np.ndarray, data: np.ndarray, lung: np.ndarray, wall: np.ndarray,
    spacing: tuple[float, float, float], max_diameter_mm: float,
) -> list[int]:
    """Label ids of the components of ``labels`` not ``passed`` that are nodules on the costal pleura
    lighting up one slice thicker than `THICK_SLICE_MM`: a 6-8 mm nodule centred in a 5 mm slice. Where
    the chest wall curves across the slice, the slice beside it is wall over the nodule, so most of its
    voxels touch the pleura and it fails `MAX_WALL_CONTACT` (and, one slice tall, `_pleural_caps`). It
    passes the tests of an isolated nodule (`_compact_alone`, `plausible_nodule`: as wide as a slice is
    thick), bulges into the lung in-plane (at most `ONE_SLICE_MAX_EDGE_SHARE` of its section on the lung's
    in-plane edge, and `CAP_MIN_HEIGHT_MM` deep), is round (`ONE_SLICE_MIN_COMPACTNESS`), soft tissue
    filling the slice at its core and without bone (median `COMPLETED_MIN_HU` to `DETACHED_MAX_HU`,
    `CAP_BONE_PERCENTILE` percentile from `ONE_SLICE_MIN_CORE_HU` to under `CAP_MAX_HU`: a rib's partial
    volume) and has the lung running on past it on one side (`ONE_SLICE_MIN_LUNG_BESIDE`: where the apex
    or base ends across the slice, the wall lies on both sides).
    Stress tuning seed 30 on 5 mm slices: a 7 mm juxtapleural nodule on one slice."""
    n = len(passed) - 1
    contact = np.bincount(labels[wall], minlength=n + 1)
    objects = ndimage.find_objects(labels)
    out = []
    for label in np.flatnonzero(contact[1:]) + 1:
        obj = objects[label - 1]
        if passed[label] or obj[0].stop - obj[0].start != 1:
            continue
        window = grown_box(obj, [0, 3, 3], labels.shape)
        part = labels[window] == label
        if not (_compact_alone(part, spacing, False, max_diameter_mm) and plausible_nodule(part, spacing)):
            continue
        section, aerated = part[0], lung[window][0]
        edge = aerated & ~ndimage.binary_erosion(aerated, border_value=1)
        height = float(ndimage.distance_transform_edt(aerated, sampling=spacing[1:])[section].max())
        values = data[window][part]
        if (np.count_nonzero(section & edge) > ONE_SLICE_MAX_EDGE_SHARE * np.count_nonzero(section)
                or height < CAP_MIN_HEIGHT_MM or _section_compactness(section, spacing) < ONE_SLICE_MIN_COMPACTNESS
                or not COMPLETED_MIN_HU <= np.median(values) <= DETACHED_MAX_HU
                or not ONE_SLICE_MIN_CORE_HU <= np.percentile(values, CAP_BONE_PERCENTILE) < CAP_MAX_HU):
            continue
        beside = [k for k in (obj[0].start - 1, obj[0].stop) if 0 <= k < labels.shape[0]]
        lung_beside = [np.count_nonzero(section & lung[(k,) + window[1:]] & (data[(k,) + window[1:]] < HU_AIR))
                       for k in beside]
        if max(lung_beside, default=0) >= ONE_SLICE_MIN_LUNG_BESIDE * np.count_nonzero(section):
            out.append(int(label))
    return out


def _compact_alone(part: np.ndarray, spacing: tuple[float, float, float], planar: bool, max_diameter_mm: float) -> bool:
    """Whether one component cropped to its box (``part``) passes `compact_components` as the only
    structure there; a crop one slice thick of a 3-D image is no single-slice image."""
    if not planar:
        part = np.pad(part, ((1, 1), (0, 0), (0, 0)))
    return bool(compact_components(part, spacing, max_diameter_mm=max_diameter_mm)[1])


def _plausible(labels: np.ndarray, kept: list[int], spacing: tuple[float, float, float], planar: bool) -> np.ndarray:
    """Which label ids of ``labels`` (a boolean table; 0, the background, is False) are ``kept``
    components that pass `plausible_nodule`."""
    objects = ndimage.find_objects(labels)
    kept = [label for label in kept if plausible_nodule(labels[objects[label - 1]] == label, spacing, planar)]
    table = np.zeros(labels.max() + 1, dtype=bool)
    table[kept] = True
    return table


def _detached_nodules(
    mask: np.ndarray, data: np.ndarray, spacing: tuple[float, float, float], forbidden: np.ndarray,
    wall: np.ndarray, max_diameter_mm: float, few_cores: bool = False,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Nodules attached to vessels, from the dense lung structures ``mask`` that failed as a whole,
    how many borderline pieces (`_detached_verdict`) were left out, and the narrow ones found (on
    thick slices with ``few_cores``: no wider opening found them).

    ``mask`` is opened by balls of each of `DETACH_RADII_MM` (through distance transforms in mm, so
    thick slices count as the millimetres they are): a nodule on a vessel survives as a ball once
    the radius exceeds the vessel's, the vessel does not. Where a structure at least as thick as the
    radius survives too and the opening joins it to the ball (a nodule beside a thick hilar vessel
    at the largest radius), the piece is the ball's own core opened, and that structure its one
    branch (`BESIDE_MAX_ARMS`; so it must be wider than it as below; not on slices thicker than
    `THICK_SLICE_MM`). A surviving piece is a nodule when it
    passes the tests of an isolated one (`compact_components`, `plausible_nodule`) and what the
    opening removed around it falls into at most
    `DETACH_MAX_ARMS` pieces (the vessel it sits on, perhaps cut in two; a junction or the hilum,
    where vessels converge, has more), unless it is `MANY_ARMS_MIN_WIDENING` times as wide as all
    of them (a ball where vessels meet is not). Its median must stay below `DETACHED_MAX_HU`: brighter is a
    contrast-filled vessel (so a calcified nodule on a vessel is missed). A core's own opening failing
    only for branches as wide as itself is a nodule when the one vessel it touches passes it by
    (`_beside_a_vessel`; not on thick slices).
    """
    box = bounding_box(mask)
    if spacing[0] > THICK_SLICE_MM or few_cores:
        box = _deep_enough(mask, box, spacing, few_cores)
        if box is None:
            return np.zeros(mask.shape, dtype=bool), 0, np.zeros(mask.shape, dtype=bool)
    local = mask[box]
    depth = _depth_in_box(local, spacing)
    values = data[box]
    near = _neighbourhood(spacing, False)
    out = np.zeros(local.shape, dtype=bool)
    borderline = np.zeros(local.shape, dtype=bool)
    narrow = np.zeros(local.shape, dtype=bool)
    thick_soft = few_cores and spacing[0] > THICK_SLICE_MM
    for radius in DETACH_RADII_MM:
        if radius < DETACH_MIN_VOXELS * max(spacing[1:]):
            continue  # a ball a voxel or two across is any junction of vessels on a coarse grid
        cored = _nodule_sized_cores(depth, radius, spacing, max_diameter_mm)
        if cored is None:
            break
        core, cores, windows = cored
        # in the soft tissue of enhanced vessels a ball narrower than a thick slice still reaches the
        # slices beside its core (a nodule's caps there), else every narrow nodule is one slice tall
        reach = (min(spacing[0], radius), *spacing[1:]) if thick_soft else spacing
        for label, window in windows:
            opened = ndimage.distance_transform_edt(~core[window], sampling=reach) <= radius
            opened &= local[window]
            parts, _ = ndimage.label(opened, structure=CONN26)
            piece = parts == parts[tuple(np.argwhere(cores[window] == label)[0])]
            # as for an isolated nodule, nothing else that survived the opening lies close by
            others = opened & ~piece
            verdict = None
            if not (others.any() and (ndimage.binary_dilation(piece, near) & others).any()):
                verdict = _detached_verdict(piece, local[window] & ~opened, values[window], depth[window], spacing,
                                            forbidden[box][window], wall[box][window], max_diameter_mm,
                                            soft=few_cores)
            # where the opening left a thick vessel joined to the ball, the ball is its core's own opening
            # and the vessel its branch, which the widening test weighs (not across thick slices, where
            # the haze of a vessel crossing them lies beside every ball)
            if verdict != "nodule" and spacing[0] <= THICK_SLICE_MM:
                own = ndimage.distance_transform_edt(cores[window] != label, sampling=spacing) <= radius
                own &= local[window]
                alone = None
                if (piece & ~own).any():
                    alone = _detached_verdict(own, local[window] & ~own, values[window], depth[window], spacing,
                                              forbidden[box][window], wall[box][window], max_diameter_mm,
                                              max_arms=BESIDE_MAX_ARMS)
                if alone is not None:
                    piece, verdict = own, alone
                # a nodule no wider than the vessel it touches fails the widening tests: the vessel passes it by
                if verdict != "nodule" and _beside_a_vessel(own, local[window] & ~own, values[window], depth[window],
                                                            spacing, forbidden[box][window], wall[box][window],
                                                            max_diameter_mm):
                    piece, verdict = own, "nodule"
            if verdict in ("nodule", "narrow"):
                out[window] |= piece
                if verdict == "narrow":
                    narrow[window] |= piece
            elif verdict == "borderline":
                borderline[window] |= piece
    full = np.zeros(mask.shape, dtype=bool)
    full[box] = out
    # a borderline piece that some other radius detached as a nodule is no doubt
    doubtful = borderline & ~ndimage.binary_dilation(out, CONN26)
    # a narrow piece is a find of its own only where no wider opening took the same nodule
    pieces, _ = ndimage.label(out, structure=CONN26)
    thin = np.unique(pieces[narrow])
    wide = np.unique(pieces[out & ~narrow])
    full_narrow = np.zeros(mask.shape, dtype=bool)
    full_narrow[box] = np.isin(pieces, np.setdiff1d(thin[thin > 0], wide))
    return full, int(ndimage.label(doubtful, structure=CONN26)[1]), full_narrow


def _unenhanced(rejected: np.ndarray, data: np.ndarray) -> np.ndarray | None:
    """The soft tissue of the dense structures ``rejected`` (below `ENHANCED_SPLIT_HU`) when contrast fills
    their vessels (at least `ENHANCED_MIN_SHARE` of their voxels above it), else None. A nodule on an
    enhanced vessel is one dense structure with it, however much wider than the vessel it is not; in
    the soft tissue it is apart from the vessel's lumen, joined only to the vessel's partial-volume rim,
    which an opening cuts."""
    values = data[rejected]
    bright = np.count_nonzero(values >= ENHANCED_SPLIT_HU)
    if bright < ENHANCED_MIN_SHARE * values.size:
        return None
    return rejected & (data < ENHANCED_SPLIT_HU)


def _deep_enough(mask: np.ndarray, box: tuple[slice, ...], spacing: tuple[float, float, float],
                 few_cores: bool = False) -> tuple[slice, ...] | None:
    """On thick slices a detached nodule holds a ball as wide as two slices (`_detached_verdict`):
    the part of ``box`` (a box of ``mask``) holding the components of ``mask`` that can, with room
    around them for the openings and branches, or None. An in-plane erosion by a diamond that fits
    inside that ball keeps every voxel as deep, so no such component is left out; the distance
    transforms then cover the few candidates, not every vessel tree in the lungs. ``few_cores``: the
    ball is the smallest opening's (`DETACH_RADII_MM`) on slices of any thickness, and the part is
    the box of the voxels that deep, with room for the largest opening and its branches (the soft
    tissue of enhanced vessels is one thin network holding a few nodules: its components span the
    lungs)."""
    local = mask[box]
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    ball = spacing[0] if spacing[0] > THICK_SLICE_MM else 0.0
    if few_cores:
        # the soft tissue of enhanced vessels keeps narrow nodules on thick slices too (`_detached_verdict`)
        ball = DETACH_RADII_MM[0]
    steps = int(np.ceil(ball / max(spacing[1:]))) - 1
    deep = ndimage.binary_erosion(local, cross, iterations=steps) if steps > 0 else local
    if not deep.any():
        return None
    if few_cores:
        inner = bounding_box(deep)
        margin = [int(np.ceil((2 * max(DETACH_RADII_MM) + 2 * ARM_REACH_MM) / sp)) + 2 for sp in spacing]
    else:
        labels, _ = ndimage.label(local, structure=CONN26)
        inner = bounding_box(np.isin(labels, np.unique(labels[deep])))
        margin = [int(np.ceil((max(DETACH_RADII_MM) + 2 * ARM_REACH_MM) / sp)) + 2 for sp in spacing]
    return tuple(slice(max(b.start + i.start - m, b.start), min(b.start + i.stop + m, b.stop))
                 for b, i, m in zip(box, inner, margin))


def _detached_verdict(
    piece: np.ndarray, residue: np.ndarray, values: np.ndarray, depth: np.ndarray,
    spacing: tuple[float, float, float], forbidden: np.ndarray, wall: np.ndarray, max_diameter_mm: float,
    max_arms: int = DETACH_MAX_ARMS, soft: bool = False, one_slice: bool = False,
) -> str | None:
    """The tests of `_detached_nodules` for one opened ``piece`` (all arrays on one window;
    ``depth``: each voxel's distance, mm, to the outside of the dense structure): ``nodule``,
    ``borderline`` (a round soft-tissue piece failing only the widening test, by less than
    `BORDERLINE_WIDENING` of it) or None. More than ``max_arms`` branches make a junction unless the
    piece is `MANY_ARMS_MIN_WIDENING` times as wide as them. ``soft``: the piece is from the soft tissue
    of enhanced vessels (`_unenhanced`), where on thick slices a nodule narrower than two slices passes
    as ``narrow`` (never borderline). ``one_slice``: a piece one slice tall may pass (the caller has other
    evidence that it is no vessel's oblique smear: `_beside_a_vessel` on thick slices)."""
    _, kept = compact_components(piece, spacing, forbidden=forbidden, max_diameter_mm=max_diameter_mm, wall=wall)
    if not kept:
        return None
    obj = bounding_box(piece)
    # a vessel crossing one thick slice obliquely smears into a blob of that slice alone
    if (obj[0].stop - obj[0].start < 2 and not one_slice) or not plausible_nodule(piece[obj], spacing):
        return None
    # the thick stub of a tapering vessel survives the opening too, but is no ball
    thick = spacing[0] > THICK_SLICE_MM
    extent = max(_extent_mm(sl.stop - sl.start, sp, axis == 0) for axis, (sl, sp) in enumerate(zip(obj, spacing)))
    roundness = THICK_DETACHED_MIN_SPHERICITY if thick else DETACHED_MIN_SPHERICITY
    if np.count_nonzero(piece) * float(np.prod(spacing)) < roundness * math.pi / 6 * extent**3:
        return None
    radius = float(depth[piece].max())
    # across thick slices vessels crossing one slice blur into blobs about a slice wide at junctions;
    # in the soft tissue beside contrast-filled vessels (``soft``) those blobs are the vessels' lumen,
    # split off by HU, and a nodule narrower than two slices is told from their partial-volume rims by
    # its solid HU (the caller's `ENHANCED_PIECE_MIN_HU`): it passes, as a narrow find
    narrow = thick and radius < spacing[0]
    if narrow and not soft:
        return None
    level = float(np.median(values[piece]))
    if level > DETACHED_MAX_HU:
        return None
    arms, arm_depth, arm_hu = _arms(piece, residue, depth, values, spacing)
    widening = radius / max(arm_depth, 1e-6)
    if arms > max_arms and widening < MANY_ARMS_MIN_WIDENING:
        return None
    needed = THICK_DETACHED_MIN_WIDENING if thick else DETACHED_MIN_WIDENING
    if widening >= needed or arm_hu - level >= ENHANCED_ARMS_HU:
        return "narrow" if narrow else "nodule"
    return "borderline" if widening >= BORDERLINE_WIDENING * needed and not narrow else None


def _beside_a_vessel(
    ball: np.ndarray, residue: np.ndarray, values: np.ndarray, depth: np.ndarray, spacing: tuple[float, float, float],
    forbidden: np.ndarray, wall: np.ndarray, max_diameter_mm: float, soft: bool = False,
) -> bool:
    """Whether ``ball`` (a core's own opening, all arrays on one window as for `_detached_verdict`),
    round soft tissue by the tests of `_detached_verdict` but for its branches, sits beside the one
    vessel it touches rather than on its axis. A nodule as wide as the vessel it touches (or narrower)
    is no wider than its branches, but the vessel passes it by: its branches (where they cross the
    shell of `_arms`: at most `BESIDE_MAX_BRANCHES`, before and after it, or one wrapping round it)
    line up along an axis that misses the ball's centre by at least `BESIDE_MIN_OFFSET` of the ball's
    radius and runs on at least `ARM_REACH_MM` past it on both sides. A bead of a thick vessel, or a
    ball where vessels meet, lies on the axis of its branches. ``soft``: the slices are thicker than
    `THICK_SLICE_MM` (`_thick_beside_nodules`): the ball may be narrower than two slices and one slice
    tall (the tests of `_detached_verdict` for soft pieces), must touch the vessel and be wider than it
    (`THICK_BESIDE_MIN_WIDENING`), and the vessel's axis points may scatter more
    (`THICK_BESIDE_MAX_SCATTER`)."""
    # without branches the widening tests pass: what is left are the shape, size and HU tests
    no_branches = np.zeros(residue.shape, dtype=bool)
    if _detached_verdict(ball, no_branches, values, depth, spacing, forbidden, wall, max_diameter_mm,
                         soft=soft, one_slice=soft) not in ("nodule", "narrow"):
        return False
    # a ball as bright as contrast-filled blood is a piece of an enhanced vessel
    if float(np.median(values[ball])) >= ENHANCED_SPLIT_HU:
        return False
    count, axis, vessel_mm = _arm_axes(ball, residue, depth, spacing)
    if not 1 <= count <= BESIDE_MAX_BRANCHES or len(axis) < 2:
        return False
    radius = float(depth[ball].max())
    # the ball's centre: its deepest voxels, in mm
    centre = np.argwhere(ball & (depth >= BESIDE_CORE_SHARE * radius)).mean(axis=0) * np.asarray(spacing)
    # the vessel's axis: the principal line of its branches' axis points
    mean = axis.mean(axis=0)
    direction = np.linalg.svd(axis - mean, full_matrices=False)[2][0]
    along = (axis - mean) @ direction
    at = float((centre - mean) @ direction)
    offset = float(np.linalg.norm(centre - mean - at * direction))
    # the vessel runs on past the ball on both sides; one ending on it points at its centre
    passes = along.min() <= at - ARM_REACH_MM and along.max() >= at + ARM_REACH_MM
    # one straight vessel: its axis points lie on the line (two vessels, or a vessel beaded by the
    # slices that the ball belongs to beside another, scatter about it by their radii)
    scatter = float(np.linalg.norm(axis - mean - np.outer(along, direction), axis=1).max())
    straight = scatter <= (THICK_BESIDE_MAX_SCATTER if soft else BESIDE_MAX_SCATTER) * min(vessel_mm, radius)
    # on thick slices (``soft``) the ball touches the vessel and is wider than it (`THICK_BESIDE_MIN_WIDENING`)
    touches = offset <= radius + vessel_mm or not soft
    wider = radius >= THICK_BESIDE_MIN_WIDENING * vessel_mm or not soft
    return passes and straight and touches and wider and offset >= BESIDE_MIN_OFFSET * radius


def _depth_in_box(local: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Each voxel's distance (mm) to the outside of the dense structure ``local``, the box's edge counting
    as outside (a structure the box cuts ends there)."""
    return ndimage.distance_transform_edt(np.pad(local, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]


def _nodule_sized_cores(
    depth: np.ndarray, radius: float, spacing: tuple[float, float, float], max_diameter_mm: float,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, tuple[slice, ...]]]] | None:
    """The cores of an opening by a ball of ``radius`` (mm): the voxels deeper than it (``depth``, mm), their
    labels (26-connected), and each core's label and window (its box grown by the ball and `ARM_REACH_MM` on
    each side, for its arms) when it is short enough for a nodule (a core longer than the largest, less the
    ball's diameter, is a vessel's axis); None when no voxel is that deep."""
    core = depth > radius
    if not core.any():
        return None
    cores, _ = ndimage.label(core, structure=CONN26)
    grow = [int(np.ceil((radius + 2 * ARM_REACH_MM) / sp)) + 1 for sp in spacing]
    windows = [(label, grown_box(obj, grow, depth.shape))
               for label, obj in enumerate(ndimage.find_objects(cores), start=1)
               if max((sl.stop - sl.start) * sp for sl, sp in zip(obj, spacing)) + 2 * radius <= max_diameter_mm]
    return core, cores, windows


def _thick_beside_nodules(
    mask: np.ndarray, data: np.ndarray, spacing: tuple[float, float, float], forbidden: np.ndarray,
    wall: np.ndarray, max_diameter_mm: float,
) -> np.ndarray:
    """On slices thicker than `THICK_SLICE_MM`: nodules narrower than two slices beside the one vessel
    they touch, from the dense lung structures ``mask`` that failed as a whole. `_detached_nodules`
    asks there for a ball as wide as two slices, since the haze of vessels crossing thick slices
    obliquely leaves narrower balls at every junction; a 6-10 mm nodule on 4-5 mm slices holds no
    such ball. What tells it from a junction is where it lies: a vessel is a tube of about constant
    radius, a nodule on it a bulge whose centre lies off the tube's axis, and the vessel passes it by
    (`_beside_a_vessel`). Each core of the openings narrower than a slice (`THICK_BESIDE_RADII_MM`) is
    opened on its own, reaching the slice beside it on each side (a nodule's caps there: else every
    such piece is one slice tall), and kept when `_beside_a_vessel` holds for it."""
    out = np.zeros(mask.shape, dtype=bool)
    radii = [r for r in THICK_BESIDE_RADII_MM if DETACH_MIN_VOXELS * max(spacing[1:]) <= r < spacing[0]]
    if not radii or not mask.any():
        return out
    box = bounding_box(mask)
    local = mask[box]
    depth = _depth_in_box(local, spacing)
    values = data[box]
    found = np.zeros(local.shape, dtype=bool)
    for radius in radii:
        cored = _nodule_sized_cores(depth, radius, spacing, max_diameter_mm)
        if cored is None:
            break
        _, cores, windows = cored
        reach = (min(spacing[0], radius), *spacing[1:])
        for label, window in windows:
            own = ndimage.distance_transform_edt(cores[window] != label, sampling=reach) <= radius
            own &= local[window]
            if _beside_a_vessel(own, local[window] & ~own, values[window], depth[window], spacing,
                                forbidden[box][window], wall[box][window], max_diameter_mm, soft=True):
                found[window] |= own
    out[box] = found
    return out


def _arm_axes(
    piece: np.ndarray, residue: np.ndarray, depth: np.ndarray, spacing: tuple[float, float, float],
) -> tuple[int, np.ndarray, float]:
    """How many branches of ``residue`` leave ``piece`` where they cross the shell of `_arms`
    (`_branch_ring`; the caller's slices are thin), their axis points there (mm, in ``piece``'s
    frame; one row each): each branch's voxels at least `BESIDE_CORE_SHARE` as deep as
    its deepest, and the largest inscribed radius among them (mm, from ``depth``)."""
    window, ring = _branch_ring(piece, residue, spacing)
    branches, n = ndimage.label(ring, structure=CONN26)
    if not n:
        return 0, np.zeros((0, 3)), 0.0
    deepest = np.asarray(ndimage.maximum(depth[window], branches, np.arange(1, n + 1)))
    axis = ring & (depth[window] >= BESIDE_CORE_SHARE * deepest[np.maximum(branches, 1) - 1])
    offset = np.array([sl.start for sl in window])
    return n, (np.argwhere(axis) + offset) * np.asarray(spacing), float(deepest.max())


def _arms(
    piece: np.ndarray, residue: np.ndarray, depth: np.ndarray, values: np.ndarray, spacing: tuple[float, float, float],
) -> tuple[int, float, float]:
    """How many branches of ``residue`` leave ``piece`` (not those on one slice fainter than `ARM_MIN_HU`), the largest
    inscribed radius (mm, from ``depth``) and the median value (HU, from ``values``; -inf without
    branches) of all: the pieces of the residue that touch it, taken where they cross the shell
    `ARM_REACH_MM` to twice that away from it (slivers of its own rough surface do not reach the shell;
    branches joined in the haze right around it are apart there)."""
    window, ring = _branch_ring(piece, residue, spacing)
    branches, n = ndimage.label(ring, structure=CONN26)
    if not n:
        return 0, 0.0, -math.inf
    levels = np.asarray(ndimage.median(values[window], branches, np.arange(1, n + 1)))
    slices = np.array([sl[0].stop - sl[0].start for sl in ndimage.find_objects(branches)])
    counted = int(np.count_nonzero((levels >= ARM_MIN_HU) | (slices > 1)))
    return counted, float(depth[window][ring].max()), float(np.median(values[window][ring]))


def _branch_ring(
    piece: np.ndarray, residue: np.ndarray, spacing: tuple[float, float, float],
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The window around ``piece`` and, on it, the voxels of the pieces of ``residue`` touching it
    where they cross the shell `ARM_REACH_MM` to twice that away from it (`_arms`)."""
    reach = [max(1, int(np.ceil(2 * ARM_REACH_MM / sp))) for sp in spacing]
    obj = bounding_box(piece)
    window = grown_box(obj, reach, piece.shape)
    near, _ = ndimage.label(residue[window], structure=CONN26)
    attached = np.unique(near[ndimage.binary_dilation(piece[window], CONN26)])
    if spacing[0] > THICK_SLICE_MM:
        # across thick slices the ball's own caps, thinner than it, lie a slice above and below it
        # and would count as branches: the shell is taken in-plane, around the ball's footprint
        footprint = piece[window].any(axis=0)
        distance = np.broadcast_to(ndimage.distance_transform_edt(~footprint, sampling=spacing[1:]),
                                   piece[window].shape)
    else:
        distance = ndimage.distance_transform_edt(~piece[window], sampling=spacing)
    ring = (distance >= ARM_REACH_MM) & (distance <= 2 * ARM_REACH_MM) & np.isin(near, attached[attached > 0])
    ring &= residue[window]
    return window, ring


def _medial(surface: np.ndarray) -> np.ndarray:
    """The part of a lung surface towards the mediastinum: columns between the lungs' midline and
    each lung's own centre column (the lungs lie either side of the crop's central column)."""
    cols = np.arange(surface.shape[2])
    mid = (surface.shape[2] - 1) / 2.0
    per_col = np.count_nonzero(surface, axis=(0, 1))
    out = np.zeros(surface.shape, dtype=bool)
    for side in (cols < mid, cols >= mid):
        weights = per_col * side
        if weights.sum() == 0:
            continue
        centre = float((cols * weights).sum() / weights.sum())
        between = side & (np.abs(cols - mid) < abs(centre - mid))
        out[..., between] = surface[..., between]
    return out


def plausible_nodule(component: np.ndarray, spacing: tuple[float, float, float], planar: bool = False) -> bool:
    """Size, section compactness and slice-count tests of one candidate (module docstring).

    ``component`` is the candidate's boolean mask cropped to its bounding box (z, y, x);
    ``planar`` says the image is a single slice (no slice-count or thickness tests, and the size
    test uses the equivalent circle of the area).
    """
    areas = np.count_nonzero(component, axis=(1, 2))
    section = component[int(np.argmax(areas))]
    area_mm2 = float(areas.max() * spacing[1] * spacing[2])
    if _section_compactness(section, spacing) < MIN_SECTION_COMPACTNESS:
        return False
    if planar:
        return 2.0 * math.sqrt(area_mm2 / math.pi) >= NODULE_MIN_DIAMETER_MM
    volume_mm3 = float(areas.sum() * np.prod(spacing))
    if (6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0) < NODULE_MIN_DIAMETER_MM:
        return False
    if spacing[0] <= THIN_SLICE_MM and np.count_nonzero(areas) < 2:
        return False
    # one thick slice only: a vessel crossing it looks the same unless the blob is as wide as the
    # slice is thick; on two or more slices the blob's own height vouches for it
    needed = spacing[0] if np.count_nonzero(areas) < 2 else THICK_SECTION_MM
    return not (spacing[0] > THICK_SLICE_MM and 2.0 * math.sqrt(area_mm2 / math.pi) < needed)


def _section_compactness(section: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Area of one axial ``section`` (boolean, cropped or not) over the area of the circle spanning its
    longest in-plane extent (rows or columns, mm)."""
    rows, cols = np.flatnonzero(section.any(axis=1)), np.flatnonzero(section.any(axis=0))
    extent = max((rows[-1] - rows[0] + 1) * spacing[1], (cols[-1] - cols[0] + 1) * spacing[2])
    return float(np.count_nonzero(section) * spacing[1] * spacing[2] / (math.pi / 4.0 * extent**2))


def organ_lesion(
    data: np.ndarray,
    organ: np.ndarray,
    spacing: tuple[float, float, float],
    point: tuple[int, int, int] | None = None,
    k: float = BOX_K,
) -> np.ndarray:
    """The largest focal lesion inside ``organ`` (CT; see the module docstring); empty when none.

    ``point`` (voxel index) picks the candidate nearest to it instead of the largest.
    """
    out = np.zeros(data.shape, dtype=bool)
    bbox = bounding_box(organ)
    inside = fill_holes_slicewise(organ[bbox])
    patch = data[bbox].astype(np.float32)
    sigma = [0.0 if n < 3 else 1.0 for n in patch.shape]
    if spacing[0] > 2 * min(spacing[1:]):
        sigma[0] = 0.0  # thick slices: smooth within the slice only
    smooth = ndimage.gaussian_filter(patch, sigma)
    impulse = np.zeros([9 if s else 1 for s in sigma], dtype=np.float32)
    impulse[tuple(n // 2 for n in impulse.shape)] = 1.0
    noise_gain = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum()))
    depth = ndimage.distance_transform_edt(inside, sampling=spacing)
    reference = depth >= ORGAN_MARGIN_MM
    if reference.sum() < 30:
        reference = inside
    level = float(np.median(smooth[reference]))
    sd = max(_noise_sd(patch, reference) * noise_gain, MAD_FLOOR_HU)
    edge = inside & ~ndimage.binary_erosion(inside, CONN6, border_value=1)
    best: tuple[np.ndarray, bool] | None = None
    for darker in (True, False):
        deviant = (smooth < level - k * sd) if darker else (smooth > level + k * sd)
        labels, n = ndimage.label(deviant & inside, structure=CONN26)
        if n == 0:
            continue
        touching = np.zeros(n + 1, dtype=bool)
        touching[np.unique(labels[edge])] = True
        sizes = component_sizes(labels, n) * float(np.prod(spacing))
        for label, obj in enumerate(ndimage.find_objects(labels), start=1):
            if obj is None or touching[label] or (6.0 * sizes[label] / math.pi) ** (1 / 3) < NODULE_MIN_DIAMETER_MM:
                continue
            extent = max((sl.stop - sl.start) * sp for sl, sp in zip(obj, spacing))
            if sizes[label] < MIN_SPHERICITY * math.pi / 6.0 * extent**3:
                continue
            candidate = labels == label
            if best is None or _closer_or_larger(candidate, best[0], point, bbox, spacing):
                best = (candidate, darker)
    if best is None:
        return out
    found, darker = best
    half = (level + float(np.median(smooth[found]))) / 2.0
    cut = ((smooth < half) if darker else (smooth > half)) & inside
    labels, _ = ndimage.label(cut, structure=CONN6)
    picked = np.isin(labels, np.unique(labels[found & cut])[1:]) if (found & cut).any() else found
    out[bbox] = fill_holes_slicewise(picked | found)
    return out


def _closer_or_larger(
    a: np.ndarray, b: np.ndarray, point: tuple[int, int, int] | None, bbox: tuple[slice, ...],
    spacing: tuple[float, float, float],
) -> bool:
    """Whether candidate ``a`` beats ``b``: nearer to ``point`` (mm) if given, else larger."""
    if point is None:
        return int(a.sum()) > int(b.sum())
    local = np.asarray([p - sl.start for p, sl in zip(point, bbox)], dtype=float)
    sp = np.asarray(spacing)

    def distance(m: np.ndarray) -> float:
        return float(np.sqrt((((np.argwhere(m) - local) * sp) ** 2).sum(axis=1)).min())

    return distance(a) < distance(b)


def _noise_sd(patch: np.ndarray, valid: np.ndarray) -> float:
    """Noise SD from differences of neighbours along x (insensitive to tissue mixtures)."""
    pairs = valid[..., 1:] & valid[..., :-1]
    diffs = (patch[..., 1:] - patch[..., :-1])[pairs]
    if diffs.size < 10:
        return 0.0
    return 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2.0)


def box_lesion(
    data: np.ndarray,
    region: tuple[slice, slice, slice],
    point: tuple[int, int, int] | None,
    spacing: tuple[float, float, float],
    is_ct: bool,
    k: float = BOX_K,
) -> np.ndarray:
    """The region inside ``region`` that differs from its surroundings (see the module docstring).

    Raises:
        SegmentationError: nothing in the box differs by more than ``k`` noise SDs.
    """
    sizes = [sl.stop - sl.start for sl in region]
    thin = [n == 1 for n in sizes]
    outer = tuple(
        sl if is_thin else slice(max(sl.start - max(5, n // 2), 0), min(sl.stop + max(5, n // 2), full))
        for sl, n, is_thin, full in zip(region, sizes, thin, data.shape)
    )
    patch = data[outer].astype(np.float32)
    # smooth within the view's plane (and across slices only when they are not thick)
    sigma = [0.0 if is_thin or m < 3 else 1.0 for is_thin, m in zip(thin, patch.shape)]
    if spacing[0] > 2 * min(spacing[1:]):
        sigma[0] = 0.0
    smooth = ndimage.gaussian_filter(patch, sigma) if max(sigma) > 0 else patch
    impulse = np.zeros([9 if s else 1 for s in sigma], dtype=np.float32)
    impulse[tuple(n // 2 for n in impulse.shape)] = 1.0
    noise_gain = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum())) if max(sigma) > 0 else 1.0

    inner = tuple(slice(sl.start - o.start, sl.stop - o.start) for sl, o in zip(region, outer))
    ring = np.ones(patch.shape, dtype=bool)
    ring[inner] = False
    tissue = (smooth > TISSUE_HU[0]) & (smooth < TISSUE_HU[1]) if is_ct else np.ones(patch.shape, dtype=bool)
    reference = ring & tissue
    if reference.sum() < 30:
        reference = tissue.copy()
        reference[ring] = False
    if not reference.any():
        raise SegmentationError("the prompt box holds no soft tissue to compare with; draw it on an organ")
    level = float(np.median(smooth[reference]))
    floor = MAD_FLOOR_HU if is_ct else MAD_FLOOR_FRACTION * float(np.ptp(patch) or 1.0)
    sd = max(_noise_sd(patch, reference) * noise_gain, floor)

    values = smooth[inner]
    darker = values < level - k * sd
    if is_ct:
        darker &= values > TISSUE_HU[0]  # fat and air next to an organ are not a lesion
    brighter = values > level + k * sd
    local_point = None if point is None else tuple(p - sl.start for p, sl in zip(point, region))
    inside = local_point is not None and all(0 <= p < n for p, n in zip(local_point, sizes))
    if inside:
        chosen = darker if darker[local_point] or not brighter[local_point] else brighter
    else:
        core = tuple(slice(n // 4, max(n - n // 4, n // 4 + 1)) for n in sizes)
        chosen = darker if darker[core].sum() >= brighter[core].sum() else brighter
    seed = local_point if inside else tuple(n // 2 for n in sizes)
    found = nearest_component(chosen, seed, spacing, structure=CONN6)  # type: ignore[arg-type]
    planar = any(thin)
    unit = np.prod([sp for sp, t in zip(spacing, thin) if not t]) if planar else np.prod(spacing)
    size = float(found.sum() * unit)
    if size < (NODULE_MIN_MM3 ** (2 / 3) if planar else NODULE_MIN_MM3):
        raise SegmentationError(
            f"nothing in the prompt box differs from its surroundings ({level:.0f} +- {sd:.1f}) by more than "
            f"{k:g} noise SDs over at least 3 mm; draw the box tightly around a visible lesion"
        )
    # the edge at half the contrast between the organ and the lesion's own level
    half = (level + float(np.median(values[found]))) / 2.0
    edge = (values < half) if chosen is darker else (values > half)
    picked = nearest_component(edge & chosen, seed, spacing, structure=CONN6)  # type: ignore[arg-type]
    out = np.zeros(data.shape, dtype=bool)
    out[region] = fill_holes_slicewise(picked if picked.any() else found)
    return out


def skull_stripped(data: np.ndarray, head: np.ndarray) -> bool:
    """Whether the image outside ``head`` (a foreground mask of the same shape) is masked: at
    least `STRIPPED_BACKGROUND_FRACTION` of it holds one exact value. A skull-stripped brain sits in
    such a background; air around a head holds noise."""
    outside = data[~ndimage.binary_dilation(head, CONN6, iterations=2)]
    if outside.size < 100:
        return False
    outside = outside[:: max(1, outside.size // 1_000_000)]
    _, counts = np.unique(outside, return_counts=True)
    return bool(counts.max() >= STRIPPED_BACKGROUND_FRACTION * outside.size)


def brain_region(data: np.ndarray, spacing: tuple[float, float, float], inset_mm: float = 0.0) -> np.ndarray:
    """About the brain: the head (filled Otsu foreground) with its scalp and skull taken away
    (`_parenchyma`: the bright tissue inside the head cut from the scalp by an opening, with what it
    encloses), or, when that fails, the head minus a `HEAD_MARGIN_MM` shell. A skull-stripped brain
    (`skull_stripped`) loses only `STRIPPED_MARGIN_MM` (its partial-volume edge): the full margin
    would take away a third of it, with the lesions there. ``inset_mm`` takes that much more off
    (the brain's surface)."""
    return BrainDepth.of(data, spacing).region(inset_mm)


@dataclass
class BrainDepth:
    """Depth (mm, on a 2 mm grid) inside the head or the brain `brain_region` found, and the margin
    its surface loses; one computation serves every inset."""

    grid: CoarseGrid
    head: np.ndarray
    depth: np.ndarray
    margin: float

    @classmethod
    def of(cls, data: np.ndarray, spacing: tuple[float, float, float]) -> "BrainDepth":
        from skimage.filters import threshold_otsu

        grid = CoarseGrid.for_spacing(data.shape, spacing, 2.0)
        coarse = grid.sample(data)
        head = largest_component(fill_holes_slicewise(coarse > threshold_otsu(coarse)))
        if not head.any():
            raise SegmentationError("no head found in the image (empty foreground)")
        sampling = grid.coarse_spacing(spacing)
        if skull_stripped(coarse, head):
            region, margin = head, STRIPPED_MARGIN_MM
        else:
            parenchyma = _parenchyma(coarse, head, sampling)
            region, margin = (head, HEAD_MARGIN_MM) if parenchyma is None else (parenchyma, STRIPPED_MARGIN_MM)
        return cls(grid, head, ndimage.distance_transform_edt(region, sampling=sampling), margin)

    def region(self, inset_mm: float = 0.0) -> np.ndarray:
        inner = self.depth > self.margin + inset_mm
        if not inner.any():
            inner = self.head
        return self.grid.upsample(inner)


def _parenchyma(coarse: np.ndarray, head: np.ndarray, sampling: tuple[float, float, float]) -> np.ndarray | None:
    """The brain inside a head that still has its scalp and skull, or None when it cannot be told.

    A fixed margin does not fit every head: scalp and skull are 7-16 mm thick, and what the margin
    leaves of them (dark bone, bright scalp) swamps the histogram the lesion levels are read from.
    The tissue brighter than the head's own Otsu level (brain and scalp on FLAIR and T1; bone and
    CSF are dark) is opened by `SKULL_OPENING_MM` (cutting the thin bridges to the scalp), its
    largest component grown back within it and its enclosed CSF and lesions filled in. A result
    smaller than `MIN_PARENCHYMA_FRACTION` of the head is no brain (a tissue threshold that failed)."""
    from skimage.filters import threshold_otsu

    values = coarse[head]
    if values.size < 1000:
        return None
    tissue = head & (coarse > threshold_otsu(values))
    ball = ellipsoid(SKULL_OPENING_MM, sampling)
    core = ndimage.binary_erosion(tissue, ball)
    if not core.any():
        return None
    grown = tissue & ndimage.binary_dilation(largest_component(core), ball)
    closed = ndimage.binary_closing(grown, ball, border_value=0)
    brain = fill_holes_slicewise(ndimage.binary_fill_holes(closed | grown)) & head
    if brain.sum() < MIN_PARENCHYMA_FRACTION * head.sum():
        return None
    return brain


@dataclass(frozen=True)
class BrainTissue:
    """Intensity levels of a brain MR (the scan's own units) read from its histogram.

    ``white`` is the dominant tissue mode (normal-appearing white matter on FLAIR) and ``spread``
    its SD, from the half-width of the mode's lower flank (the upper flank holds grey matter and
    lesions). What the histogram holds above a mirror image of that lower flank is the brighter
    normal tissue (grey matter on FLAIR; lesions are too few to move it): ``grey`` is its median
    and ``grey_spread`` the SD implied by its upper decile, ``grey_share`` its share of the brain.
    On real FLAIR grey matter is a shoulder about one spread above white matter; on a phantom it
    may be a separate peak.
    """

    white: float
    spread: float
    grey: float
    grey_spread: float
    grey_share: float

    @property
    def grey_peak(self) -> bool:
        """Whether grey matter is a peak of its own (`MR_GREY_PEAK_K` spreads above white matter),
        not a shoulder of white matter whose level is too noisy to set thresholds by; and not a
        lesion load: what lies above white matter must fill more than `MR_MAX_BURDEN_FRACTION` of
        the brain (grey matter is about half of it)."""
        return (self.grey - self.white > MR_GREY_PEAK_K * self.spread
                and self.grey_share > MR_MAX_BURDEN_FRACTION)

    @property
    def seed_level(self) -> float:
        level = self.white + MR_SEED_WM_K * self.spread
        return max(level, self.grey + MR_SEED_GM_K * self.grey_spread) if self.grey_peak else level

    @property
    def grow_level(self) -> float:
        level = self.white + MR_GROW_WM_K * self.spread
        return max(level, self.grey + MR_GROW_GM_K * self.grey_spread) if self.grey_peak else level

    def grey_contrast(self, value: float) -> float:
        """How far ``value`` lies above grey matter, in the larger of the two spreads."""
        return (value - self.grey) / max(self.spread, self.grey_spread)


def _mode_and_lower_flank(counts: np.ndarray, centres: np.ndarray) -> tuple[float, float]:
    """The mode of a histogram and the SD implied by the half width at half maximum of its lower
    flank (at least one bin)."""
    smooth = ndimage.gaussian_filter1d(counts.astype(float), 2.0)
    peak = int(np.argmax(smooth))
    flank = peak
    while flank > 0 and smooth[flank] > smooth[peak] / 2.0:
        flank -= 1
    width = max(float(centres[peak] - centres[flank]), float(centres[1] - centres[0]))
    return float(centres[peak]), width / 1.1774  # half width at half maximum of a normal: 1.1774 SD


def brain_tissue(values: np.ndarray) -> BrainTissue:
    """`BrainTissue` of the brain's (smoothed) voxel values; a sample of a million is plenty."""
    if values.size > 1_000_000:
        values = values[:: values.size // 1_000_000]
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.9]))
    if hi <= lo:
        raise SegmentationError("the brain region holds one value: no tissue contrast to search for lesions")
    counts, edges = np.histogram(values, bins=200, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2.0
    white, spread = _mode_and_lower_flank(counts, centres)
    mirrored, _ = np.histogram(2.0 * white - values[values < white], bins=edges)
    excess = np.clip(counts - mirrored, 0, None) * (centres > white)
    if not excess.any():
        return BrainTissue(white, spread, white, spread, 0.0)
    # the excess is a broad shoulder (real FLAIR) or a peak with a partial-volume ramp below it
    # (phantoms): its median and upper decile are steadier than its mode
    total = np.cumsum(excess)
    grey, upper = (float(centres[np.searchsorted(total, total[-1] * q)]) for q in (0.5, 0.9))
    share = float(total[-1]) / float(counts.sum())
    return BrainTissue(white, spread, grey, max((upper - grey) / 1.2816, float(edges[1] - edges[0])), share)


@dataclass(frozen=True)
class BrainContrast:
    """Which way the brain's outer ribbon (cortex and sulcal CSF, within `MR_RIBBON_MM` of the brain
    region's edge) departs from its deep part (white matter, beyond `MR_DEEP_MM`): the shares of the
    ribbon more than `MR_CONTRAST_K` robust SDs of the deep part brighter and darker than its median.

    Grey matter and CSF both darker than white matter is T1 (``weighting`` ``"T1"``); grey matter
    (and on T2 CSF) brighter is FLAIR or T2 (``"FLAIR/T2"``). Real FLAIR has little grey-white
    contrast, so it often says neither (None): the measure can exclude, seldom confirm, a FLAIR.
    """

    brighter: float
    darker: float

    @property
    def weighting(self) -> str | None:
        if self.darker >= MR_T1_DARK_SHARE and self.darker >= MR_T1_DARK_RATIO * self.brighter:
            return "T1"
        if self.brighter >= MR_BRIGHT_SHARE and self.brighter >= MR_BRIGHT_RATIO * self.darker:
            return "FLAIR/T2"
        return None

    def describe(self) -> str:
        return (f"{self.darker:.0%} of the brain's outer ribbon (cortex, sulci) is darker and {self.brighter:.0%} "
                f"brighter than its deep white matter")


def brain_contrast(smoothed: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float]) -> BrainContrast | None:
    """`BrainContrast` of a (smoothed) brain MR within the ``brain`` region, on a 2 mm grid; None when
    the region has no deep part (a 2-D image, a small field of view)."""
    grid = CoarseGrid.for_spacing(brain.shape, spacing, 2.0)
    region = grid.sample(brain.astype(np.float32)) > 0.5
    values = grid.sample(smoothed)
    depth = ndimage.distance_transform_edt(region, sampling=grid.coarse_spacing(spacing))
    deep = values[depth >= MR_DEEP_MM]
    ribbon = values[(depth > 0) & (depth <= MR_RIBBON_MM)]
    if deep.size < 100 or ribbon.size < 100:
        return None
    level = float(np.median(deep))
    sd = max(1.4826 * float(np.median(np.abs(deep - level))), 1e-6)
    return BrainContrast(float(np.mean(ribbon > level + MR_CONTRAST_K * sd)),
                         float(np.mean(ribbon < level - MR_CONTRAST_K * sd)))


@dataclass
class MRLesions:
    """What `mr_hyperintense_lesion` found: component ``labels`` (the ``kept`` ones are lesions), the
    `BrainTissue` levels and the brain region's size, which say how far the result can be trusted."""

    labels: np.ndarray
    kept: list[int]
    tissue: BrainTissue
    brain_voxels: int
    lesion_median: float | None
    #: voxels of the ``kept`` lesions that are faint rims (between the rim and grow levels), and
    #: voxels of rims left out because they were larger than `MR_RIM_MAX_SHARE` of their lesion
    rim_voxels: int = 0
    left_out_rim_voxels: int = 0
    #: volume of one voxel (mL), to state the burden's range
    voxel_ml: float = 0.0
    #: the image's own grey-white contrast (`brain_contrast`), which says T1 or FLAIR/T2 when clear
    contrast: BrainContrast | None = None
    #: voxels above the grow level left out as cortex lining the sulci (`_cortex_band`, and faint parts
    #: by sulcal CSF where cortex is bright: `MR_BRIGHT_CORTEX_SHARE`)
    cortical_left_out: int = 0
    #: slice thickness (mm): on thick slices small lesions are partial-volumed
    slice_mm: float = 0.0
    #: voxels of faint parts left out because their mirror image across the midline is as bright
    #: (`MR_MIRROR_K`: deep grey nuclei, cortex)
    mirrored_left_out: int = 0
    #: voxels of faint parts within the folded cortex left out on thick slices (`MR_FAINT_PEAK_K`,
    #: `MR_SULCAL_DEPTH_MM`, `MR_FOLD_MAX_DEPTH_MM`): cortex lining sulci thinner than a slice
    folded_left_out: int = 0
    #: voxels of faint thin parts left out as grey matter's noise tail (`MR_FAINT_PEAK_K`), and of faint
    #: summits split from a brighter lesion (`_half_maximum_parts`, below `MR_FAINT_K`)
    faint_left_out: int = 0
    #: the largest share (0-1) by which `_flatten_bias` darkened the brain's bright side (an uncorrected
    #: coil bias field): its lesions were measured against an estimated level
    bias_darkened: float = 0.0
    #: voxels of the ``kept`` lesions found as plaques on a brighter lesion's flank (`_shoulders`)
    shoulder_voxels: int = 0
    #: voxels of faint split parts kept for lying on the ventricles' lining (`MR_LINING_MM`)
    lining_voxels: int = 0

    def doubt(self) -> str | None:
        """Why the lesions found (or none) may be wrong, or None: the levels are so high that only
        lesions brighter than bright normal tissue can count (`MR_BLIND_SEED_K`: T2's CSF); grey matter
        is no peak of its own (`BrainTissue.grey_peak`: real FLAIR), or the lesions are too little
        brighter than it (`MR_MIN_GM_CONTRAST`), or they cover more than `MR_MAX_BURDEN_FRACTION` of
        the brain (not a FLAIR/T2, or the region holds scalp), or their faint rims (kept or left
        out) are more than `MR_MAX_RIM_FRACTION` of the confident burden (the extent is uncertain);
        grey matter set the levels above `MR_FAINT_BLIND_K` SDs, lesions found or not (lesions as
        faint as it are missed); or slices are thicker than `MR_THICK_SLICE_MM` (partial volume); or
        faint parts were left out as mirrored normal tissue (`MR_MIRROR_K`) or, `MR_FAINT_REPORT_MM3` or
        more of them, as grey matter's noise tail (`MR_FAINT_PEAK_K`) or, on thick slices, as cortex in the
        folds (`MR_SULCAL_DEPTH_MM`); or plaques on a brighter lesion's flank
        (`_shoulders`) make up `MR_SHOULDER_REPORT_SHARE` of the burden (their extent is a judgement)."""
        reasons = []
        found = int(np.isin(self.labels, self.kept).sum())
        blind = (self.tissue.seed_level - self.tissue.white) / max(self.tissue.spread, 1e-9)
        if blind > MR_BLIND_SEED_K:
            reasons.append(f"lesions had to be {blind:.0f} white-matter SDs brighter than white matter to count (the "
                           f"brain's bright normal tissue, e.g. CSF on T2, sets the level): fainter lesions are missed, "
                           f"so the lesion load (or 'no lesion') may be wrong; ask on the FLAIR")
        elif self.tissue.grey_peak and blind > MR_FAINT_BLIND_K:
            reasons.append(f"lesions had to be {blind:.0f} white-matter SDs brighter than white matter to count (grey "
                           f"matter's own level): lesions fainter than grey matter are missed, so the lesion load (or "
                           f"'no lesion') may be too low")
        if self.slice_mm > MR_THICK_SLICE_MM:
            reasons.append(f"on {self.slice_mm:g} mm slices a lesion under two slices ({2 * self.slice_mm:g} mm) thick "
                           f"shows partial-volumed, fainter than it is: small lesions may be missed and each lesion's "
                           f"extent across slices is uncertain, so the burden (or 'no lesion') is approximate")
        if self.mirrored_left_out:
            reasons.append(f"{self.mirrored_left_out * self.voxel_ml:.2f} mL of faint bright tissue mirrored by equally "
                           f"bright tissue across the brain's midline was left out as normal grey matter (deep grey "
                           f"nuclei, cortex): a faint lesion there would be missed")
        if self.faint_left_out * self.voxel_ml * 1000.0 >= MR_FAINT_REPORT_MM3:
            reasons.append(f"{self.faint_left_out * self.voxel_ml:.2f} mL of faint, thin bright "
                           f"tissue (or faint tissue beside a brighter lesion; barely above the lesion threshold) "
                           f"was left out as grey matter (cortex, deep grey nuclei): a faint lesion of that kind "
                           f"would be missed")
        if self.folded_left_out * self.voxel_ml * 1000.0 >= MR_FAINT_REPORT_MM3:
            reasons.append(f"{self.folded_left_out * self.voxel_ml:.2f} mL of faint bright tissue within "
                           f"{MR_SULCAL_DEPTH_MM:g} mm of the brain's surface was left out as cortex (on "
                           f"{self.slice_mm:g} mm slices sulci thinner than a slice show no dark CSF beside the "
                           f"cortex lining them): a faint lesion near the cortex would be missed")
        if self.lining_voxels and self.lining_voxels >= MR_SHOULDER_REPORT_SHARE * max(found, 1):
            reasons.append(f"{self.lining_voxels * self.voxel_ml:.2f} mL of the lesions found is faint tissue along the "
                           f"ventricles, no brighter than grey matter can be: counted as a periventricular lesion load, "
                           f"but it may be normal periventricular tissue, so the burden may be too high")
        if self.shoulder_voxels and self.shoulder_voxels >= MR_SHOULDER_REPORT_SHARE * max(found, 1):
            reasons.append(f"{self.shoulder_voxels * self.voxel_ml:.2f} mL of the lesions found is fainter plaque on the "
                           f"flank of a brighter lesion, with no bright centre of its own, cut at its own half-maximum "
                           f"edge: where it ends and the brighter lesion's fading edge begins is uncertain, so the "
                           f"burden is approximate")
        if self.bias_darkened >= MR_BIAS_REPORT_SHARE:
            reasons.append(f"the image brightens across the brain (an uncorrected coil bias field): its bright side "
                           f"was darkened by up to {100 * self.bias_darkened:.0f}% to the rest's white-matter level "
                           f"before the search, so lesions there are measured against an estimated level and the "
                           f"burden (or 'no lesion') is approximate; a bias-corrected (e.g. N4) scan gives a firmer "
                           f"answer")
        if not self.kept or self.lesion_median is None:
            return "; ".join(reasons) or None
        if not self.tissue.grey_peak:
            reasons.append("no separate grey-matter peak in this scan's histogram (on real FLAIR grey matter is "
                           "about as bright as faint lesion edges): bright grey matter (cortex, hippocampus) may be "
                           "counted and faint lesion edges missed, so the burden is approximate")
        elif (contrast := self.tissue.grey_contrast(self.lesion_median)) < MR_MIN_GM_CONTRAST:
            reasons.append(f"the lesions found are only {contrast:.1f} SDs brighter than grey matter (cortex and "
                           f"normal grey matter reach that level)")
        share = found / max(self.brain_voxels, 1)
        if share > MR_MAX_BURDEN_FRACTION:
            reasons.append(f"the lesions found cover {share:.0%} of the brain region (the image may not be a FLAIR "
                           f"or T2, or the region holds scalp)")
        confident = found - self.rim_voxels
        faint = self.rim_voxels + self.left_out_rim_voxels
        if faint > MR_MAX_RIM_FRACTION * max(confident, 1):
            span = (f" (between {confident * self.voxel_ml:.2f} and {(confident + faint) * self.voxel_ml:.2f} mL)"
                    if self.voxel_ml else "")
            reasons.append(f"the lesions' extent is uncertain: {faint / max(confident, 1):.0%} more voxels than their "
                           f"confident part lie between the rim and core levels around them ({self.rim_voxels} counted"
                           f", {self.left_out_rim_voxels} left out where the surroundings are as bright), so the "
                           f"burden depends on where the faint edge is drawn{span}")
        return "; ".join(reasons) or None


def _sphericity(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Volume of ``mask`` over the sphere spanning its largest extent (mm, `_extent_mm`)."""
    where = np.nonzero(mask)
    extent = max(_extent_mm(int(w.max() - w.min()) + 1, sp, axis == 0)
                 for axis, (w, sp) in enumerate(zip(where, spacing)))
    return float(where[0].size) * float(np.prod(spacing)) / (math.pi / 6.0 * extent**3)


def _thick_share(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Share of ``mask`` within balls of `MR_THICK_MM` radius that fit inside it (centred on voxels
    at least that far from its edge, by voxel centres)."""
    padded = np.pad(mask, 1)
    centres = ndimage.distance_transform_edt(padded, sampling=spacing) >= MR_THICK_MM
    if not centres.any():
        return 0.0
    covered = ndimage.distance_transform_edt(~centres, sampling=spacing) <= MR_THICK_MM
    return float(np.count_nonzero(covered & padded)) / float(np.count_nonzero(mask))


def mr_hyperintense_lesion(data: np.ndarray, spacing: tuple[float, float, float], search: np.ndarray) -> MRLesions:
    """Hyperintense lesions (FLAIR/T2) within ``search``.

    After a `MR_SMOOTH_MM` Gaussian, cores exceed `BrainTissue.seed_level` at least
    `MR_SURFACE_MM` inside the brain region; each lesion is the connected set of voxels above
    `BrainTissue.grow_level` and above half way from white matter to its core's median (a
    half-maximum edge for a bright lesion) holding a core, each brightness summit of a component its
    own lesion with its own edge (`_half_maximum_parts`), kept from `MR_MIN_LESION_MM3` when
    compact or thick (`MR_MIN_SPHERICITY`, `MR_THICK_MM`) and not cut by the field of view, nor
    faint with a mirror image as bright across the brain's midline (`MR_MIRROR_K`: deep grey nuclei),
    nor barely brighter than the seeds and thin (`MR_FAINT_PEAK_K`: grey matter) or, on thick slices,
    within the folded cortex (`MR_SULCAL_DEPTH_MM`), nor split from a
    brighter lesion and fainter than `MR_FAINT_K` unless on the ventricles' lining (`MR_LINING_MM`).
    """
    depth = BrainDepth.of(data, spacing)
    brain = depth.region()
    smoothed = ndimage.gaussian_filter(data.astype(np.float32, copy=False),
                                       [MR_SMOOTH_MM / s for s in spacing])
    tissue = brain_tissue(smoothed[brain])
    # the levels stay those of the brain as scanned (`_flatten_bias` only darkens its bright side down
    # to them): its SD multiples were set on scans whose bias widened that SD
    smoothed, darkened = _flatten_bias(smoothed, brain, tissue, spacing)
    allowed = brain & search
    band = _cortex_band(smoothed, tissue, brain, spacing)
    cortex = band.band
    # where the cortex band applies, cores brighter than any cortex seed lesions however near the
    # region's edge: deep sulci cut it, and a lesion beside one has no core `MR_SURFACE_MM` inside
    clear = _clear_of_cortex(smoothed, tissue, allowed, spacing) if cortex.any() else cortex
    seeds = (smoothed > tissue.seed_level) & allowed & ~cortex & ~band.reach & depth.region(MR_SURFACE_MM)
    seeds |= clear
    grow = (smoothed > tissue.grow_level) & allowed
    labels, n = ndimage.label(grow & ~cortex, structure=CONN26)
    # a piece the cortex band cut from a bright cortical network lies along it
    along_cortex = ndimage.binary_dilation(grow & cortex, CONN26) if cortex.any() else cortex
    out = np.zeros(labels.shape, dtype=np.int32)
    contrast = brain_contrast(smoothed, brain, spacing)
    faint_level = tissue.white + MR_FAINT_K * tissue.spread
    bright_cortex = contrast is not None and contrast.brighter >= MR_BRIGHT_CORTEX_SHARE

    # sulcal CSF and the ventricles are read only when a faint part needs them, once
    @functools.cache
    def sulci() -> np.ndarray:
        return _sulcal_csf(smoothed, tissue, brain, depth)

    @functools.cache
    def ventricles() -> np.ndarray:
        return _ventricles(smoothed, tissue, brain, depth, sulci())

    @functools.cache
    def folds() -> np.ndarray:
        return depth.grid.upsample(depth.depth <= depth.margin + MR_SULCAL_DEPTH_MM)

    cortex_like = 0
    midline = _midline(brain)
    mirrored = 0
    faint = 0
    folded = 0
    thick_slices = spacing[0] > MR_THICK_SLICE_MM
    min_voxels = MR_MIN_LESION_MM3 / float(np.prod(spacing))
    mirror_min_voxels = MR_MIRROR_MIN_MM3 / float(np.prod(spacing))
    kept: list[int] = []
    shouldered = np.zeros(labels.shape, dtype=bool)
    lined = np.zeros(labels.shape, dtype=bool)
    cores = np.zeros(n + 1)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[np.unique(labels[seeds])] = True
    for label, obj in enumerate(ndimage.find_objects(labels), start=1):
        if obj is None or not seeded[label]:
            continue
        region = labels[obj] == label
        core = region & seeds[obj]
        cores[label] = float(np.median(smoothed[obj][core]))
        for lesion, level, split, shoulder in _half_maximum_parts(smoothed[obj], region, core, tissue, spacing):
            # a lesion on the field of view's edge is cut anatomy (neck, scalp) in the head region; the
            # faint component around it may reach the edge along a periventricular lining or cortex
            if _on_the_edge(lesion, obj, labels.shape):
                continue
            # a faint summit split from a brighter lesion is grey matter beside it more often than a
            # lesion (cortex, a deep grey nucleus; tuning seeds 0-59: 2.2-3.7 SDs), unless it lies on the
            # ventricles' lining far from sulcal CSF with no bright mirror image (a periventricular load)
            below_faint = float(np.median(smoothed[obj][lesion])) < faint_level
            # a bright twin across the midline: grey matter is symmetric, lesions seldom are (asked at most once)
            twinned = functools.cache(lambda lesion=lesion, obj=obj: _mirrored_level(lesion, obj, smoothed, midline)
                                      > tissue.white + MR_MIRROR_K * tissue.spread)
            if split and below_faint:
                if (_near(lesion, obj, sulci(), spacing, MR_LINING_CLEAR_MM)
                        or not _touches(lesion, obj, ventricles(), spacing, MR_LINING_MM)
                        or twinned()):
                    faint += int(np.count_nonzero(lesion))
                    continue
                lined[obj] |= lesion
            if (along_cortex[obj][lesion].mean() >= MR_ALONG_CORTEX_SHARE
                    and level < tissue.white + MR_CORTEX_CLEAR_K * tissue.spread
                    and not clear[obj][lesion].any()):
                continue
            if bright_cortex and below_faint:
                if _near(lesion, obj, sulci(), spacing, MR_CORTEX_MM + MR_CORTEX_NEAR_MM):
                    cortex_like += int(np.count_nonzero(lesion))
                    continue
            # a summit split from a brighter lesion is tested for a twin at any level: a deep grey nucleus
            # beside a bright periventricular lesion is as bright as moderate lesions (4 SDs)
            if ((split or below_faint) and lesion.sum() >= mirror_min_voxels
                    and _sphericity(lesion, spacing) >= MR_MIN_SPHERICITY
                    and twinned()):
                mirrored += int(np.count_nonzero(lesion))
                continue
            if float(np.percentile(smoothed[obj][lesion], 90)) < tissue.white + MR_FAINT_PEAK_K * tissue.spread:
                deepest = float(_depth_in_box(lesion, spacing).max())
                if deepest < MR_FAINT_MIN_DEPTH_MM:
                    faint += int(np.count_nonzero(lesion))
                    continue
                # on thick slices cortex in the folds is as deep as a plaque (`MR_FOLD_MAX_DEPTH_MM`)
                if thick_slices and deepest < MR_FOLD_MAX_DEPTH_MM and folds()[obj][lesion].mean() >= 0.5:
                    folded += int(np.count_nonzero(lesion))
                    continue
            if lesion.sum() >= min_voxels and (_sphericity(lesion, spacing) >= MR_MIN_SPHERICITY
                                               or _thick_share(lesion, spacing) >= MR_THICK_SHARE):
                if label not in kept:
                    kept.append(label)
                out[obj][lesion] = label
                if shoulder:
                    shouldered[obj] |= lesion
    found = out > 0
    median = float(np.median(smoothed[found])) if found.any() else None
    rim, left_out = _grow_rims(out, smoothed, tissue, cores, spacing, allowed)
    return MRLesions(out, kept, tissue, int(np.count_nonzero(brain)), median, rim, left_out,
                     float(np.prod(spacing)) / 1000.0, contrast,
                     cortical_left_out=int(np.count_nonzero(cortex & (smoothed > tissue.grow_level))) + cortex_like,
                     slice_mm=float(spacing[0]), mirrored_left_out=mirrored, faint_left_out=faint,
                     folded_left_out=folded,
                     bias_darkened=darkened, shoulder_voxels=int(np.count_nonzero(shouldered & found)),
                     lining_voxels=int(np.count_nonzero(lined & found)))


def _flatten_bias(smoothed: np.ndarray, brain: np.ndarray, tissue: BrainTissue,
                  spacing: tuple[float, float, float]) -> tuple[np.ndarray, float]:
    """``smoothed`` divided by its smooth white-matter level relative to ``tissue.white`` (a receive-coil
    bias field) where that level lies more than `MR_BIAS_TOLERANCE_K` white-matter SDs above it (down to
    that), so that one set of levels fits the brain's bright side too.

    An uncorrected 2-D FLAIR (real scans as acquired, brain-MR stress scans with a 15-20 % bias) has
    white matter on its bright side 2-3 SDs above the histogram's white matter: the grow level
    (`MR_GROW_WM_K`) then takes whole lobes of normal tissue, cortex first, as one faint lesion
    (dev stress seeds 262 and 302: 85 mL found for 1-3 mL of lesion), while faint lesions on the dark
    side fall below the levels. The level is a polynomial of degree `MR_BIAS_DEGREE` in x, y, z fitted
    to the logarithm of white-matter-like brain voxels on a `MR_BIAS_GRID_MM` grid (`MR_BIAS_WIDE_K`,
    then `MR_BIAS_LOW_K`/`MR_BIAS_HIGH_K` about white matter of the image flattened so far, for
    `MR_BIAS_PASSES` passes): a polynomial follows the field to the brain's edge, where a local mean
    would be pulled towards the inside. An N4-corrected FLAIR is left as it was (the real tuning FLAIRs'
    lesions found are unchanged). Also returns the largest share by which a brain voxel was darkened."""
    grid = CoarseGrid.for_spacing(smoothed.shape, spacing, MR_BIAS_GRID_MM)
    values = grid.sample(smoothed)
    coarse = grid.coarse_spacing(spacing)
    inside = ((ndimage.distance_transform_edt(grid.sample(brain), sampling=coarse) > MR_BIAS_DEPTH_MM)
              & (values > 0))
    if np.count_nonzero(inside) < MR_BIAS_MIN_VOXELS:
        return smoothed, 0.0
    where = np.nonzero(inside)
    centre = [float(np.mean(w)) for w in where]
    powers = [(i, j, k) for i in range(MR_BIAS_DEGREE + 1) for j in range(MR_BIAS_DEGREE + 1 - i)
              for k in range(MR_BIAS_DEGREE + 1 - i - j)]

    def axes(index: list[np.ndarray]) -> list[np.ndarray]:
        # coarse voxel indices as mm about the brain's centre, in units of `MR_BIAS_SCALE_MM`
        return [((w - c) * s / MR_BIAS_SCALE_MM).astype(np.float32) for w, c, s in zip(index, centre, coarse)]

    at = axes(list(where))
    design = np.stack([at[0] ** i * at[1] ** j * at[2] ** k for i, j, k in powers], axis=-1).astype(np.float64)
    logs = np.log(values[where].astype(np.float64) / tissue.white)
    fit = np.zeros(len(powers))
    for npass in range(MR_BIAS_PASSES):
        flat = tissue.white * np.exp(logs - design @ fit)
        # levels of the image flattened so far: the bias widens white matter's histogram peak
        now = brain_tissue(flat) if npass else tissue
        low, high = (MR_BIAS_WIDE_K, MR_BIAS_WIDE_K) if npass == 0 else (MR_BIAS_LOW_K, MR_BIAS_HIGH_K)
        chosen = (flat > now.white - low * now.spread) & (flat < now.white + high * now.spread)
        if np.count_nonzero(chosen) < MR_BIAS_MIN_VOXELS:
            return smoothed, 0.0
        fit = np.linalg.lstsq(design[chosen], logs[chosen], rcond=None)[0]
    # the field on the fine grid: fine voxel v lies at coarse index (v - stride // 2) / stride
    fine = axes(list(np.meshgrid(*[(np.arange(n) - st // 2) / st for n, st in zip(smoothed.shape, grid.strides)],
                                 indexing="ij", sparse=True)))
    log_field = np.zeros(smoothed.shape, dtype=np.float32)
    for (i, j, k), c in zip(powers, fit):
        log_field += np.float32(c) * (fine[0] ** i * fine[1] ** j * fine[2] ** k)
    # only taken away where the field brightens white matter by more than `MR_BIAS_TOLERANCE_K` of its SDs
    # (down to that): lifting the dark side lifted its cortex to lesion level (dev stress seeds 1, 4, 7
    # on 3-5 mm slices: +1-2 mL of cortex each), and the levels were set on scans with milder fields
    tolerance = math.log1p(MR_BIAS_TOLERANCE_K * tissue.spread / tissue.white)
    excess = np.maximum(log_field - tolerance, 0.0)
    darkened = 1.0 - math.exp(-float(excess[brain].max())) if brain.any() else 0.0
    return (smoothed * np.exp(-excess)).astype(np.float32), darkened


def _half_maximum_parts(values: np.ndarray, region: np.ndarray, core: np.ndarray, tissue: BrainTissue,
                        spacing: tuple[float, float, float]) -> list[tuple[np.ndarray, float, bool, bool]]:
    """The lesions within one grown component ``region`` (a mask over ``values``, the smoothed scan in
    its box), each as its voxels above its half-maximum edge connected to its ``core`` voxels, its
    cores' median level, whether it was split from a brighter lesion and whether it is a plaque on a
    brighter lesion's flank (`_shoulders`); none when all cores lie at or below their edge.

    A component above the grow level often joins several lesions through their faint surroundings
    (a confluent periventricular load, a moderate plaque beside a bright one). Cut at one edge, half
    way from white matter to its brightest lesion's peak, its fainter lesions lay below that edge and
    were lost: on tuning brain-MR seeds 0-59 and 300-339 the largest share of the lesion volume
    missed. So a brightness summit standing `MR_BASIN_K` white-matter SDs above the saddle to a
    brighter one, most of whose cores lie below the component's edge, is a lesion of its own: its
    watershed basin is cut half way to its own peak and tested on its own (cortex, mirror, faint and
    shape rules: bright cortex joined to a lesion is not let in with it), and left out when its median
    lies below `MR_FAINT_K` (grey matter beside the lesion; `mr_hyperintense_lesion` keeps those on
    the ventricles' lining, `MR_LINING_MM`). The rest of the component
    is one lesion cut at the component's edge, as before: summits of similar height are texture
    within one lesion or one structure (a deep grey nucleus, tested whole by the mirror rule). Cores
    each lesion leaves below its edge may be a plaque on its flank with no summit (`_shoulders`)."""
    edge = _half_maximum_edge(values, region, core, tissue)
    basins = _lesion_basins(values, region, core, tissue)
    rest = region.copy()
    found = []
    for basin in range(1, int(basins.max()) + 1):
        part = basins == basin
        own = part & core
        if not own.any():
            continue
        if float(np.median(values[own])) <= edge:  # most of its cores lie below the component's edge
            rest &= ~part
            found.append((part, own, _half_maximum_edge(values, part, own, tissue), True))
    if (rest & core).any():
        found.append((rest, rest & core, edge, False))
    lesions = []
    for part, own, level, split in found:
        pieces, _ = ndimage.label(part & (values > level), structure=CONN26)
        lesion = np.isin(pieces, np.unique(pieces[own & (pieces > 0)])) & (pieces > 0)
        if lesion.any():
            lesions.append((lesion, float(np.median(values[own])), split, False))
            lesions += _shoulders(values, part, own, lesion, tissue, spacing)
    return lesions


def _shoulders(values: np.ndarray, part: np.ndarray, core: np.ndarray, lesion: np.ndarray, tissue: BrainTissue,
               spacing: tuple[float, float, float]) -> list[tuple[np.ndarray, float, bool, bool]]:
    """Fainter lesions on the flank of the brighter ``lesion`` cut from ``part`` (its ``core`` voxels):
    pieces of cores left below its edge that are thick (`MR_THICK_SHARE`, `MR_THICK_MM`), each with its own
    half-maximum edge over the voxels of ``part`` nearer to it than to ``lesion`` (split ones), unless
    mostly on the thick slices next to ``lesion`` (`MR_SHOULDER_MAX_SHADOW`).

    A plaque of flat, moderate brightness (a confluent periventricular load, 5-7 SDs) joined through its
    faint surroundings to a bright lesion rises monotonically into it: it has no summit of its own for
    `_lesion_basins` and lay wholly below the bright lesion's edge (dev stress seeds 26, 10: 5 and 2 mL
    found as 0.05). The bright lesion's own fading skirt also holds cores below its edge, but as a
    thin shell."""
    left = core & ~lesion
    if not left.any():
        return []
    deep = _depth_in_box(left, spacing) >= MR_THICK_MM
    if not deep.any():
        return []
    pieces, _ = ndimage.label(left, structure=CONN26)
    to_lesion = ndimage.distance_transform_edt(~lesion, sampling=spacing)
    # on thick slices a piece mostly right above or below the lesion is the lesion itself partial-volumed
    # into the neighbouring slice (dev seeds 1, 25 on 4-5 mm slices: white matter at 5 SDs, not lesion);
    # on thin ones that slice is as near as the in-plane neighbours
    shadow = np.zeros_like(lesion)
    if spacing[0] > MR_THICK_SLICE_MM:
        shadow[1:] |= lesion[:-1]
        shadow[:-1] |= lesion[1:]
    found = []
    for piece in np.unique(pieces[deep]):
        own = pieces == piece
        if _thick_share(own, spacing) < MR_THICK_SHARE:
            continue
        nearer = part & ~lesion & (ndimage.distance_transform_edt(~own, sampling=spacing) < to_lesion)
        level = _half_maximum_edge(values, nearer, own, tissue)
        grown, _ = ndimage.label(nearer & (values > level), structure=CONN26)
        shoulder = np.isin(grown, np.unique(grown[own & (grown > 0)])) & (grown > 0)
        if shoulder.any() and (shoulder & shadow).mean(where=shoulder) <= MR_SHOULDER_MAX_SHADOW:
            found.append((shoulder, float(np.median(values[own])), True, True))
    return found


def _half_maximum_edge(values: np.ndarray, region: np.ndarray, core: np.ndarray, tissue: BrainTissue) -> float:
    """Half way from white matter to the peak of the lesion ``region`` (its ``core`` voxels' median; of a
    bright one, above `MR_RIM_MAX_CORE_K` SDs, its `MR_PEAK_PERCENTILE` percentile when higher: its
    cores' median lies far below its peak when it fades gradually)."""
    peak = float(np.median(values[core]))
    if peak > tissue.white + MR_RIM_MAX_CORE_K * tissue.spread:
        peak = max(peak, float(np.percentile(values[region], MR_PEAK_PERCENTILE)))
    return (tissue.white + peak) / 2.0


def _lesion_basins(values: np.ndarray, region: np.ndarray, core: np.ndarray, tissue: BrainTissue) -> np.ndarray:
    """Watershed basins (labels from 1) of ``region`` around its summits: regional maxima of ``values``
    `MR_BASIN_K` white-matter SDs high (lower ones are texture within a lesion) that lie in ``core``;
    a region with one such summit is one basin."""
    from skimage.morphology import h_maxima  # here: importing skimage costs a second
    from skimage.segmentation import watershed

    inside = np.where(region, values, float(values[region].min()))
    summits = h_maxima(inside, MR_BASIN_K * tissue.spread).astype(bool) & core
    markers, count = ndimage.label(summits, structure=CONN26)
    if count <= 1:
        return region.astype(np.int32)
    return watershed(-inside, markers, mask=region)


def _midline(brain: np.ndarray) -> float:
    """The x index (last axis, left-right) of the brain region's centre: about its midline."""
    counts = brain.sum(axis=(0, 1), dtype=np.int64)
    return float(np.dot(np.arange(counts.size), counts)) / max(float(counts.sum()), 1.0)


def _mirrored_level(part: np.ndarray, box: tuple[slice, ...], smoothed: np.ndarray, midline: float) -> float:
    """Upper quartile of ``smoothed`` over the mirror image of ``part`` (a mask within ``box``) across
    the x index ``midline``; -inf when more than half of the mirror falls outside the image or it
    overlaps the part by more than `MR_MIRROR_MAX_SELF`. The quartile, not the median: the two sides of a brain are mirrored to
    a few mm, so part of the image may miss its twin."""
    z, y, x = (w + sl.start for w, sl in zip(np.nonzero(part), box))
    mirror = np.round(2.0 * midline - x).astype(np.intp)
    inside = (mirror >= 0) & (mirror < smoothed.shape[2])
    if inside.mean() < 0.5:
        return -np.inf
    z, y, mirror = z[inside], y[inside], mirror[inside]
    in_box = (mirror >= box[2].start) & (mirror < box[2].stop)
    own = np.zeros(mirror.size, dtype=bool)
    own[in_box] = part[z[in_box] - box[0].start, y[in_box] - box[1].start, mirror[in_box] - box[2].start]
    if own.mean() > MR_MIRROR_MAX_SELF:
        return -np.inf
    return float(np.percentile(smoothed[z, y, mirror], 75))


def _clear_of_cortex(smoothed: np.ndarray, tissue: BrainTissue, allowed: np.ndarray,
                     spacing: tuple[float, float, float]) -> np.ndarray:
    """Lesion cores no cortex reaches: connected voxels above `MR_CORTEX_CLEAR_K` white-matter SDs
    over white matter and `MR_SEED_GM_K` grey-matter spreads over grey matter (and the seed level),
    at least `MR_CLEAR_MIN_MM3` of them (the cortex's bright tail reaches that level in specks)."""
    level = max(tissue.seed_level, tissue.white + MR_CORTEX_CLEAR_K * tissue.spread,
                tissue.grey + MR_SEED_GM_K * tissue.grey_spread)
    bright = (smoothed > level) & allowed
    labels, n = ndimage.label(bright, structure=CONN26)
    large = component_sizes(labels, n) * float(np.prod(spacing)) >= MR_CLEAR_MIN_MM3
    large[0] = False
    return large[labels]


def _sulcal_csf(smoothed: np.ndarray, tissue: BrainTissue, brain: np.ndarray, depth: BrainDepth) -> np.ndarray:
    """CSF in the sulci: voxels darker than white matter by `MR_CSF_WM_K` of its SDs, connected to
    the dark surroundings of the brain region (and those surroundings), within `MR_SULCAL_DEPTH_MM`
    of its edge (the ventricles the region's cuts join to them lie deeper)."""
    shallow = depth.depth <= depth.margin + MR_SULCAL_DEPTH_MM
    return _outer_csf(smoothed, tissue, brain) & depth.grid.upsample(shallow)


def _ventricles(smoothed: np.ndarray, tissue: BrainTissue, brain: np.ndarray, depth: BrainDepth,
                sulci: np.ndarray) -> np.ndarray:
    """The ventricles: brain voxels darker than white matter by `MR_CSF_WM_K` of its SDs, deeper than
    `MR_SULCAL_DEPTH_MM` inside the brain region and not sulcal CSF (``sulci``)."""
    deep = depth.grid.upsample(depth.depth > depth.margin + MR_SULCAL_DEPTH_MM)
    return (smoothed < tissue.white - MR_CSF_WM_K * tissue.spread) & brain & deep & ~sulci


def _touches(part: np.ndarray, box: tuple[slice, ...], target: np.ndarray, spacing: tuple[float, float, float],
             reach_mm: float) -> bool:
    """Whether some voxel of ``part`` (a mask within ``box``) lies within ``reach_mm`` of ``target`` (a mask
    of the whole array)."""
    return float(_distances(part, box, target, spacing, reach_mm).min()) <= reach_mm


def _distances(part: np.ndarray, box: tuple[slice, ...], target: np.ndarray, spacing: tuple[float, float, float],
               reach_mm: float) -> np.ndarray:
    """The distances (mm) of the voxels of ``part`` (a mask within ``box``) from ``target`` (a mask of the
    whole array), taken in the box grown by ``reach_mm`` (farther ones are at least that far)."""
    pad = [math.ceil(max(reach_mm, 0.0) / s) + 1 for s in spacing]
    grown = grown_box(box, pad, target.shape)
    distance = ndimage.distance_transform_edt(~target[grown], sampling=spacing)
    inner = tuple(slice(sl.start - g.start, sl.stop - g.start) for sl, g in zip(box, grown))
    return distance[inner][part]


def _near(part: np.ndarray, box: tuple[slice, ...], target: np.ndarray, spacing: tuple[float, float, float],
          reach_mm: float) -> bool:
    """Whether the median voxel of ``part`` (a mask within ``box``) lies within ``reach_mm`` of ``target``
    (a mask of the whole array); the distances are taken in the box grown by that reach."""
    return float(np.median(_distances(part, box, target, spacing, reach_mm))) < reach_mm


def _outer_csf(smoothed: np.ndarray, tissue: BrainTissue, brain: np.ndarray) -> np.ndarray:
    """Voxels darker than white matter by `MR_CSF_WM_K` of its SDs, or outside ``brain``, connected to
    the outside (enclosed ventricles do not count)."""
    dark = (smoothed < tissue.white - MR_CSF_WM_K * tissue.spread) | ~brain
    parts, _ = ndimage.label(dark, structure=CONN26)
    return np.isin(parts, np.unique(parts[~brain])) & (parts > 0)


def _on_the_edge(part: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``part`` (a mask within ``box`` of an array of ``shape``) reaches the array's edge."""
    for axis, (sl, size) in enumerate(zip(box, shape)):
        if size > 1 and ((sl.start == 0 and np.take(part, 0, axis=axis).any())
                         or (sl.stop == size and np.take(part, -1, axis=axis).any())):
            return True
    return False


@dataclass
class CortexBand:
    """`_cortex_band`: voxels that are cortex (``band``) and those near enough to sulcal CSF to be
    cortex whose tail is too faint to seed a lesion (``reach``)."""

    band: np.ndarray
    reach: np.ndarray


def _cortex_band(smoothed: np.ndarray, tissue: BrainTissue, brain: np.ndarray,
                 spacing: tuple[float, float, float]) -> CortexBand:
    """Voxels that may be cortex lining the sulci and not lesion: within `MR_CORTEX_MM` of sulcal
    CSF (dark voxels, `MR_CSF_WM_K`, connected to the CSF or background around the brain region;
    the enclosed ventricles do not count) and less than `MR_CORTEX_CLEAR_K` white-matter SDs above
    white matter. Only where grey matter lies at least `MR_CORTEX_GM_K` SDs above white matter
    but is no peak of its own (`BrainTissue.grey_peak`, whose levels already clear it): a bright
    shoulder (high grey-white contrast, 2-D FLAIR) whose tail is as bright as a lesion, and a
    juxtacortical lesion lies mostly in white matter beside it, or is brighter. On FLAIR with
    little grey-white contrast (3-D, N4-corrected) the band is empty: there periventricular
    lesions lie near CSF that reaches the brain's edge through the region's cuts. Within
    `MR_CORTEX_REACH_MM` of that CSF, voxels below `MR_CORTEX_SEED_K` SDs may be cortex too (beside
    sulci too thin to show dark): they grow lesions but do not seed them (``reach``)."""
    empty = np.zeros(brain.shape, dtype=bool)
    if tissue.grey_peak or tissue.grey - tissue.white < MR_CORTEX_GM_K * tissue.spread:
        return CortexBand(empty, empty)
    outer = _outer_csf(smoothed, tissue, brain)
    if not outer.any():
        return CortexBand(empty, empty)
    distance = ndimage.distance_transform_edt(~outer, sampling=spacing)
    band = (distance <= MR_CORTEX_MM) & brain & (smoothed < tissue.white + MR_CORTEX_CLEAR_K * tissue.spread)
    reach = (distance <= MR_CORTEX_REACH_MM) & brain & (smoothed < tissue.white + MR_CORTEX_SEED_K * tissue.spread)
    return CortexBand(band, reach)


def _grow_rims(labels: np.ndarray, smoothed: np.ndarray, tissue: BrainTissue, cores: np.ndarray,
               spacing: tuple[float, float, float], allowed: np.ndarray) -> tuple[int, int]:
    """Grow each lesion in ``labels`` (in place) over its faint rim: a hysteresis from the confident
    lesion down to `MR_RIM_WM_K` white-matter SDs and `MR_RIM_CORE_FRACTION` of the way to its
    core's median (``cores``, by label), and above grey matter where that is a peak of its own;
    or, touching CSF-suppressed ventricles (`MR_CSF_WM_K`), any voxel brighter than CSF; within
    `MR_RIM_MM` of it. A lesion's rim larger than `MR_RIM_MAX_SHARE` of the lesion is left out; a
    lesion with a core brighter than `MR_RIM_MAX_CORE_K` SDs has a sharp edge and no rim.
    Returns the rim voxels added and those left out."""
    found = labels > 0
    box = bounding_box(found)
    if box is None:
        return 0, 0
    reach = [max(1, math.ceil(MR_RIM_MM / s)) + 1 for s in spacing]
    box = grown_box(box, reach, labels.shape)
    sub, values, inside = labels[box], smoothed[box], allowed[box]
    lesion = sub > 0
    # one step along a thick axis counts as `MR_RIM_MM`, so the neighbouring slice is reached
    distance, nearest = ndimage.distance_transform_edt(~lesion, sampling=[min(s, MR_RIM_MM) for s in spacing],
                                                       return_indices=True)
    closest = sub[tuple(nearest)]
    level = np.maximum(tissue.white + MR_RIM_WM_K * tissue.spread,
                       tissue.white + MR_RIM_CORE_FRACTION * (cores - tissue.white))
    if tissue.grey_peak:
        level = np.maximum(level, tissue.grey)
    level[cores > tissue.white + MR_RIM_MAX_CORE_K * tissue.spread] = np.inf
    csf = values < tissue.white - MR_CSF_WM_K * tissue.spread
    faint = (values > level[closest]) | ndimage.binary_dilation(csf, CONN6)
    candidates = faint & inside & ~csf & (distance <= MR_RIM_MM + 1e-6)
    rim = ndimage.binary_propagation(lesion, CONN26, mask=lesion | candidates) & ~lesion
    owner = closest[rim]
    sizes = np.bincount(sub[lesion], minlength=int(sub.max()) + 1)
    rims = np.bincount(owner, minlength=sizes.size)
    accepted = rims <= MR_RIM_MAX_SHARE * sizes
    take = accepted[owner]
    where = tuple(axis[take] for axis in np.nonzero(rim))
    sub[where] = owner[take]
    return int(take.sum()), int((~take).sum())
