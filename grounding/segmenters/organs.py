"""Classical abdominal organs on CT: liver, spleen, left and right kidney. A heuristic.

HU bands come from the scan itself (`grounding.segmenters.ct_statistics`): the fat/soft-tissue
threshold (Otsu inside the body), the contrast phase (aorta in front of the spine, liver HU) and,
per organ, the mode of the smoothed HU where that organ is expected within the phase's broad
prior band (`PRIOR_HU`); the organ's band is that mode +- `HALF_WIDTH_HU`, clipped to the prior
except for the liver (on plain CT reaching only `LIVER_SPREADS_BELOW` of its own smoothed HU's
spreads below the mode, `_upper_spread`: its neighbours lie 5-15 HU darker; kidneys once enhanced:
everything above the mode minus `KIDNEY_BELOW_HU`, cortex and medulla, but not below the top of
the liver's band less `KIDNEY_ABOVE_LIVER_GAP_HU`, and in the arterial phase `KIDNEY_BELOW_AORTA_HU` below the
aorta's HU; only holes darker than the band's top are filled). All work is on the coarse grid of the chest
analysis (about 2.5 mm; block means, smoothed in-plane), so the organs of a 512 x 512 x 100 CT
take well under a second of CPU after the chest analysis; the result is brought to full
resolution by deciding the voxels of each organ's coarse boundary layer (inside it: the coarse
voxels beyond hold neighbouring soft tissue) with the full-resolution fat/soft-tissue threshold.

Per organ, in the order liver, kidneys, spleen on enhanced CT, liver, spleen, kidneys on plain CT
(each excluding the ones found before; enhanced, the brighter kidneys go before the spleen, whose
zone and band they share; on plain CT, where the bands overlap, the spleen, placed by the liver's
level, goes first). Positions are in world LPS mm with y measured along the spine (shifted per
slice so that the spine's front lies at one y: a patient lying at an angle to the scanner's axes,
`ct_statistics.body_frame`):

1. the body voxels in the organ's band (the liver's, and on noisy plain CT (`SPLEEN_VOTE_NOISE_SD_HU`)
   the spleen's, after a majority vote over 3 x 3 x 3 voxels: noise speckle; a spleen not found so is
   searched again without it), opened with a ball of `OPENING_MM` (cuts thin bridges);
   for the liver and the spleen only inside the rib cage as the lungs outline it (`_Lungs.cage`:
   per angle about the body's axis, `CAGE_INSIDE_MM` beyond the furthest lung voxel, wider where
   the skin is wider than at that lung's level): outside it lies the body wall, whose muscle has
   their HU on plain CT;
2. each component is split at its constrictions: **cores** (voxels at least `CORE_MM` inside
   it) seed a watershed on the distance map, each core's basin, limited to `REACH_MM` beyond the
   core, is one candidate (thin structures with no core, such as the abdominal wall, drop out);
   an enhanced kidney's cores are its bright part (at most `KIDNEY_CORE_BELOW_HU` below its mode):
   deep voxels of its band below that (an enhanced spleen touching it) make cores of their own,
   which no kidney takes, and the basins part where the HU drops;
3. candidates are chosen by where their core lies (`_zones`, world LPS mm relative to the
   midline (the spine), the body's centre, the spine and the lungs); the chosen one is joined by
   the touching candidates within `SAME_ORGAN_HU` of its HU that do not lie where another organ
   belongs (an organ cut at a constriction or by noise):

   * liver: the largest core on the patient's right, not thoracic (the heart: above the
     liver's core, between the two lungs' medial edges in a slice at least
     `THORACIC_LUNG_FRACTION` lung; the basal recesses wrap around liver and spleen laterally,
     so the lungs' centroids would put those organs "between" them), not among the back muscles;
     joining cores must not lie where the spleen, a kidney, the heart or the back muscles belong
     (on plain CT the paraspinal muscles have the liver's HU and touch its posterior edge); without
     one, the part of the liver the scan's lowest slice cuts under the right lung's base (`_cut_dome`:
     the dome at the bottom of a chest CT, or a liver whose zone's mode is muscle), always doubtful;
   * spleen: the largest core left of the midline by `SPLEEN_LATERAL_MM` (on plain CT
     `PLAIN_SPLEEN_LATERAL_MM`, less in a narrow patient: lateral to the left kidney; doubtful
     closer than that constant without a left kidney found medial to it), behind the body's
     centre, at least `ORGAN_MIN_DEPTH_MM` below the skin (not the body wall), not thoracic, below
     the found liver's top (the heart, with the left lung wrapped behind it, is not "between" the
     lungs) and no lower than `SPLEEN_BELOW_LIVER_MM` below its centre or `SPLEEN_BELOW_DOME_MM` below its top (not the
     left kidney; on enhanced CT, where the left kidney is found and taken first, down to its
     centre); without a liver, in a slice less than `SPLEEN_MAX_LUNG_FRACTION` lung (not the
     heart of a chest-only scan); its mode is looked for within `SPLEEN_FROM_LIVER_HU` of the
     liver's, at the spleen's levels (not the enhanced heart or kidney), no further out than
     `CAGE_MARGIN_MM` beyond the lungs' widest extent (not an arm beside the chest); when every
     search finds none, the spleen's top the scan's lowest slice cuts under the left lung's base
     (`_cut_dome`, as the liver's dome), always doubtful;
   * kidneys: per side the largest core beside the spine (`KIDNEY_ZONE_MM[0]` to
     `KIDNEY_CORE_MAX_MM` from its centre, no further forward than `KIDNEY_FRONT_MM` of its
     anterior edge and no further back than `KIDNEY_CORE_BEHIND_MM` (the back muscles), `ORGAN_MIN_DEPTH_MM`
     deep), below the chest (in a slice less than
     `KIDNEY_MAX_LUNG_FRACTION` lung), and delineated: at most `KIDNEY_MAX_SIMILAR_SHELL` of the
     shell around it of its own HU (not a piece cut out of a uniform region by the band). On plain CT
     whose kidneys read darker than the prior (its floor cut their band) those not found are searched
     again in a band read from the scan below the liver's HU (`_plain_kidney_band`), doubtful;

4. the chosen basins are grown back through the opening within the band (lower bound on the
   lightly smoothed HU; a portal-venous spleen, whose part beside the left kidney falls into basins
   of its own, up to `REACH_MM` beyond them: `_grow_reach`), hypodense regions the organ covers for
   at least `ENCLOSED_FRACTION` of their surface join it with the organ tissue beyond them (a lesion
   at the liver's edge), a rim
   of `RIM_MM` of partial volume with fat is taken back (for spleen and kidneys only down to halfway
   between the organ's HU and the darkest tissue beyond: not the muscle beside an enhanced spleen,
   which added 20-30 % on thick slices), and holes are filled slice by slice (vessels inside the
   liver are part of the liver). A plain spleen loses what it grew into the body wall's muscle (of its
   HU), shallower below the skin than the wall's inner surface where the lungs touch it at that angle
   (`_Lungs.beneath_wall`); that part stays out of the organs searched after it. Before growing, a plain
   spleen's chosen basins lose their thin outgrowths (`_thick_part`: bowel of its HU, mottled with fat,
   reaching far beyond where it joins), said as doubtful.

5. what cannot be told apart is said (`AbdomenOrgans.doubts`, reported through the segmenter's
   `search_weakness` as doubtful evidence): a spleen or left kidney on plain CT without the other
   found, the two touching broadly where their bands meet, a spleen below the left kidney, and a
   plain-CT liver or spleen with more than `WALL_FRACTION` of itself near the skin (the body wall), an
   enhanced left kidney without a spleen beside it (it may be the spleen), and a plain-CT spleen or
   kidney whose noise (`_noise_doubt`) is above `NOISY_PLAIN_SD_HU` (a liver's above
   `NOISY_PLAIN_LIVER_SD_HU`; noise hides their HU differences), a plain-CT liver with a ragged
   outline (`_ragged_doubt`: bowel mixed with fat joined it), and a spleen or kidney with much of
   its outline on tissue of its own band (`_guessed_boundary_doubt`).

No organ's core lies further out than `CAGE_MARGIN_MM` beyond the lungs' widest extent (an arm
beside the chest).

Works on partial coverage (a few slices), thick or thin slices and any in-plane size; an organ
cut by the field of view is measured as far as it is seen. Known limits: a fatty liver below
`PRIOR_HU`'s floor, a spleen or liver far from its usual side (situs inversus, massive
splenomegaly crossing the midline), organs touching broadly at the same HU without a
constriction (merged, or split where the watershed puts it: an enhanced spleen touching the left
kidney may be taken into it), plain CT where liver, spleen and the body wall's muscle lie within
15 HU and no lung bases are in the field to outline the cage, or below the lungs' outline where the
abdomen narrows (the liver leaks into the wall; doubtful when it reaches the skin), noisy plain CT (noise
SD above about 25 HU: the bands of spleen, kidney, muscle and bowel, 5-15 HU apart, break up; the
spleen is often missed or mis-found, and said to be doubtful when its kidney is not found), a
plain spleen and kidney of close HU where one of them is outside the field of view (the other
takes its place; doubtful), an arterial aorta merged with the spine in a slice where it is wider
than the vertebral body, kidney cysts and hydronephrosis
(holes only filled slice by slice), and the pancreas and bowel wall, which enhance like the liver
and may join it where they touch. Raises `SegmentationError` when no candidate fits (e.g. a chest
CT without the abdomen); the message says what was searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from grounding.segmenters.base import SegmentationError
from grounding.segmenters.chest import HU_AIR, LEFT, RIGHT, ChestLabels, refine_labels
from grounding.segmenters.ct_statistics import (
    EDGE_SMOOTH_MM,
    SPINE_HU,
    BodyFrame,
    ScanStatistics,
    aorta_hu,
    body_frame,
    contrast_phase,
    fat_edge,
    histogram_mode,
    smoothed_coarse_hu,
)
from grounding.segmenters.morphology import (
    CONN6,
    CoarseGrid,
    bounding_box,
    component_sizes,
    ellipsoid,
    fill_holes_slicewise,
    grown_box,
)
from imaging.volume import Volume

#: broad HU band of each organ per contrast phase (smoothed HU); the scan's own mode within it
#: centres the band actually used
PRIOR_HU: dict[str, dict[str, tuple[float, float]]] = {
    "non-contrast": {"liver": (38.0, 85.0), "spleen": (34.0, 62.0), "kidney": (15.0, 42.0)},
    "arterial": {"liver": (45.0, 120.0), "spleen": (75.0, 220.0), "kidney": (120.0, 450.0)},
    "portal-venous": {"liver": (70.0, 180.0), "spleen": (75.0, 200.0), "kidney": (110.0, 450.0)},
}
#: half width (HU) of each organ's band about its mode, per phase (arterial spleen is mottled)
HALF_WIDTH_HU: dict[str, dict[str, float]] = {
    "non-contrast": {"liver": 15.0, "spleen": 10.0, "kidney": 9.0},
    "arterial": {"liver": 18.0, "spleen": 45.0, "kidney": 0.0},
    "portal-venous": {"liver": 25.0, "spleen": 25.0, "kidney": 0.0},
}
#: the spleen's mode lies within (below, above) HU of the liver's, per phase: a little darker on plain
#: CT (a fatty liver can be darker still), about the same in the portal-venous phase, brighter and
#: mottled in the arterial phase
SPLEEN_FROM_LIVER_HU: dict[str, tuple[float, float]] = {
    "non-contrast": (-30.0, 5.0), "arterial": (-5.0, 90.0), "portal-venous": (-25.0, 35.0),
}
#: enhanced kidneys: their band starts no lower than this below the top of the liver's band
KIDNEY_ABOVE_LIVER_GAP_HU = 10.0
#: enhanced kidneys: the band reaches this far below the mode (medulla) and up to `KIDNEY_TOP_HU`
KIDNEY_BELOW_HU = 60.0
#: ... and its core is no more than this below the mode (an enhanced spleen, 90-140 HU, is not core)
KIDNEY_CORE_BELOW_HU = 35.0
KIDNEY_TOP_HU = 600.0
#: ... and, in the arterial phase, below the aorta's HU by this much
KIDNEY_BELOW_AORTA_HU = 50.0
#: plain-CT kidneys not found in the `PRIOR_HU` band, where the prior's floor cut that band, are searched again in a
#: band read from the scan (`_plain_kidney_band`): the mode of the kidneys' zone between these (below, above) HU below
#: the liver's mode, +- `KIDNEY_RELATIVE_HALF_HU`, never into the liver's band. Real plain CT can read darker than the
#: prior: the TotalSegmentator example (3 mm) has liver 47, spleen 35, back muscles 25, kidneys 14-20 HU (their
#: smoothed HU -2 to 24 from the 5th to the 95th percentile: cortex, medulla and sinus fat); the stress generator's
#: kidneys lie 10-37 HU below its livers. What that search finds is doubtful (`_plain_kidney_doubt`)
KIDNEY_PLAIN_BELOW_LIVER_HU = (10.0, 45.0)
KIDNEY_RELATIVE_HALF_HU = 15.0
#: a kidney's core lies no more than this (mm) behind the vertebral bodies' front: kidneys' centres lie at the
#: depth of the vertebral body (the real example's 6-8 mm behind its front, the stress generator's 13 mm in front
#: to 1 mm behind); further back lie the quadratus lumborum and the paraspinal muscles, whose plain HU may be the
#: kidneys' (the real example's back muscles, 60 mm behind, were taken for the right kidney once its band widened)
KIDNEY_CORE_BEHIND_MM = 30.0
#: radius (mm) of the opening that cuts thin bridges to neighbours of similar HU
OPENING_MM = {"liver": 4.0, "spleen": 3.5, "kidney": 3.0}
#: a core is the part of a candidate at least this deep (mm); basins reach this far beyond it
CORE_MM = {"liver": 10.0, "spleen": 7.0, "kidney": 7.0}
REACH_MM = {"liver": 14.0, "spleen": 18.0, "kidney": 12.0}
#: the spleen's and kidneys' cores lie at least this deep (mm) below the skin (the body wall's
#: muscles lie shallower)
ORGAN_MIN_DEPTH_MM = 25.0
#: HU within which the shell around a candidate counts as the same tissue, and the largest fraction
#: of such a shell a kidney may have
SIMILAR_HU = 10.0
KIDNEY_MAX_SIMILAR_SHELL = 0.7
#: cores of the liver's component within this HU of the liver's core join the liver
SAME_ORGAN_HU = 12.0
#: organ-zone geometry (mm)
SPLEEN_LATERAL_MM = 40.0
KIDNEY_ZONE_MM = (40.0, 130.0)
KIDNEY_FRONT_MM = 45.0
#: a kidney's core lies at most this far (mm) from the spine's centre (adult kidneys' centres lie
#: 50-90 mm from the midline; the spleen's, beside the left kidney on plain CT at a close HU, 85-120)
KIDNEY_CORE_MAX_MM = 100.0
#: a kidney's centre lies in a slice where lung is less than this fraction of the body (the
#: posterior lung recesses reach down to the upper poles, not to the hilum)
KIDNEY_MAX_LUNG_FRACTION = 0.1
#: a core is in the chest (the heart) only in a slice where lung is at least this fraction of the body
THORACIC_LUNG_FRACTION = 0.1
#: a spleen's core lies no more than this (mm) below the liver's centre (the spleen lies at the
#: level of the liver's upper half, the left kidney's centre 30-80 mm lower) and no more than this
#: below the liver's top (the spleen's centre lies 40-90 mm below the right dome, the kidneys'
#: 110-150 mm); without a liver, in a slice with less than this fraction of lung
SPLEEN_BELOW_LIVER_MM = 20.0
SPLEEN_BELOW_DOME_MM = 100.0
#: on plain CT, where HU does not part them, the spleen's core lies at least this far (mm) left of
#: the midline: lateral to the left kidney's (adult spleens' centres lie 85-120 mm from the
#: midline, kidneys' 50-80 mm); its mode is read there too. In a narrow patient both lie closer:
#: the distance is at most this fraction of the left lung's reach from the midline (on the stress
#: generator's plain tuning cases 0-99 spleens' centres lie at 0.53-0.72 of it, left kidneys' at
#: 0.33-0.52, one cut by the field 0.56): searched there only when no spleen lies beyond the constant,
#: and then always doubtful (as possibly the left kidney unless a left kidney was found medial to it).
#: That search reads the spleen's mode beyond the bound but takes cores up to
#: `PLAIN_SPLEEN_CORE_MARGIN_MM` medial to it: a spleen's core may lie a few mm medial to its centre
#: (tuning seeds 19, 72 and 98 were declined with their spleen's core 0-3 mm short of the bound), and
#: the mode read closer to the midline is the left kidney's (a narrow phantom's spleen then fell out
#: of its band)
PLAIN_SPLEEN_LATERAL_MM = 80.0
PLAIN_SPLEEN_LATERAL_OF_LUNG = 0.55
PLAIN_SPLEEN_CORE_MARGIN_MM = 5.0
SPLEEN_MAX_LUNG_FRACTION = 0.2
#: organs lie within this (mm) of the lungs' widest extent in x (inside the ribs; arms lie beyond)
CAGE_MARGIN_MM = 25.0
#: the liver and the spleen lie within this (mm) beyond the lungs' outline per angle (`_Lungs.cage`),
#: read in this many angle bins
CAGE_INSIDE_MM = 6.0
CAGE_BINS = 90
#: the body wall's thickness (mm; `_Lungs.beneath_wall`, inside which a plain-CT spleen does not lie: the wall's
#: muscle has its HU) changes by at most this much per angle bin (4 degrees) from the bins where the lungs touch
#: it (the generator's wall thickens from 3-22 mm laterally to 30-60 mm at the back over about 60 degrees; tuning
#: seed 239, a short scan at the spleen's level, had no lung against its posterolateral wall in
#: any slice, and the lung beyond the spleen gave a wall 40-58 mm deep there: the spleen lost 40 %)
WALL_SLOPE_MM = 3.0
#: cores this far (mm) behind the vertebral bodies' front, beside the spine, are back muscles
BACK_MUSCLE_MM = 25.0
#: a plain liver's band reaches this many of its smoothed HU's spreads (`_upper_spread`) below its
#: mode, at least `LIVER_MIN_BELOW_HU`: bowel, spleen and muscle lie 5-15 HU below it, and a fixed
#: half width took them with it on a quiet scan (tuning seed 60: +167 % of bowel at 42 HU beside a
#: liver of 54 HU); 2.5 spreads since the majority vote (`_candidates`) keeps the liver's voxels
#: that noise puts beyond it (3.5: tuning seeds 71 and 96 took bowel, +20 % and +46 %)
LIVER_SPREADS_BELOW = 2.5
LIVER_MIN_BELOW_HU = 8.0
#: the liver's mode is read this far (mm) right of the midline and below the skin
LIVER_ZONE_MM = {"lateral": 30.0, "depth": 25.0}
#: how far (mm) the band's mask (on the lightly smoothed HU) is grown back to the organ's edge: the
#: band's lower bound lies 1-3 EDGE_SMOOTH_MM inside it (more when the band hugs the organ's HU)
RIM_MM = {"liver": 3.0 * EDGE_SMOOTH_MM, "spleen": 3.0 * EDGE_SMOOTH_MM, "kidney": 2.0 * EDGE_SMOOTH_MM}
#: a hypodense region (a lesion) joins an organ that covers this fraction of its surface
ENCLOSED_FRACTION = 0.6
#: a plain-CT liver with more than this fraction within this depth (mm) of the skin holds body wall
WALL_FRACTION = 0.065
WALL_DEPTH_MM = 15.0
#: ... and a plain-CT spleen with more than `WALL_FRACTION` within this depth (mm): it lies deeper behind the
#: ribs (tuning seeds' coarse masks: right plain spleens 0.02-0.035 of themselves within 20 mm; seeds 26 and
#: 377, +110 % and +44 % of the posterior wall's muscle, of the spleen's HU, 0.13 and 0.12; seed 377 was
#: confidently wrong, its ring of in-band tissue 14 %, below `SAME_HU_CONTACT`, its noise low)
SPLEEN_WALL_DEPTH_MM = 20.0
#: a plain-CT liver less spherical than this (coarse voxel faces) holds bowel (`_ragged_doubt`)
RAGGED_SPHERICITY = 0.45
#: spleen and left kidney touching over more than this fraction of the smaller one's surface
CONTACT_FRACTION = 0.15
#: a spleen or kidney with more than this fraction of the voxels around it in its own band, belonging
#: to no organ found, has a boundary placed by shape (`_guessed_boundary_doubt`)
SAME_HU_CONTACT = 0.2
#: plain CT noisier than this (robust SD, HU, of the voxels' difference from their mean over this many
#: voxels square in-plane: about 0.85 of the noise's SD for a grain a pixel wide) cannot tell spleen and
#: kidneys from their neighbours
NOISY_PLAIN_SD_HU = 19.0
#: plain CT noisier than this (`_noise_sd` in the liver found) has the spleen's in-band voxels take a
#: majority vote (`_candidates`) before its opening; on quieter scans the vote let bowel and muscle of
#: the spleen's HU join it (tuning seeds 71, 96 and 97: noise 19-21 HU, +18-183 % -> +172-321 %; the
#: synthetic abdomen's seed 4 at 8-18 HU: the spleen +9 % -> +24 %, and the left kidney's band read
#: lower beside it)
SPLEEN_VOTE_NOISE_SD_HU = NOISY_PLAIN_SD_HU
NOISE_WINDOW = 5
#: ... and the liver, 5-15 HU brighter than them, from this noise (plain tuning seeds: 4 of the 5 livers
#: with a voxel SD above 35 HU, about 30 on this measure, were 15-35 % off; those below 30 HU, about
#: 26, only where a neighbour of close HU leaked in)
NOISY_PLAIN_LIVER_SD_HU = 28.0
#: smallest core (mL) taken for each organ: less is a fragment of something else
MIN_CORE_ML: dict[str, float] = {"liver": 40.0, "spleen": 8.0, "kidney": 8.0}
#: the liver's dome (or the spleen's top) at the caudal edge of a chest CT (`_cut_dome`): the tissue at least
#: `DIAPHRAGM_MM` below the right (left) lung's base gives its HU; its candidates are opened with a ball of
#: `DOME_OPENING_MM`, have cores `DOME_CORE_MM` deep and hold at least `DOME_MIN_ML` (a dome the scan range
#: cuts to a few slices has no core `CORE_MM` deep, and holds less than `MIN_CORE_ML`; tuning seeds 212 and
#: 409: the spleen's top, 8-9 mL, was declined, now Dice 0.94-0.96)
DIAPHRAGM_MM = 4.0
DOME_OPENING_MM = 2.5
DOME_CORE_MM = 4.0
DOME_MIN_ML = 3.0
#: ... and lie mostly (this fraction) under that lung's aerated base (tuning seeds: the domes 1.0, the
#: chest wall and crus beside the lung's base, in the liver's band on plain CT, at most 0.13)
DOME_UNDER_LUNG = 0.7
#: ... and the spleen's top lies wholly at least this far (mm) left of the midline: it rests on the left
#: lateral and posterior wall, while what reaches the midline under the left dome is the stomach or the
#: liver's left lobe (tuning seeds' cut spleen tops: 42-84 mm; a chest phantom's upper abdomen under the
#: left dome, no spleen in it, 3 mm and 457 mL)
SPLEEN_TOP_MEDIAL_MM = 25.0

#: a plain-CT spleen's body is the part of its chosen basins a ball of this radius (mm) fits in, with what lies within
#: `SPLEEN_EDGE_MM` of it (`_thick_part`); of the rest, pieces of at least `OUTGROWTH_ML` are bowel of its HU (mottled
#: with fat every 10-20 mm) and are left out, and a cut of at least `THICK_CUT_DOUBT_ML` is said. Tuning seeds' plain
#: spleens: 937, +230 % of bowel and kidney, Dice 0.40 -> 0.66; 601 0.39 -> 0.66; 662 0.58 -> 0.68; none worse.
#: A radius of 10 mm cut less bowel (937: 0.44); leaving out every piece (no `OUTGROWTH_ML`) cut the spleens' own
#: tips and corners (911: 0.81 -> 0.72, 707: 0.77 -> 0.73)
SPLEEN_THICK_MM = 12.5
SPLEEN_EDGE_MM = 5.0
OUTGROWTH_ML = 15.0
#: ... lying on average at least this much (mm; about a coarse voxel) deeper below the skin than the spleen's body:
#: away from the wall it rests on (tuning seeds' bowel pieces 3-23 mm deeper; 607's and 213's own edge on the wall
#: 20 and 12 mm shallower; the synthetic abdomen's seed 2 spleen moved medially, its thin half 0 mm)
OUTGROWTH_DEEPER_MM = 2.0
#: ... and reaching on average at least this far (mm) beyond where it joins the body: its volume over its contact
#: area with the body. A thin spleen's own pole or rim is joined to its body all along and reaches little beyond
#: it (the synthetic abdomen's noisy plain spleen, seed 3, whose thin part under the dome, 18-20 mL of a 60 mL
#: core, the cut took: 5-7 mm; tuning seeds' own pieces of 10 mL or more, 911 and 932: 6-10 mm); bowel joined
#: over a contact narrower than itself reaches far (tuning seeds 937's 338 mL: 63 mm, 662's 60 mL: 68 mm, 601's
#: 49 mL: 25 mm). Bowel lying along the spleen's front over a contact about as long as itself reaches less: tuning
#: seed 18's 38 mL, 6 mm deeper, 12 mm (noisy plain CT; at 20 mm it stayed, Dice 0.57 -> 0.72 at 12). Bowel joined
#: all along (734, 26: 5-11 mm) is not told from a pole this way and stays. At 12 mm rather than 20, tuning seeds
#: 0-49 (41 spleens): 18 0.57 -> 0.72, 46 0.58 -> 0.61, 43 0.25 -> 0.27, no spleen worse; 500-598 (56): 551 0.54
#: -> 0.69, no other changed; of the earlier sessions' failures 951 0.57 -> 0.68, the own pieces of 911 and 932 kept
OUTGROWTH_REACH_MM = 12.0
#: ... or, whatever its depth, reaching at least this far (mm): three times the spleen's own pieces' reach (above);
#: bowel hanging below the spleen's lower pole along the wall lies no deeper than its body (tuning seed 965: 123 mL
#: of bowel reaching 41 mm beyond a contact narrower than itself, 1 mm shallower)
OUTGROWTH_FAR_REACH_MM = 30.0
THICK_CUT_DOUBT_ML = 10.0
#: a plain-CT spleen search (`_choose`) that finds no core where a spleen lies takes, doubtful, a solid one (a core of
#: at least `SPLEEN_SOLID_CORE_ML`) up to `SPLEEN_PRIOR_SLACK_MM` beyond those bounds, medial to the lateral bound or
#: below the floor (`_spleen_beyond_prior`), beside a liver the scan does not cut below. Noisy plain spleens of the
#: stress generator lie there, their centres up to 25 mm below the liver's (left kidneys' 37-73 mm) or 72 mm left of
#: the midline (tuning seed 727), their cores 28-35 mL once the vote joins muscle to them (seed 7's 10-15 mm below
#: the floor); without it the next search took noise fragments with cores of 0.0-0.8 mL (seeds 7 and 727: Dice
#: 0.37 and 0.32). A thin spleen's core is smaller (the synthetic abdomen's: 7 mL)
SPLEEN_SOLID_CORE_ML = 5.0
SPLEEN_PRIOR_SLACK_MM = 15.0

ABDOMEN_TARGETS = ("liver", "spleen", "kidney_left", "kidney_right")


@dataclass
class AbdomenOrgans:
    """The organs found on one CT (full-resolution boolean masks; missing ones are absent).

    Attributes:
        masks: target name -> mask.
        errors: target name -> why it was not found.
        statistics: the scan's HU landmarks and estimated contrast phase.
        bands: organ ("liver", "spleen", "kidney") -> the smoothed-HU band used.
        doubts: target name -> why the organ found may be a neighbour (`_neighbour_doubts`) or
            hold the body wall (`_wall_doubt`).
    """

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    statistics: ScanStatistics | None = None
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)
    doubts: dict[str, list[str]] = field(default_factory=dict)

    def mask(self, target: str) -> np.ndarray:
        """The mask of ``target``; raises `SegmentationError` with the reason when it was not found."""
        if target not in self.masks:
            raise SegmentationError(self.errors[target])
        return self.masks[target]


@dataclass
class _Lungs:
    """The coarse lung masks, per slice the fraction of the body that is lung, and the lungs'
    widest extent in world x (None without lungs; with one lung in the field, that lung's and its
    mirror image's about the midline: the right lung lies above a scan of the bases starting
    below its dome, the higher one, and the liver beneath it is no arm)."""

    left: np.ndarray
    right: np.ndarray
    fraction: np.ndarray
    x_range: tuple[float, float] | None

    @classmethod
    def of(cls, labels: np.ndarray, body: np.ndarray, x: np.ndarray, mid_x: float) -> "_Lungs":
        left, right = labels == LEFT, labels == RIGHT
        area = np.maximum(body.sum(axis=(1, 2)), 1)
        both = left | right
        x_range = (float(x[both].min()), float(x[both].max())) if both.any() else None
        if x_range is not None and not (left.any() and right.any()):
            reach = max(x_range[1] - mid_x, mid_x - x_range[0])
            x_range = (min(x_range[0], mid_x - reach), max(x_range[1], mid_x + reach))
        return cls(left, right, both.sum(axis=(1, 2)) / area, x_range)

    def within_reach(self, x: np.ndarray) -> np.ndarray:
        """Where ``x`` (mm, world) lies no further out than `CAGE_MARGIN_MM` beyond the lungs' widest
        extent (everywhere without lungs): inside the ribs, not an arm beside the chest (its muscle has
        the liver's HU, and on plain CT the spleen's)."""
        if self.x_range is None:
            return np.ones(np.shape(x), dtype=bool)
        return (x >= self.x_range[0] - CAGE_MARGIN_MM) & (x <= self.x_range[1] + CAGE_MARGIN_MM)

    def beside_cage(self, c: "_Candidate") -> bool:
        """Whether a core lies beyond `within_reach`: an arm, not an organ inside the ribs."""
        return not self.within_reach(np.asarray(c.centroid[0]))

    def cage(self, frame: BodyFrame, body: np.ndarray) -> np.ndarray:
        """The inside of the rib cage as the lungs outline it (coarse mask; all of the body without
        lungs): the lungs' costophrenic recesses line the ribs down to the liver and the spleen, and
        both lie inside the diaphragm within that outline. Per `CAGE_BINS` angle about the body's
        axis (the midline at the body's centre), the cage reaches `CAGE_INSIDE_MM` beyond the
        furthest lung voxel of any slice, plus, in each slice, as much as the skin lies further out
        there than in that lung's slice (the abdomen widens below the chest; an arm beside the chest
        only makes the lung's slice wider, never the cage narrower); a bin no lung reaches takes
        its mirror image's about the midline. Outside it lies the body wall, whose muscle has the
        liver's and the spleen's HU on plain CT."""
        lung = self.left | self.right
        if not lung.any():
            return body.copy()
        dx, dy = frame.x - np.float32(frame.mid_x), frame.y - np.float32(frame.centre_y)
        radius = np.hypot(dx, dy)
        bins = ((np.arctan2(dy, dx) + np.pi) * (CAGE_BINS / (2 * np.pi))).astype(np.int32) % CAGE_BINS
        slices = np.broadcast_to(np.arange(body.shape[0])[:, None, None], body.shape)
        # the furthest voxel of a bin lies on the structure's surface: only those are read
        lung_edge = lung & ~ndimage.binary_erosion(lung, CONN6)
        lung_r = np.full(CAGE_BINS, np.inf, dtype=np.float32)  # a bin without lung is not bounded
        lung_k = np.zeros(CAGE_BINS, dtype=np.int64)
        r, b, k = radius[lung_edge], bins[lung_edge], slices[lung_edge]
        order = np.argsort(r, kind="stable")
        lung_r[b[order]], lung_k[b[order]] = r[order], k[order]  # the last write per bin is its largest
        # the rib cage is symmetric about the midline: a bin with no lung (the right lung above a
        # scan of the bases, its dome the higher) takes its mirror image's (x -> -x) reach, else the
        # body wall behind the liver lies in an unbounded bin (tuning seed 19: liver +32 %)
        mirror = (3 * CAGE_BINS // 2 - 1 - np.arange(CAGE_BINS)) % CAGE_BINS
        lone = ~np.isfinite(lung_r) & np.isfinite(lung_r[mirror])
        lung_r[lone], lung_k[lone] = lung_r[mirror][lone], lung_k[mirror][lone]
        skin_edge = body & ~ndimage.binary_erosion(body, CONN6)
        skin_r = np.zeros((body.shape[0], CAGE_BINS), dtype=np.float32)
        np.maximum.at(skin_r, (slices[skin_edge], bins[skin_edge]), radius[skin_edge])
        widening = np.maximum(skin_r - skin_r[lung_k, np.arange(CAGE_BINS)][None, :], 0.0)
        reach = lung_r[None, :] + CAGE_INSIDE_MM + widening
        # neighbouring bins: a rib's bin may hold no lung voxel at its furthest
        reach = np.maximum(reach, np.maximum(np.roll(reach, 1, axis=1), np.roll(reach, -1, axis=1)))
        return body & (radius <= np.take_along_axis(reach, bins.reshape(body.shape[0], -1), axis=1).reshape(body.shape))

    def beneath_wall(self, frame: BodyFrame, body: np.ndarray) -> np.ndarray:
        """Where the body lies at least as deep below the skin as the body wall's inner surface at its
        angle (coarse mask; all of the body without lungs). The lungs touch that surface (the parietal
        pleura): per `CAGE_BINS` angle about each slice's body centre (its axes scaled to that slice's
        half width and depth, so one direction of the wall keeps its bin where the abdomen is wider or
        deeper than the chest), the least depth (`BodyFrame.depth`) of a lung voxel in any slice is the
        wall's thickness there (skin, fat and muscle): the lung's shallowest coarse voxel holds the wall's
        inner surface, and what lies no deeper is wall (with 2 mm of slack, one coarse step, the plain spleens
        of the stress generator's tuning seeds 668, 693, 734 and 989 held 28-133 mL of the wall's inner layer,
        Dice 0.67-0.78; without it 0.69-0.81). The wall keeps at least that thickness below the
        lungs, thicker where the abdomen widens (tuning seed 965: 4-16 mm more at the spleen's levels). The
        least over all slices, not per slice: bowel gas below the lungs'
        bases, labelled lung, lies deeper. A bin takes its mirror image's about the midline where that is
        thinner, and no more than `WALL_SLOPE_MM` per bin more than any other bin's (a bin no lung touches;
        one no lung reaches in any bin is not bounded). The cage (`cage`), a radius from the lungs'
        widest slice, leaves the lateral and posterior wall's muscle inside where the abdomen is wider
        or deeper than the chest: a plain spleen (of that muscle's HU, touching it) grew into it (tuning
        seeds 377, 720 and 734: +33-94 mL of muscle)."""
        lung = self.left | self.right
        if not lung.any():
            return body.copy()
        n = body.shape[0]
        flat, empty = body.reshape(n, -1), ~body.reshape(n, -1).any(axis=1)

        def centre_and_half(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lo = np.where(flat, c.reshape(n, -1), np.inf).min(axis=1)
            hi = np.where(flat, c.reshape(n, -1), -np.inf).max(axis=1)
            lo[empty], hi[empty] = 0.0, 1.0
            return ((lo + hi) / 2)[:, None, None], np.maximum((hi - lo) / 2, 1.0)[:, None, None]

        (cx, hx), (cy, hy) = centre_and_half(frame.x), centre_and_half(frame.y)
        dx, dy = (frame.x - cx) / hx, (frame.y - cy) / hy
        bins = ((np.arctan2(dy, dx) + np.pi) * (CAGE_BINS / (2 * np.pi))).astype(np.int32) % CAGE_BINS
        wall = np.full(CAGE_BINS, np.inf, dtype=np.float32)
        np.minimum.at(wall, bins[lung], frame.depth[lung])
        # the wall is about symmetric about the midline: the thinner of a bin and its mirror image's
        mirror = (3 * CAGE_BINS // 2 - 1 - np.arange(CAGE_BINS)) % CAGE_BINS
        wall = np.minimum(wall, wall[mirror])
        # where the spleen (or the liver) lies against the wall in every slice, no lung touches it, and the
        # least lung depth there is that of the lung beyond the organ: the wall's thickness changes by at
        # most `WALL_SLOPE_MM` per bin from where the lung measured it
        steps = np.arange(CAGE_BINS)
        apart = np.abs(steps[:, None] - steps[None, :])
        apart = np.minimum(apart, CAGE_BINS - apart)
        wall = np.min(wall[None, :] + WALL_SLOPE_MM * apart, axis=1)
        wall = np.where(np.isfinite(wall), wall, -np.inf)
        return body & (frame.depth > wall[bins])


@dataclass
class _Liver:
    """What the found liver says about where the spleen may lie: below its top (above it is the
    heart), its core no lower than ``spleen_floor`` (world z): `SPLEEN_BELOW_LIVER_MM` below the
    liver's centre unless the field cuts the liver below, `SPLEEN_BELOW_DOME_MM` below its top
    unless the field cuts it above (-inf when both are cut)."""

    top: float
    spleen_floor: float
    cut_below: bool = False  # the scan's lowest slice cuts the liver: its centre is not known
    height_mm: float = 0.0  # from its lowest voxel to its top

    def spans_spleen(self) -> bool:
        """Whether the scan holds the liver down to the spleen's levels (whole, or `SPLEEN_BELOW_DOME_MM` of it
        below its top): not a chest CT's liver dome, beside which the chest wall's muscle lies."""
        return not self.cut_below or self.height_mm >= SPLEEN_BELOW_DOME_MM

    @classmethod
    def of(cls, liver: np.ndarray, frame: BodyFrame) -> "_Liver | None":
        if not liver.any():
            return None
        z = frame.z[liver]
        levels = frame.z.reshape(frame.z.shape[0], -1).mean(axis=1)
        floor = -np.inf
        cut_below = bool(liver[int(np.argmin(levels))].any())
        if not cut_below:
            floor = float(z.mean()) - SPLEEN_BELOW_LIVER_MM
        if not liver[int(np.argmax(levels))].any():
            floor = max(floor, float(z.max()) - SPLEEN_BELOW_DOME_MM)
        return cls(float(z.max()), floor, cut_below, float(z.max() - z.min()))

    def above_kidney(self, kidney: np.ndarray, frame: BodyFrame) -> "_Liver":
        """The spleen's core no lower than the found left kidney's centre (coarse mask; enhanced CT,
        where the kidneys, brighter, are found and taken first) where that lies below
        ``spleen_floor``: a large spleen hangs lower than `SPLEEN_BELOW_LIVER_MM` below the liver's
        centre (tuning seeds 116 and 172, 250-300 mL portal-venous spleens whose cores lay 40 mm below
        it and 30 mm above the left kidney's centre, were declined)."""
        if not kidney.any():
            return self
        return replace(self, spleen_floor=min(self.spleen_floor, float(frame.z[kidney].mean())))


@dataclass(eq=False)
class _Candidate:
    """One basin: its voxels (coarse), its core's centroid (world mm) and median HU, core size, and
    the fraction of the shell around it within `SIMILAR_HU` of its HU (a piece cut out of a larger
    uniform region by the band's threshold is surrounded by similar tissue, an organ mostly by fat
    or by tissue of another HU), its depth below the skin and the coarse slice of its centroid (not
    found from its z: on an oblique affine a slice spans a range of z)."""

    mask: np.ndarray
    centroid: tuple[float, float, float]
    hu: float
    core_voxels: int
    similar_shell: float
    depth_mm: float
    slice: int
    box: tuple[slice, ...]  # the mask's bounding box
    voxels: int
    foreign: bool = False  # its core lies below the organ's core HU (`_candidates`' ``core_from``)

    def meets(self, other: np.ndarray) -> bool:
        """Whether its mask overlaps ``other`` (a coarse mask)."""
        return bool((self.mask[self.box] & other[self.box]).any())


def find_abdominal_organs(volume: Volume, chest: ChestLabels) -> AbdomenOrgans:
    """Liver, spleen and kidneys of a CT volume (see the module docstring).

    Args:
        volume: CT in HU, canonical LPS.
        chest: the coarse chest analysis of the same volume (its grid, body and lungs).
    """
    grid, body = chest.grid, chest.body
    hu, hu_edge = smoothed_coarse_hu(volume, grid)
    frame = body_frame(volume, grid, hu, body)
    lungs = _Lungs.of(chest.labels, body, frame.x, frame.mid_x)
    edge = fat_edge(hu, body)
    # the liver and the spleen lie inside the rib cage; outside it, the body wall's muscle
    cage = lungs.cage(frame, body)
    zones = _zones(frame, body, cage)
    liver_mode = histogram_mode(hu[zones["liver"]], (0.0, 250.0))
    aorta = aorta_hu(hu, body, frame)
    phase, source = contrast_phase(aorta, liver_mode)
    stats = ScanStatistics(fat_edge_hu=edge, aorta_hu=aorta, liver_hu=liver_mode, phase=phase, phase_source=source)
    out = AbdomenOrgans(statistics=stats)
    # a plain spleen, of the body wall's muscle's HU, lies no shallower than the wall's inside
    beneath_wall = lungs.beneath_wall(frame, body) if phase == "non-contrast" else body
    voxel_ml = float(np.prod(frame.spacing)) / 1000.0
    coarse = np.zeros(hu.shape, dtype=np.uint8)
    taken = np.zeros(hu.shape, dtype=bool)
    kidneys, spleen = ("kidney", ("kidney_left", "kidney_right")), ("spleen", ("spleen",))
    # enhanced, the kidneys (brighter) go first: the spleen's band holds their cortex; on plain CT the
    # bands overlap, and the spleen, placed by the liver's level (`_Liver`), goes first: the kidney's
    # looser prior (beside the spine) also fits a spleen's medial part
    order = (spleen, kidneys) if phase == "non-contrast" else (kidneys, spleen)
    # a narrow patient's plain spleen lies closer to the midline: searched there (its core up to
    # `PLAIN_SPLEEN_CORE_MARGIN_MM` closer still) only when not found lateral to where any left kidney
    # lies (`_plain_spleen_lateral`; doubtful, `_neighbour_doubts`)
    narrow = _plain_spleen_lateral(frame, lungs) if phase == "non-contrast" else PLAIN_SPLEEN_LATERAL_MM
    cut_doubts: dict[str, list[str]] = {}  # the liver's dome or spleen's top under a chest CT's lungs (`_cut_dome`)
    thin_doubts: dict[str, list[str]] = {}  # a plain spleen's thin outgrowths left out (`_thick_part`)
    beyond_doubts: dict[str, list[str]] = {}  # a plain spleen found beyond where one lies (`_spleen_beyond_prior`)
    spleen_tries: list[tuple[bool, bool]] | None = None  # set once the liver is found (`_spleen_tries`)
    relaxed = vote = False
    plain_kidney_band: tuple[float, float] | None = None  # the second plain kidney search's (`_plain_kidney_band`)
    kidney_doubts: dict[str, list[str]] = {}  # kidneys found by that search
    first_kidney_band: tuple[float, float] | None = None  # the prior's band, kept for the kidneys found in it
    searches = [("liver", ("liver",)), *order]
    while searches:
        organ, targets = searches.pop(0)
        if organ == "spleen" and spleen_tries is None:
            spleen_tries = _spleen_tries(volume, grid, coarse == 1, phase)
            relaxed, vote = spleen_tries.pop(0)
        lateral = narrow if relaxed else PLAIN_SPLEEN_LATERAL_MM
        core_lateral = lateral - PLAIN_SPLEEN_CORE_MARGIN_MM if relaxed else lateral
        liver = out.bands.get("liver")
        found_liver = _Liver.of(coarse == 1, frame)
        if organ == "spleen" and found_liver is not None and phase != "non-contrast":
            found_liver = found_liver.above_kidney(coarse == 1 + ABDOMEN_TARGETS.index("kidney_left"), frame)
        zone = zones[organ] & ~taken
        if organ == "spleen" and found_liver is not None:
            # above the liver's dome lies the heart; low beside the spine, the left kidney (whose
            # HU, on plain CT, would otherwise centre the spleen's band)
            zone &= (frame.z < found_liver.top) & (frame.z >= found_liver.spleen_floor)
        if organ == "spleen" and phase == "non-contrast":
            zone &= frame.x >= frame.mid_x + lateral
        if organ == "spleen":
            # an arm down beside the chest widens the body, and with it the cage; its muscle (of the
            # spleen's HU on plain CT) then outnumbers the spleen where its mode is read (tuning seed 93:
            # band centred on the arm's 54 HU, the spleen of 43 HU broken up and declined)
            zone &= lungs.within_reach(frame.x)
        band = _band(organ, phase, hu, zone, None if liver is None else (liver[0] + liver[1]) / 2)
        if organ == "kidney" and plain_kidney_band is not None:
            band = plain_kidney_band
        core_from = None
        if organ == "kidney" and phase != "non-contrast":
            # cortex and medulla are the band; a kidney's core is its bright part (the spleen beside
            # it, inside the band once enhanced, is not)
            core_from = band[0] + KIDNEY_BELOW_HU - KIDNEY_CORE_BELOW_HU
        if organ == "kidney" and phase != "non-contrast" and "liver" in out.bands:
            # enhanced kidneys are brighter than liver and spleen, which touch them at the liver's HU
            band = (max(band[0], out.bands["liver"][1] - KIDNEY_ABOVE_LIVER_GAP_HU), band[1])
        if organ == "kidney" and phase == "arterial" and aorta is not None:
            # the arterial aorta (250-400 HU) is brighter than the cortex (180-250): the band stops
            # `KIDNEY_BELOW_AORTA_HU` below it, or the aorta touching a kidney (or the bright bridge
            # between them) is one core with it (tuning seed 45: the aorta in the left kidney, +97 % at
            # quality ok). Not from the band's mode: in the kidney's zone that may be the spleen's.
            band = (band[0], max(band[0] + KIDNEY_BELOW_HU, min(band[1], aorta - KIDNEY_BELOW_AORTA_HU)))
        out.bands[organ] = band
        inside = body if organ == "kidney" else cage
        allowed = inside & ~ndimage.binary_dilation(taken | frame.spine, CONN6)
        # enhanced kidneys: a bright cortex around a darker medulla, solid once its holes are filled
        fill = organ == "kidney" and phase != "non-contrast"
        candidates = _candidates(hu, allowed, band, organ, frame, fill, zones[organ], core_from,
                                 vote=organ == "spleen" and vote)
        for target in targets:
            chosen = _choose(target, candidates, frame, lungs, voxel_ml, found_liver,
                             core_lateral if phase == "non-contrast" else None)
            if (chosen is None and target == "spleen" and phase == "non-contrast" and found_liver is not None
                    and found_liver.spans_spleen()):
                beyond = _spleen_beyond_prior(candidates, frame, lungs, voxel_ml, found_liver, core_lateral)
                if beyond is not None:
                    chosen, why = beyond
                    beyond_doubts[target] = [why]
            # the spleen's top under a chest CT's lowest slice only once every spleen search found none
            if chosen is None and (target == "liver" or target == "spleen" and not spleen_tries):
                side = frame.x < frame.mid_x if target == "liver" else zone
                dome = _cut_dome(target, hu, allowed, side, phase, frame, lungs, voxel_ml, found_liver,
                                 None if liver is None else (liver[0] + liver[1]) / 2)
                if dome is not None:
                    chosen, band, why, below_diaphragm = dome
                    out.bands[organ] = band
                    inside = inside & below_diaphragm
                    cut_doubts[target] = [why]
            if chosen is None:
                out.errors[target] = _not_found(target, band, phase, organ)
                continue
            if organ == "spleen" and phase == "non-contrast" and target not in cut_doubts:
                chosen, cut_voxels = _thick_part(chosen, frame.depth, frame.spacing, voxel_ml)
                if cut_voxels * voxel_ml >= THICK_CUT_DOUBT_ML:
                    thin_doubts[target] = [_thin_cut_doubt(cut_voxels * voxel_ml)]
            # candidates keep a voxel away from organs found before and from the spine (blurred by the
            # smoothing); the grown organ may touch them and the spine's bone
            bone = frame.spine & (hu_edge >= SPINE_HU)
            grown = _grow(chosen, hu, hu_edge, inside & ~taken & ~bone, _grow_band(organ, phase, band), edge, organ,
                          frame.spacing, _grow_reach(organ, phase))
            taken |= grown
            if organ == "spleen" and phase == "non-contrast":
                # a plain spleen grows into the body wall's muscle of its HU where they touch: that part is
                # left out of the spleen (`_Lungs.beneath_wall`), and, body wall, of the organs searched after it
                # (its basins, searched again, made a kidney's shell look uniform: tuning seed 0's left kidney,
                # 0.62, was declined when the wall was left to the kidney's search)
                grown &= beneath_wall
            coarse[grown] = 1 + ABDOMEN_TARGETS.index(target)
            candidates = [c for c in candidates if not c.meets(grown)]
            if organ == "kidney" and plain_kidney_band is not None:
                kidney_doubts[target] = [_plain_kidney_doubt(band, liver_mode)]
        missing = tuple(t for t in targets if t in out.errors)
        if organ == "kidney" and plain_kidney_band is not None and first_kidney_band is not None:
            for target in missing:  # a negative finding says both bands searched
                out.errors[target] = _not_found(target, first_kidney_band, phase, organ, plain_kidney_band)
            if not kidney_doubts:  # the second search found none: the kidneys found before keep their band
                out.bands["kidney"] = first_kidney_band
        if (organ == "kidney" and phase == "non-contrast" and missing and plain_kidney_band is None
                and liver_mode is not None and liver is not None):
            # the kidneys darker than the prior (a real plain CT): searched again in the band read from the scan
            plain_kidney_band = _plain_kidney_band(hu, zone, liver_mode, liver[0])
            first_kidney_band = out.bands["kidney"]
            if plain_kidney_band is not None:
                for target in missing:
                    del out.errors[target]
                searches.insert(0, (organ, missing))
        if organ == "spleen" and "spleen" in out.errors and spleen_tries:
            relaxed, vote = spleen_tries.pop(0)
            del out.errors["spleen"]
            searches.insert(0, (organ, targets))
    # only each organ's own boundary voxels are decided at full resolution: `_grow` already took
    # back its partial-volume rim, and the coarse voxels beyond it hold the neighbours (bowel,
    # muscle, diaphragm) that are above the fat edge too (they added about 10 % to the liver)
    full = refine_labels(coarse, grid, lambda box: volume.data[box] > edge, coarse == 0)
    for value, target in enumerate(ABDOMEN_TARGETS, start=1):
        if target not in out.errors:
            out.masks[target] = full == value
    out.doubts = _neighbour_doubts(coarse, frame, phase, out.bands, relaxed)
    for target, why in (*cut_doubts.items(), *thin_doubts.items(), *beyond_doubts.items(), *kidney_doubts.items()):
        if target not in out.errors:
            out.doubts[target] = why + out.doubts.get(target, [])
    if phase == "non-contrast":
        for reason in (_wall_doubt(coarse == 1, frame), _ragged_doubt(coarse == 1, frame.spacing)):
            if reason:
                out.doubts.setdefault("liver", []).append(reason)
        if "spleen" in out.masks and (spleen_wall := _wall_doubt(coarse == 1 + ABDOMEN_TARGETS.index("spleen"), frame,
                                                                   "spleen", SPLEEN_WALL_DEPTH_MM)):
            out.doubts.setdefault("spleen", []).append(spleen_wall)
    for target in ("spleen", "kidney_left", "kidney_right"):
        if target in out.masks:
            organ = target.split("_")[0]
            band = first_kidney_band if organ == "kidney" and first_kidney_band and target not in kidney_doubts else \
                out.bands[organ]
            guessed = _guessed_boundary_doubt(coarse == 1 + ABDOMEN_TARGETS.index(target), coarse, hu, hu_edge,
                                              band, body)
            if guessed:
                out.doubts.setdefault(target, []).append(guessed)
    for target in ("liver", "spleen", "kidney_left", "kidney_right"):
        plain = phase == "non-contrast" and target in out.masks
        limit = NOISY_PLAIN_LIVER_SD_HU if target == "liver" else NOISY_PLAIN_SD_HU
        noise = _noise_doubt(volume.data, out.masks[target], limit) if plain else None
        if noise:
            out.doubts.setdefault(target, []).append(noise)
    return out


def _spleen_tries(volume: Volume, grid: CoarseGrid, liver: np.ndarray, phase: str) -> list[tuple[bool, bool]]:
    """The spleen's searches as (relaxed, vote), each tried when those before found none: on plain CT
    again closer to the midline (relaxed, `_plain_spleen_lateral`); on a plain CT whose noise, read in
    the found liver's (coarse mask) middle three coarse slices (all of it costs half a second), is above
    `SPLEEN_VOTE_NOISE_SD_HU`, each with the majority vote (`_candidates`) first, then without it."""
    if phase != "non-contrast":
        return [(False, False)]
    levels = np.flatnonzero(liver.any(axis=(1, 2)))
    middle = np.zeros_like(liver)
    if levels.size:
        mid = slice(max(int(levels[levels.size // 2]) - 1, 0), int(levels[levels.size // 2]) + 2)
        middle[mid] = liver[mid]
    noisy = bool(middle.any()) and _noise_sd(volume.data, grid.upsample(middle)) > SPLEEN_VOTE_NOISE_SD_HU
    return [(relaxed, vote) for relaxed in (False, True) for vote in ((True, False) if noisy else (False,))]


def _guessed_boundary_doubt(organ: np.ndarray, coarse: np.ndarray, hu: np.ndarray, hu_edge: np.ndarray,
                            band: tuple[float, float], body: np.ndarray) -> str | None:
    """Why a spleen or kidney (coarse mask) may hold a neighbour or miss part of itself, or None: more
    than `SAME_HU_CONTACT` of the voxels just outside it are body tissue of no organ found but inside
    its band (bowel, muscle or a neighbouring organ of its HU). There its edge was not found at a
    change of HU but placed by the opening, the watershed's cut or the basin's reach."""
    if not organ.any():
        return None
    ring = ndimage.binary_dilation(organ, CONN6) & ~organ & body
    same = ring & (coarse == 0) & (hu_edge >= band[0]) & (hu <= band[1])
    fraction = float(np.count_nonzero(same)) / max(1, int(np.count_nonzero(ring)))
    if fraction <= SAME_HU_CONTACT:
        return None
    return (f"{fraction:.0%} of its outline borders tissue of its own HU band ({band[0]:.0f} to {band[1]:.0f} HU; "
            f"bowel, muscle or a neighbouring organ): there its boundary is a guess by shape, not a change of HU, "
            f"and the mask may include the neighbour or miss part of the organ")


def _noise_sd(data: np.ndarray, organ: np.ndarray) -> float:
    """The noise (HU) inside an organ (full-resolution mask): the robust SD of its voxels' difference
    from their in-plane `NOISE_WINDOW` mean (not the spread of its voxels, which the band that chose
    them narrows: a kidney on 26 HU noise read 21 HU once its rim no longer held fat)."""
    box = grown_box(bounding_box(organ), NOISE_WINDOW, organ.shape)
    values = data[box].astype(np.float32)
    residual = values - ndimage.uniform_filter(values, size=(1, NOISE_WINDOW, NOISE_WINDOW))
    inner = ndimage.binary_erosion(organ[box], np.ones((1, NOISE_WINDOW, NOISE_WINDOW), bool))
    residual = residual[inner if inner.any() else organ[box]]
    return 1.4826 * float(np.median(np.abs(residual - np.median(residual))))


def _noise_doubt(data: np.ndarray, organ: np.ndarray, limit: float = NOISY_PLAIN_SD_HU) -> str | None:
    """Why a plain-CT organ may be wrong on a noisy scan, or None: its noise (`_noise_sd`) is above
    ``limit`` (`NOISY_PLAIN_SD_HU`; the liver, brighter, `NOISY_PLAIN_LIVER_SD_HU`), where the 5-15 HU
    between liver, spleen, kidney, muscle and bowel is lost even after the smoothing (the bands break
    up)."""
    sd = _noise_sd(data, organ)
    if sd <= limit:
        return None
    return (f"noisy plain CT (noise SD about {sd:.0f} HU in it): liver, spleen, kidneys, muscle and bowel lie within "
            f"5-15 HU of each other and cannot be told apart reliably by HU; the mask may be a neighbour or miss "
            f"part of the organ")


def _wall_doubt(organ: np.ndarray, frame: BodyFrame, name: str = "liver", depth_mm: float = WALL_DEPTH_MM,
                ) -> str | None:
    """Why a plain-CT liver or spleen (``name``; coarse mask) may include the body wall, or None: more
    than `WALL_FRACTION` of it lies within ``depth_mm`` (`WALL_DEPTH_MM`, the spleen's
    `SPLEEN_WALL_DEPTH_MM`) of the skin, where the wall's muscle is, of the organ's HU on plain CT (an
    organ under the wall has a few percent there)."""
    if not organ.any():
        return None
    shallow = float(np.mean(frame.depth[organ] < depth_mm))
    if shallow <= WALL_FRACTION:
        return None
    return (f"{shallow:.0%} of the {name} lies within {depth_mm:g} mm of the skin, where the body wall's muscle "
            f"has the {name}'s HU on plain CT: the mask may include the body wall")


def _ragged_doubt(liver: np.ndarray, spacing: tuple[float, float, float]) -> str | None:
    """Why a plain-CT liver (coarse mask) may hold bowel, or None: its sphericity (the surface of a
    ball of its volume over its own, voxel faces counted) is below `RAGGED_SPHERICITY`. On plain CT
    bowel of the liver's HU, mixed with fat and gas, joins it where they touch; the mask then has the
    bowel's ragged outline (tuning seeds 70 and 96, +29-38 %, 0.42-0.44; right plain livers 0.47-0.78)."""
    if not liver.any():
        return None
    face = (spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1])
    padded = np.pad(liver, 1).astype(np.int8)
    surface = sum(np.count_nonzero(np.diff(padded, axis=a)) * face[a] for a in range(3))
    volume = float(np.count_nonzero(liver)) * float(np.prod(spacing))
    sphericity = np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / surface
    if sphericity >= RAGGED_SPHERICITY:
        return None
    return (f"its outline is ragged (sphericity {sphericity:.2f}, a liver's is above {RAGGED_SPHERICITY:g}): on plain "
            f"CT bowel of the liver's HU, mixed with fat, may have joined it; the mask may be too large")


def _neighbour_doubts(coarse: np.ndarray, frame: BodyFrame, phase: str,
                      bands: dict[str, tuple[float, float]], relaxed: bool = False) -> dict[str, list[str]]:
    """Why the spleen or the left kidney found may be the other one (coarse labels of all organs).

    On plain CT their bands overlap (spleen about 40-50 HU, kidney 30-40 HU, both beside bowel and
    muscle), so only position tells them apart: each is doubtful when the other was not found (it
    may have taken the other's place, or be the other one with its neighbour out of view), and when
    they touch over more than `CONTACT_FRACTION` of the smaller one's surface (their boundary is a
    guess; also once enhanced where their bands meet); in any phase when the spleen's centre lies
    below the left kidney's (swapped); enhanced, a left kidney without a spleen beside it (the
    spleen may be what was found); ``relaxed``: a plain CT's spleen searched closer to the midline than
    `PLAIN_SPLEEN_LATERAL_MM` (`_plain_spleen_lateral`): always doubtful, as possibly the left kidney
    when it lies there without a left kidney found medial to it."""
    spleen = coarse == 1 + ABDOMEN_TARGETS.index("spleen")
    kidney = coarse == 1 + ABDOMEN_TARGETS.index("kidney_left")
    out: dict[str, list[str]] = {}

    def add(reason: str, *targets: str) -> None:
        for target in targets:
            out.setdefault(target, []).append(reason)

    if relaxed and spleen.any():
        # the narrow patient's spleen (`_plain_spleen_lateral`) lies where a wide patient's left
        # kidney may: it is the spleen only beside a left kidney found medial to it
        spleen_x = float(frame.x[spleen].mean()) - frame.mid_x
        medial = kidney.any() and float(frame.x[kidney].mean()) - frame.mid_x < spleen_x
        if spleen_x < PLAIN_SPLEEN_LATERAL_MM and not medial:
            add(f"the spleen found lies {spleen_x:.0f} mm left of the midline, where on plain CT the left kidney may "
                f"lie (its centre 50-80 mm), and no left kidney was found medial to it: it may be the left kidney",
                "spleen")
        else:
            # beside a kidney it is the spleen, but the relaxed search's edge is no surer (tuning
            # seed 0: +23 % of 42 HU rim and kidney taken with it)
            add("the spleen was found only by a search closer to the midline than usual on plain CT: where it meets "
                "the left kidney and bowel of its HU, its extent is uncertain", "spleen")
    if spleen.any() and kidney.any():
        if float(frame.z[spleen].mean()) < float(frame.z[kidney].mean()):
            add("the spleen's centre lies below the left kidney's: the two may be swapped", "spleen", "kidney_left")
        # enhanced, they are told apart by HU unless the bands meet (a mottled arterial spleen)
        if phase == "non-contrast" or bands["kidney"][0] <= bands["spleen"][1]:
            smaller = spleen if spleen.sum() < kidney.sum() else kidney
            other = kidney if smaller is spleen else spleen
            surface = smaller & ~ndimage.binary_erosion(smaller, CONN6)
            contact = float(np.count_nonzero(surface & ndimage.binary_dilation(other, CONN6, iterations=2)))
            if contact > CONTACT_FRACTION * np.count_nonzero(surface):
                add(f"the spleen and the left kidney touch over {contact / surface.sum():.0%} of the smaller one's "
                    f"surface and their HU bands meet: the boundary between them is uncertain", "spleen", "kidney_left")
    elif phase == "non-contrast" and (spleen.any() or kidney.any()):
        found, missing = ("spleen", "left kidney") if spleen.any() else ("left kidney", "spleen")
        hu = " to ".join(f"{v:.0f}" for v in bands.get("kidney", (0.0, 0.0)))
        add(f"on plain CT the spleen and the kidneys have close HU (kidney band {hu} HU) and no {missing} was found "
            f"beside this {found}: it may be the {missing}, or include it", "spleen" if spleen.any() else "kidney_left")
    elif kidney.any():
        # enhanced, the kidneys are searched first, in a band that holds an enhanced spleen's HU (an
        # arterial spleen of 90-140 HU, the kidney's medulla 70-100): with no spleen left beside
        # it, the left kidney found may be the spleen (the kidney itself out of the field)
        add(f"no spleen was found beside this left kidney, and in the {phase} phase the spleen's HU lies in the "
            f"kidney's band ({bands['kidney'][0]:.0f} HU and above): it may be the spleen", "kidney_left")
    return out


def _zones(frame: BodyFrame, body: np.ndarray, cage: np.ndarray) -> dict[str, np.ndarray]:
    """Where each organ is expected (coarse masks): its mode is read there, its component reaches there;
    the liver's and the spleen's inside the ``cage`` (`_Lungs.cage`)."""
    dx_spine = np.abs(frame.x - frame.spine_x)
    liver = (frame.x <= frame.mid_x - LIVER_ZONE_MM["lateral"]) & (frame.y <= frame.spine_front_y)
    liver &= frame.depth >= LIVER_ZONE_MM["depth"]
    spleen = (frame.x >= frame.mid_x + SPLEEN_LATERAL_MM) & (frame.y >= frame.centre_y - 20.0)
    spleen &= frame.depth >= 15.0
    kidney = (dx_spine >= KIDNEY_ZONE_MM[0]) & (dx_spine <= KIDNEY_ZONE_MM[1])
    kidney &= (frame.y >= frame.spine_front_y - KIDNEY_FRONT_MM) & (frame.y <= frame.spine_front_y + 40.0)
    kidney &= frame.depth >= 15.0
    return {"liver": liver & cage, "spleen": spleen & cage, "kidney": kidney & body}


def _band(organ: str, phase: str, hu: np.ndarray, zone: np.ndarray, liver_hu: float | None = None,
          ) -> tuple[float, float]:
    """The organ's smoothed-HU band: the phase prior, centred on the scan's mode in the organ's zone.
    The spleen's mode is looked for within `SPLEEN_FROM_LIVER_HU` of the liver's (``liver_hu``): the
    left kidney in its zone, brighter once enhanced, or the body wall's muscle on plain CT can
    outnumber it there."""
    low, high = PRIOR_HU[phase][organ]
    search = (low, high)
    if organ == "spleen" and liver_hu is not None:
        below, above = SPLEEN_FROM_LIVER_HU[phase]
        search = (max(low, liver_hu + below), min(high, liver_hu + above))
    mode = histogram_mode(hu[zone], search) if search[0] < search[1] else None
    if mode is None:
        return low, high
    if organ == "kidney" and phase != "non-contrast":
        return max(low, mode - KIDNEY_BELOW_HU), KIDNEY_TOP_HU
    half = HALF_WIDTH_HU[phase][organ]
    if organ == "liver":
        # the liver, large and first, is surely there: the prior bounds where its mode is looked
        # for, not the band around it (a plain liver at 47 HU lost its part below 38 HU)
        below = half
        if phase == "non-contrast":
            below = min(half, max(LIVER_MIN_BELOW_HU, LIVER_SPREADS_BELOW * _upper_spread(hu[zone], mode, half)))
        return mode - below, mode + half
    if organ == "spleen" and phase == "non-contrast" and liver_hu is not None:
        # placed by the liver's level (`_Liver`), found before the kidneys: the band follows its own
        # mode below the prior (a plain spleen of 35 HU beside a liver of 47 HU lost its lower half)
        return mode - half, min(high, mode + half)
    # spleen and kidneys: a mode at the prior's edge may be no organ at all (chest wall muscle on
    # a chest CT); plain kidneys lie within 10-15 HU of the spleen beside them
    return max(low, mode - half), min(high, mode + half)


def _plain_kidney_band(hu: np.ndarray, zone: np.ndarray, liver_hu: float, liver_floor: float,
                       ) -> tuple[float, float] | None:
    """The second plain-CT kidney band (`KIDNEY_PLAIN_BELOW_LIVER_HU`): the mode of the kidneys' ``zone``
    between those HU below the liver's mode ``liver_hu``, +- `KIDNEY_RELATIVE_HALF_HU`, below the liver's band
    (``liver_floor``); None without such a mode, or where the prior's floor did not cut the first band (the
    mode no lower than that floor plus the band's half width): the first search then saw what lies there (a
    chest CT's upper abdomen at 37 HU, no kidney in it, was taken as a 477 mL left kidney)."""
    below, above = KIDNEY_PLAIN_BELOW_LIVER_HU
    mode = histogram_mode(hu[zone], (liver_hu - above, liver_hu - below))
    if mode is None or mode - HALF_WIDTH_HU["non-contrast"]["kidney"] >= PRIOR_HU["non-contrast"]["kidney"][0]:
        return None
    return mode - KIDNEY_RELATIVE_HALF_HU, min(mode + KIDNEY_RELATIVE_HALF_HU, liver_floor)


def _plain_kidney_doubt(band: tuple[float, float], liver_hu: float) -> str:
    low, high = PRIOR_HU["non-contrast"]["kidney"]
    return (f"found only in a band read from this scan ({band[0]:.0f} to {band[1]:.0f} HU, up to "
            f"{liver_hu - band[0]:.0f} HU below the liver), not in plain-CT kidneys' usual {low:.0f} to {high:.0f} HU: "
            "muscle, bowel or renal vessels of that HU may be part of it, or taken for the kidney")


def _grow_band(organ: str, phase: str, band: tuple[float, float]) -> tuple[float, float]:
    """The band the chosen basins grow back in (`_grow`): the organ's, for a plain liver the full
    `HALF_WIDTH_HU` below its mode (its band's top lies that far above it). Its narrowed band
    (`LIVER_SPREADS_BELOW`) keeps darker neighbours out of its basins; grown only a ball of
    `OPENING_MM` beyond them, the full width takes back its partial-volume edge, and keeps the
    darker tissue a hypodense lesion at its edge touches from making one region with the lesion
    (which then no longer counts as enclosed)."""
    if organ != "liver" or phase != "non-contrast":
        return band
    return min(band[0], band[1] - 2.0 * HALF_WIDTH_HU[phase][organ]), band[1]


def _grow_reach(organ: str, phase: str) -> float:
    """How far (mm) beyond its chosen basins ``organ`` grows back through its band (`_grow`):
    `REACH_MM` for a portal-venous spleen, else `OPENING_MM`. The spleen's lower part, beside the
    left kidney taken before it, falls into basins of its own (the watershed splits it where the
    kidney's exclusion narrows it) and was lost beyond `OPENING_MM`: tuning seeds' portal-venous
    spleens came out 5 % small (median, 25 of 26 below their truth); grown through all of the band
    joined to it, one (5 mm slices, 33 HU noise) came out +22 %, +15 % within `REACH_MM`. Not on
    plain CT, where bowel and muscle share the spleen's band, nor arterial, where its wide band (a
    mottled spleen, mode +- 45 HU) holds darker neighbours: synthetic arterial spleens grew 8-15 %
    too large through all of it."""
    return REACH_MM[organ] if organ == "spleen" and phase == "portal-venous" else OPENING_MM[organ]


def _upper_spread(values: np.ndarray, mode: float, half: float) -> float:
    """The spread (HU, as a normal SD) of the organ's smoothed HU about its ``mode``, from the values
    above it within ``half``: below the mode lie its darker neighbours (bowel, spleen, muscle)."""
    above = values[(values >= mode) & (values <= mode + half)] - mode
    return 1.4826 * float(np.median(above)) if above.size else half


def _candidates(
    hu: np.ndarray, allowed: np.ndarray, band: tuple[float, float], organ: str, frame: BodyFrame, fill: bool,
    zone: np.ndarray, core_from: float | None = None, dome: bool = False, vote: bool = False,
) -> list[_Candidate]:
    """The basins of the opened in-band components that reach into the organ's ``zone`` (module
    docstring, steps 1-2). With ``core_from``, the deep voxels below that HU (holes filled as the
    band's) make cores of their own, marked ``foreign``: a neighbour of a lower HU inside the band
    (an enhanced spleen touching the left kidney) is parted from the organ where the HU changes,
    not where the watershed would put it, or nowhere. ``dome``: the liver's dome cut by the scan range
    (`_cut_dome`): `DOME_OPENING_MM`, `DOME_CORE_MM` and `DOME_MIN_ML` in place of the organ's. ``vote``: in-band
    voxels first take a majority vote over their 3 x 3 x 3 neighbours (noise speckle; the liver's always)."""
    from skimage.segmentation import watershed

    spacing = frame.spacing
    opening_mm, core_mm, min_ml = ((DOME_OPENING_MM, DOME_CORE_MM, DOME_MIN_ML) if dome
                                   else (OPENING_MM[organ], CORE_MM[organ], MIN_CORE_ML[organ]))
    inside = (hu >= band[0]) & (hu <= band[1]) & allowed
    if fill:
        # holes darker than the band (a kidney's medulla and pelvis), not brighter: the arterial
        # aorta ringed by its partial volume in the kidney's band is no hole of the kidney
        inside = fill_holes_slicewise(inside) & allowed & (hu <= band[1])
    if organ == "liver" or vote or dome:
        # noise speckle: on a noisy scan (tuning seed 201, 39 HU) a few percent of the liver's smoothed
        # voxels fall outside its band at random, and the opening's ball, almost always meeting one,
        # erased the liver (declined); a majority vote over each voxel's 3 x 3 x 3 neighbours drops
        # such isolated voxels, in and out of the band, and moves no edge. The plain spleen's band is
        # narrower still (mode +- 10 HU): on tuning seeds 0-99 and 100-218 with a noise SD of 25-39 HU
        # it lifted plain spleens' Dice (26: 0.47 -> 0.61, 31: 0.59 -> 0.84, 46: 0.09 -> 0.56, 58: 0.45
        # -> 0.64, 102 and 201 declined -> 0.83), with bowel of its HU joining more often (flagged:
        # 18, 70 grew to +170-260 %); on enhanced spleens it changed nothing. Bowel joined by the vote can
        # move the spleen's core below where a spleen lies, and it was declined (tuning seeds 7, 112, 115
        # and 146, Dice 0.37-0.48 without the vote): the spleen is then searched again without it. The
        # spleen's top cut by the scan range (``dome``) always votes, as the liver's dome does
        inside = ndimage.uniform_filter(inside.astype(np.float32), size=3, mode="nearest") > 0.5
        inside &= allowed
    ball = ellipsoid(opening_mm, spacing)
    if organ == "liver" or dome:
        # the scan's range cuts the liver (of a chest CT; or the spleen's top, `_cut_dome`) below: beyond its
        # lowest slice lies more organ, not background. An opening that erodes from outside the array kept
        # of the widest, lowest slice only the part under the slice above (tuning seeds 237 and 244, domes of
        # 11 mL: 7 mL; 48, 56 and 78, livers of 60-350 mL a chest CT's range cuts: Dice 0.92-0.93, now
        # 0.94-0.95; no liver of seeds 0-99 worse)
        pad = [(r, r) for r in (np.array(ball.shape) // 2)]
        inside = ndimage.binary_opening(np.pad(inside, pad, mode="edge"), ball)[
            tuple(slice(r, r + n) for (r, _), n in zip(pad, inside.shape))]
    else:
        inside = ndimage.binary_opening(inside, ball)
    bright = None
    if core_from is not None:
        bright = (hu >= core_from) & allowed
        bright = fill_holes_slicewise(bright) & (hu <= band[1]) if fill else bright
    labels, n = ndimage.label(inside, structure=CONN6)
    sizes = component_sizes(labels, n)
    min_voxels = 1000.0 * min_ml / float(np.prod(spacing))
    out: list[_Candidate] = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or sizes[index] < min_voxels:
            continue
        # one voxel of margin: the component's own edge is background, the volume's edge (a
        # field-of-view cut) is not, so an organ cut by the field of view keeps its depth
        box = grown_box(box, 1, hu.shape)
        component = labels[box] == index
        if not (component & zone[box]).any():
            continue
        depth = ndimage.distance_transform_edt(component, sampling=spacing)
        deep = depth >= core_mm
        cores, k = ndimage.label(deep if bright is None else deep & bright[box], structure=CONN6)
        own = k
        if bright is not None:
            others, k_other = ndimage.label(deep & ~bright[box], structure=CONN6)
            cores[others > 0] = others[others > 0] + k
            k += k_other
        if k == 0:
            continue
        basins = watershed(-depth, cores, mask=component) if k > 1 else cores.copy()
        if k == 1:
            basins[component] = 1
        if own < k and own > 0:
            # the organ's basins do not cross where the HU drops to the neighbour's
            light = component & bright[box]
            inner = watershed(-depth, np.where(cores <= own, cores, 0), mask=light)
            outer = watershed(-depth, np.where(cores > own, cores, 0), mask=component & ~light)
            basins = np.where(light, inner, np.where(outer > 0, outer, basins))
        near = ndimage.distance_transform_edt(cores == 0, sampling=spacing) <= REACH_MM[organ]
        core_sizes = component_sizes(cores, k)
        reached = np.where(near, basins, 0)
        # each basin and core worked on in its own box (with the shell's margin): a component of a
        # plain CT's spleen band holds a hundred small basins
        for c, (core_box, basin_box) in enumerate(zip(ndimage.find_objects(cores, k),
                                                      ndimage.find_objects(reached, k)), start=1):
            if basin_box is None:
                continue
            core = cores[core_box] == c
            zyx = tuple(np.round(np.argwhere(core).mean(axis=0) + [s.start + b.start for s, b in zip(core_box, box)]
                                 ).astype(int))
            centroid = tuple(float(a[zyx]) for a in (frame.x, frame.y, frame.z))
            level = float(np.median(hu[box][core_box][core]))
            local_box = grown_box(basin_box, 2, reached.shape)
            local = reached[local_box] == c
            mask = np.zeros(hu.shape, dtype=bool)
            mask[box][local_box] = local
            mask_box = tuple(slice(a.start + b.start, a.start + b.stop) for a, b in zip(box, local_box))
            shell = ndimage.binary_dilation(local, CONN6, iterations=2) & ~local
            similar = float(np.mean(np.abs(hu[box][local_box][shell] - level) <= SIMILAR_HU)) if shell.any() else 0.0
            out.append(_Candidate(mask, centroid, level, int(core_sizes[c]), similar, float(frame.depth[zyx]),
                                  int(zyx[0]), mask_box, int(np.count_nonzero(local)), c > own))
    out.sort(key=lambda c: -c.voxels)
    return out


def _plain_spleen_lateral(frame: BodyFrame, lungs: _Lungs) -> float:
    """How far (mm) left of the midline a plain-CT spleen's core lies at least: `PLAIN_SPLEEN_LATERAL_MM`,
    less in a patient whose left lung reaches less far (`PLAIN_SPLEEN_LATERAL_OF_LUNG`)."""
    if lungs.x_range is None:
        return PLAIN_SPLEEN_LATERAL_MM
    reach = lungs.x_range[1] - frame.mid_x
    return min(PLAIN_SPLEEN_LATERAL_MM, PLAIN_SPLEEN_LATERAL_OF_LUNG * reach) if reach > 0 else PLAIN_SPLEEN_LATERAL_MM


def _thoracic(c: _Candidate, frame: BodyFrame, lungs: _Lungs, above_z: float) -> bool:
    """Whether a core lies in the chest (the heart): above ``above_z``, between the lungs' medial
    edges in its slice. Not between their centroids: at the bases each lung's posterior recess
    wraps around the liver or the spleen laterally, which would put those organs "between" them."""
    if c.centroid[2] <= above_z:
        return False
    k = c.slice
    left, right = lungs.left[k], lungs.right[k]
    # a few voxels of "lung" (the recesses' tips, bowel gas below the chest) make no chest
    if lungs.fraction[k] < THORACIC_LUNG_FRACTION or not (left.any() and right.any()):
        return False
    return float(frame.x[k][right].max()) < c.centroid[0] < float(frame.x[k][left].min())


def _choose(
    target: str, candidates: list[_Candidate], frame: BodyFrame, lungs: _Lungs,
    voxel_ml: float, liver: _Liver | None = None, plain_lateral: float | None = None, min_ml: float | None = None,
) -> np.ndarray | None:
    """The chosen basins of ``target`` (module docstring, step 3), or None. ``liver``: where the
    found liver puts the spleen (`_Liver`); ``plain_lateral``: on a plain CT, how far (mm) left of the
    midline the spleen's core lies at least (lateral to the left kidney's, `PLAIN_SPLEEN_LATERAL_MM`,
    less in a narrow patient); ``min_ml``: the smallest candidate taken (default `MIN_CORE_ML`).

    The largest core where the organ belongs, joined by the basins of similar HU that touch it
    (the organ cut by the watershed at a constriction or by noise) and do not lie where another
    organ belongs.
    """
    organ = target.split("_")[0]
    lowest_z = float(frame.z.min())
    if target == "liver":
        def fits(c: _Candidate) -> bool:
            return (c.centroid[0] < frame.mid_x and not _thoracic(c, frame, lungs, lowest_z)
                    and not lungs.beside_cage(c) and not _back_muscle(c, frame))
    elif target == "spleen":
        def fits(c: _Candidate) -> bool:
            lateral = SPLEEN_LATERAL_MM if plain_lateral is None else plain_lateral
            return (c.centroid[0] >= frame.mid_x + lateral and c.centroid[1] >= frame.centre_y - 20.0
                    and c.depth_mm >= ORGAN_MIN_DEPTH_MM and not _back_muscle(c, frame)
                    and not _thoracic(c, frame, lungs, lowest_z)
                    # the heart beside a left lung wrapping behind it is not "between" the lungs'
                    # medial edges; it lies above the liver's dome (the lungs' recesses reach far
                    # down around the spleen: no lung fraction tells them apart)
                    and not lungs.beside_cage(c)
                    # without a liver the upper abdomen may be out of the field: a core in the
                    # chest (the heart, enhanced like the spleen) is not taken for it
                    and (lungs.fraction[c.slice] < SPLEEN_MAX_LUNG_FRACTION if liver is None
                         else liver.spleen_floor <= c.centroid[2] < liver.top))
    else:
        side = 1.0 if target == "kidney_left" else -1.0

        def fits(c: _Candidate) -> bool:
            return (KIDNEY_ZONE_MM[0] <= side * (c.centroid[0] - frame.spine_x) <= KIDNEY_CORE_MAX_MM
                    and -KIDNEY_FRONT_MM <= c.centroid[1] - frame.spine_front_y <= KIDNEY_CORE_BEHIND_MM
                    and c.depth_mm >= ORGAN_MIN_DEPTH_MM
                    and lungs.fraction[c.slice] < KIDNEY_MAX_LUNG_FRACTION
                    and c.similar_shell <= KIDNEY_MAX_SIMILAR_SHELL and not lungs.beside_cage(c) and not c.foreign)
    min_ml = MIN_CORE_ML[organ] if min_ml is None else min_ml
    big = [c for c in candidates if fits(c) and c.voxels * voxel_ml >= min_ml]
    if not big:
        return None
    main = max(big, key=lambda c: c.core_voxels)

    def joins(c: _Candidate) -> bool:
        if c is main or abs(c.hu - main.hu) > SAME_ORGAN_HU:
            return False
        return not _elsewhere(c, frame, lungs, main.centroid[2]) if organ == "liver" else fits(c)

    pending = [c for c in candidates if joins(c)]
    mask = main.mask.copy()
    while pending:
        near = ndimage.binary_dilation(mask, CONN6)
        touching = [c for c in pending if c.meets(near)]
        if not touching:
            break
        for c in touching:
            mask[c.box] |= c.mask[c.box]
            pending.remove(c)
    return mask


def _spleen_beyond_prior(candidates: list[_Candidate], frame: BodyFrame, lungs: _Lungs, voxel_ml: float,
                         liver: _Liver, plain_lateral: float) -> tuple[np.ndarray, str] | None:
    """A plain-CT spleen (chosen basins, why it is doubtful) from a solid core (`SPLEEN_SOLID_CORE_ML`) lying up to
    `SPLEEN_PRIOR_SLACK_MM` medial to ``plain_lateral`` or below the ``liver``'s spleen floor, for a search that
    found none within them (`_choose`), or None. Bowel and the body wall's muscle the majority vote joins to a
    noisy spleen move its core's centre there; the search without the vote then took noise fragments with no
    core instead."""
    solid = [c for c in candidates if c.core_voxels * voxel_ml >= SPLEEN_SOLID_CORE_ML]
    # below the floor only beside a whole liver, whose centre places the spleen (a liver the scan cuts below places
    # it by its top, `SPLEEN_BELOW_DOME_MM` below, a bound kept)
    loose = liver if liver.cut_below else replace(liver, spleen_floor=liver.spleen_floor - SPLEEN_PRIOR_SLACK_MM)
    chosen = _choose("spleen", solid, frame, lungs, voxel_ml, loose, plain_lateral - SPLEEN_PRIOR_SLACK_MM)
    if chosen is None:
        return None
    why = (f"no spleen was found where a plain CT's spleen lies (its core at least {plain_lateral:.0f} mm left of the "
           f"midline and no lower than {SPLEEN_BELOW_LIVER_MM:.0f} mm below the liver's centre); this one lies up to "
           f"{SPLEEN_PRIOR_SLACK_MM:.0f} mm beyond that: it may be the left kidney, or include bowel or muscle of its HU")
    return chosen, why


def _under_lung(lung: np.ndarray, hu: np.ndarray, below_mm: tuple[float, ...], dz: float) -> list[np.ndarray]:
    """For each depth of ``below_mm``: the coarse voxels at least that far below a lung's (coarse mask) lowest
    aerated voxel (below `HU_AIR`) in their column (the slice axis; ``dz``: the coarse slice spacing, mm): under
    its hemidiaphragm, where the liver (right) or the spleen (left) lies. Aerated: the lung's label holds the
    dome the lung's base surrounds in a slice (filled as a hole of the lung)."""
    aerated = lung & (hu < HU_AIR)
    base = np.argmax(aerated, axis=0)  # the lowest aerated slice of each column
    columns = aerated.any(axis=0)[None]
    k = np.arange(aerated.shape[0])[:, None, None]
    return [columns & (k < base[None] - int(np.ceil(mm / dz - 1e-6))) for mm in below_mm]


def _cut_dome(target: str, hu: np.ndarray, allowed: np.ndarray, side: np.ndarray, phase: str, frame: BodyFrame,
              lungs: _Lungs, voxel_ml: float, liver: _Liver | None = None, liver_hu: float | None = None,
              ) -> tuple[np.ndarray, tuple[float, float], str, np.ndarray] | None:
    """The liver or the spleen (``target``) where the scan range cuts it below and the usual search found
    none: (coarse mask, its band, the doubt to report, where it may grow), or None.

    At the caudal edge of a chest CT only the liver's dome (under the right hemidiaphragm) or the
    spleen's top (under the left, lateral and posterior) is in the field, beneath that lung's base: too
    small for `MIN_CORE_ML`, too thin for `CORE_MM` cores, and where the organ's zone holds more chest
    wall, heart or muscle than organ its mode is theirs (an arterial chest CT: muscle at 41 HU, the liver
    at 67 no peak). Here its HU is the mode of the tissue at least `DIAPHRAGM_MM` below that lung's
    aerated base in each column, inside the cage, in ``side`` (the liver's half of the body; the
    spleen's search zone), and its band the organ's about that mode (`_band`; the spleen's near the
    liver's HU, ``liver_hu``); only the voxels at least `DIAPHRAGM_MM` from aerated lung may hold it (the
    diaphragm between, of the liver's HU on plain CT, wraps a dome of a few slices: tuning seed 124, +58 %
    with it; that mask also bounds its growth, `_grow`). Its candidates are the dome's (`_candidates`);
    only those reaching the scan's lowest slice with `DOME_UNDER_LUNG` of themselves under that lung's
    base are taken, as the organ is (`_choose`, the spleen below the found ``liver``'s top), the spleen's
    only when clear of the midline (`SPLEEN_TOP_MEDIAL_MM`). A plain-CT
    spleen's core need not lie lateral to where the left kidney's may (`PLAIN_SPLEEN_LATERAL_MM`): the
    spleen's top, all a chest CT shows of it, lies more medial than its centre, beneath the lung's base,
    above the kidney (tuning seed 761: a 70 mL top's core 74 mm left of the midline, 5 mm short of the
    narrow patient's bound, declined).
    Always doubtful: the scan range cuts it, so its size is that of the part in view."""
    organ, lung, hemi = (("liver", lungs.right, "right") if target == "liver" else ("spleen", lungs.left, "left"))
    under, near = _under_lung(lung, hu, (DIAPHRAGM_MM, 0.0), frame.spacing[0])
    under &= allowed & side
    if histogram_mode(hu[under], PRIOR_HU[phase][organ]) is None:
        return None
    band = _band(organ, phase, hu, under, liver_hu)
    aerated = (lungs.left | lungs.right) & (hu < HU_AIR)
    below_diaphragm = ndimage.distance_transform_edt(~aerated, sampling=frame.spacing) >= DIAPHRAGM_MM
    # the lung's base lies anywhere within the slice below its last aerated one: a slice's centre less than
    # `DIAPHRAGM_MM` and half a slice below that is more diaphragm than liver, on average (tuning seed 124,
    # 5 mm slices: the slice under the lung held 4 mL of diaphragm and no liver)
    dz = frame.spacing[0]
    for j in range(1, int(np.ceil((DIAPHRAGM_MM + dz / 2) / dz - 1e-6))):
        below_diaphragm[:-j] &= ~aerated[j:]
    candidates = [c for c in _candidates(hu, allowed & below_diaphragm, band, organ, frame, False, near, dome=True)
                  if c.box[0].start == 0
                  and np.count_nonzero(c.mask[c.box] & near[c.box]) >= DOME_UNDER_LUNG * c.voxels
                  and (organ == "liver" or frame.x[c.box][c.mask[c.box]].min() - frame.mid_x >= SPLEEN_TOP_MEDIAL_MM)]
    chosen = _choose(target, candidates, frame, lungs, voxel_ml, liver, min_ml=DOME_MIN_ML)
    if chosen is None:
        return None
    why = (f"the scan range cuts the {organ} below: what was found is the part of it in view under the {hemi} "
           f"hemidiaphragm (its HU band, {band[0]:.0f} to {band[1]:.0f} HU, read from the tissue under the {hemi} "
           f"lung's base); its size is that of the part shown, not of the {organ}, and its edges there are less sure")
    return chosen, band, why, below_diaphragm


def _thick_part(chosen: np.ndarray, depth_below_skin: np.ndarray, spacing: tuple[float, float, float],
                voxel_ml: float) -> tuple[np.ndarray, int]:
    """A plain-CT spleen's chosen basins (coarse mask) less their thin outgrowths: (mask, voxels left out).

    The spleen is a smooth organ at least 2 `SPLEEN_THICK_MM` thick; bowel of its HU, mottled with fat and gas
    every 10-20 mm, joins it over broad contacts with no narrowing for the opening or the watershed to cut.
    The spleen's body is the part of ``chosen`` a ball of `SPLEEN_THICK_MM` fits in (an opening of it with its
    noise holes closed; the scan's ends are no edge) that holds its deepest voxel, with what lies within
    `SPLEEN_EDGE_MM` of it; of the rest, the pieces of at least `OUTGROWTH_ML` are left out (a bowel loop; the
    spleen's own tips and corners, where no ball fits, come in pieces of a few mL) that lie deeper below the skin
    (``depth_below_skin``, mm) on average than the body, by `OUTGROWTH_DEEPER_MM`: away from the posterolateral
    wall the spleen rests on, towards the bowel in front of and medial to it (a thin spleen's own edge, tuning
    seed 607's 16 mL on the wall, or the synthetic abdomen's seed 2 moved medially, 21 mL of 50, lies no
    deeper), and that reach on average `OUTGROWTH_REACH_MM` beyond their contact with the body (volume over
    contact area): bowel joined over a neck narrower than itself or lying along the spleen's front, where a thin
    spleen's own pole or rim, joined to its body all along its length, reaches a few mm past it (the synthetic
    abdomen's noisy plain spleens' thin part under the dome). A piece reaching `OUTGROWTH_FAR_REACH_MM` is left
    out at any depth: bowel hanging below the lower pole along the wall lies no deeper than the body. Unchanged
    when no ball fits (a small spleen, or a thin one the field cuts)."""
    box = grown_box(bounding_box(chosen), 1, chosen.shape)
    part = chosen[box]
    ball = ellipsoid(SPLEEN_THICK_MM, spacing)
    pad = [(r, r) for r in (np.array(ball.shape) // 2)]
    # noise leaves the spleen's narrow band (mode +- 10 HU) full of holes, which no ball fits between
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(np.pad(part, pad, mode="edge"), CONN6, iterations=2))
    opened = ndimage.binary_opening(solid, ball)[tuple(slice(r, r + n) for (r, _), n in zip(pad, part.shape))] & part
    if not opened.any():
        return chosen, 0
    labels, _ = ndimage.label(opened, structure=CONN6)
    depth = ndimage.distance_transform_edt(part, sampling=spacing)
    body = labels == labels[np.unravel_index(np.argmax(np.where(opened, depth, -1.0)), part.shape)]
    near = ndimage.binary_dilation(body, ellipsoid(SPLEEN_EDGE_MM, spacing)) & part
    body = ndimage.binary_propagation(body, mask=near, structure=CONN6)
    pieces, n = ndimage.label(part & ~body, structure=CONN6)
    index = np.arange(1, n + 1)
    deeper_mm = np.asarray(ndimage.mean(depth_below_skin[box], pieces, index)) - float(depth_below_skin[box][body].mean())
    ml = component_sizes(pieces, n)[1:] * voxel_ml
    reach = ml * 1000.0 / np.maximum(_contact_mm2(pieces, n, body, spacing), 1.0)
    far = (reach >= OUTGROWTH_FAR_REACH_MM) | (deeper_mm > OUTGROWTH_DEEPER_MM) & (reach >= OUTGROWTH_REACH_MM)
    big = index[(ml >= OUTGROWTH_ML) & far]
    out = chosen.copy()
    out[box] &= ~np.isin(pieces, big)
    return out, int(np.count_nonzero(chosen) - np.count_nonzero(out))


def _contact_mm2(labels: np.ndarray, n: int, other: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Per label 1..n of ``labels``, the area (mm²) of the voxel faces it shares with ``other``."""
    area = np.zeros(n + 1)
    for axis in range(3):
        face_mm2 = float(np.prod([s for k, s in enumerate(spacing) if k != axis]))
        lo = tuple(slice(0, -1) if k == axis else slice(None) for k in range(3))
        hi = tuple(slice(1, None) if k == axis else slice(None) for k in range(3))
        for mine, theirs in ((labels[lo], other[hi]), (labels[hi], other[lo])):
            area += face_mm2 * component_sizes(mine[theirs], n)
    return area[1:]


def _thin_cut_doubt(ml: float) -> str:
    return (f"{ml:.0f} mL of tissue of the spleen's HU joined to it in parts thinner than {2 * SPLEEN_THICK_MM:.0f} mm "
            f"and reaching over {OUTGROWTH_REACH_MM:.0f} mm beyond where they meet (bowel between fat, on plain CT of "
            "the spleen's HU) was left out: where they met, the spleen's edge is placed by shape, not seen")


def _back_muscle(c: _Candidate, frame: BodyFrame) -> bool:
    """Whether a core lies behind the vertebral bodies beside the spine (the paraspinal muscles)."""
    return c.centroid[1] >= frame.spine_front_y + BACK_MUSCLE_MM and abs(c.centroid[0] - frame.spine_x) <= 70.0


def _elsewhere(c: _Candidate, frame: BodyFrame, lungs: _Lungs, liver_z: float) -> bool:
    """Whether a core of the liver's component lies where the spleen, a kidney, the heart or the back
    muscles belong."""
    x, y, _ = c.centroid
    spleen = x >= frame.mid_x + SPLEEN_LATERAL_MM and y >= frame.centre_y - 20.0
    kidney = abs(x - frame.spine_x) >= KIDNEY_ZONE_MM[0] and y >= frame.spine_front_y - 10.0
    return spleen or kidney or _back_muscle(c, frame) or _thoracic(c, frame, lungs, liver_z)


def _grow(
    chosen: np.ndarray, hu: np.ndarray, hu_edge: np.ndarray, allowed: np.ndarray, band: tuple[float, float],
    edge: float, organ: str, spacing: tuple[float, float, float], reach_mm: float,
) -> np.ndarray:
    """Undo the opening within the band, take back the edge blurred by the smoothing, add the
    hypodense regions the organ encloses, fill holes (step 4). Works in the organ's bounding box.
    ``reach_mm``: how far (mm) beyond the chosen basins the band is grown back into (`_grow_reach`),
    within the box (the basins' and `OPENING_MM` + `RIM_MM` beyond)."""
    full_shape = chosen.shape
    margin = [int(np.ceil((OPENING_MM[organ] + RIM_MM[organ]) / s)) + 2 for s in spacing]
    box = grown_box(bounding_box(chosen), margin, chosen.shape)
    chosen, hu, hu_edge, allowed = chosen[box], hu[box], hu_edge[box], allowed[box]
    # the lower bound on the lightly smoothed HU: the heavily smoothed one gives the seams between
    # muscle and fat next to an organ the organ's HU; the upper on the heavily smoothed (less noise)
    in_band = (hu_edge >= band[0]) & (hu <= band[1]) & allowed
    ball = ellipsoid(OPENING_MM[organ], spacing)
    near = ndimage.binary_dilation(chosen, ellipsoid(reach_mm, spacing)) & in_band
    grown = ndimage.binary_propagation(chosen, mask=chosen | near, structure=CONN6)
    # towards fat the band's edge lies about 1.2 EDGE_SMOOTH_MM inside the organ's: take back that
    # rim, darker than the band (partial volume with fat) but above fat
    darker = allowed & (hu_edge > edge) & (hu < band[0])
    lesions = _add_enclosed(grown, darker & ~grown) & ~grown
    if lesions.any():
        # organ tissue beyond an enclosed lesion, darkened by the smoothing, joins with it
        grown |= lesions | (ndimage.binary_dilation(lesions, ball) & in_band)
    reach = max(RIM_MM[organ], max(spacing[1:]) * 1.01)
    rim = darker
    if organ != "liver":
        # partial volume lies between the organ's HU and the tissue beyond it: halfway to fat is the
        # organ's edge, halfway to muscle (50 HU beside an enhanced spleen of 120) is the muscle's
        beyond = ndimage.grey_erosion(hu_edge, footprint=ellipsoid(2 * reach, spacing, planar=True))
        rim = darker & (2.0 * hu_edge >= float(np.median(hu[chosen])) + beyond)
    grown |= ndimage.binary_dilation(grown, ellipsoid(reach, spacing, planar=True)) & rim
    out = np.zeros(full_shape, dtype=bool)
    out[box] = fill_holes_slicewise(grown) & allowed
    return out


def _add_enclosed(organ: np.ndarray, darker: np.ndarray) -> np.ndarray:
    """``organ`` plus the components of ``darker`` (hypodense, above fat) that it mostly encloses:
    at least `ENCLOSED_FRACTION` of their outer surface on the organ (a lesion at the liver's edge;
    not the bowel, vessels or muscle that merely touch it)."""
    labels, n = ndimage.label(darker, structure=CONN6)
    if n == 0:
        return organ
    touching = np.unique(labels[ndimage.binary_dilation(organ, CONN6) & darker])
    # ``organ`` is cropped to its box and a margin: a region reaching the crop's edge goes on beyond it
    # (a neighbour), however much of what is left of its surface the organ covers
    edge = np.zeros(organ.shape, dtype=bool)
    for axis in range(organ.ndim):
        index = [slice(None)] * organ.ndim
        for end in (0, -1):
            index[axis] = end
            edge[tuple(index)] = True
    touching = np.setdiff1d(touching, labels[edge])
    out = organ.copy()
    boxes = ndimage.find_objects(labels)
    for index in touching[touching > 0]:
        box = grown_box(boxes[index - 1], 1, labels.shape)
        part = labels[box] == index
        ring = ndimage.binary_dilation(part, CONN6) & ~part
        if np.count_nonzero(ring & organ[box]) >= ENCLOSED_FRACTION * np.count_nonzero(ring):
            out[box] |= part
    return out


def _not_found(target: str, band: tuple[float, float], phase: str, organ: str,
               second: tuple[float, float] | None = None) -> str:
    """Why ``target`` was not found; ``second``: the band a second search used (`_plain_kidney_band`)."""
    name = " ".join(reversed(target.split("_")))  # kidney_left -> left kidney
    again = f", then of {second[0]:.0f} to {second[1]:.0f} HU (read from this scan)" if second else ""
    return (
        f"no {name} found: searched for a soft-tissue component of {band[0]:.0f} to {band[1]:.0f} HU{again} "
        f"(estimated phase {phase}) and at least {MIN_CORE_ML[organ]:g} mL where it should lie; is the upper "
        "abdomen in the field of view? (the classical organ segmenter is a heuristic; use --segmenter "
        "totalseg --weights DIR on real scans)"
    )
