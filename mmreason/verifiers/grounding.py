"""Grounding checks: boxes, points and sides stated in a step against evidence and ground truth.

Claims read from prose (text and answer steps):

* a box ``[x1, y1, x2, y2]`` (pixel edges, as ``bbox_2d``) on the view named in its sentence
  ("Image 3", "V2") or else on the first view of the evidence the step cites. When the model was
  shown that view resized (``ImageRef.model_size``) the box is read in the frame the model saw.
* a point ``point (x, y)`` / ``point_2d [x, y]`` in the same frames;
* a side: a sentence naming exactly one of left/right, not negated, not about the image's own
  left/right (which is the patient's right on radiological views).

References:

* cited evidence: a box must overlap a cited mask with IoU >= ``iou_threshold`` (bounding box of
  the mask on the claimed slice) or, for evidence with a box but no mask (a crop), have its centre
  inside that box; a point must fall inside the mask or box; a side must equal the evidence's
  laterality (`evidence_laterality`).
* ground truth (``Case.boxes`` on the same image, ``Case.masks`` on image 0): checked only when
  the sentence is about the finding (it names a word of the ground-truth label or a finding word
  such as nodule/lesion/mass), so "the left lung spans [...]" is not scored against a nodule box.
  The best IoU is reported on the verdict (``iou``) for the benchmark's mean grounding IoU.

IoU of a box drawn on a slice is computed in that slice's plane, and is zero when the slice
misses the reference along the slice normal; on a projection (MIP) the projected axis is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from grounding.evidence import Evidence
from imaging.geometry import GeometryError
from imaging.locate import Ranges, locate_box, locate_point, ranges_hold, voxel_index
from mmreason.parsing import find_boxes, find_points
from mmreason.quantities import cited_evidence
from mmreason.verifiers.context import FINDING, VerifyContext, evidence_laterality, side_words
from mmreason.verifiers.steps import Step
from mmreason.verifiers.verdicts import Check

_IMAGE_REF = re.compile(r"\bImage\s+(\d+)\b", re.IGNORECASE)
_VIEW_REF = re.compile(r"\b(V\d+)\b")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_NEGATION = re.compile(r"\b(no|not|without|absent|neither|nor|free of)\b", re.IGNORECASE)
_IMAGE_SIDE = re.compile(r"\b(image|screen|viewer|picture)\b", re.IGNORECASE)


@dataclass
class Region:
    """A claimed box in voxels: its ranges, the slice normal (None: 3-D) and whether projected."""

    ranges: Ranges
    axis: int | None
    projection: bool
    volume: str


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s and s.strip()]


def check_grounding(ctx: VerifyContext, step: Step) -> list[Check]:
    if step.kind == "tool_call":
        return _tool_box_vs_truth(ctx, step)
    checks: list[Check] = []
    for sentence in sentences(step.text):
        cited = [ctx.evidence[i] for i in (cited_evidence(sentence) or step.cited) if i in ctx.evidence]
        about_finding = _about_finding(ctx, sentence)
        for kind, claims in (("box", find_boxes(sentence)), ("point", find_points(sentence))):
            for values in claims:
                checks += _claim(ctx, step, sentence, kind, values, cited, about_finding)
        if step.kind == "text":  # the answer's side is checked by the consistency verifier
            checks += _side_claim(ctx, sentence, cited)
    return checks


def _claim(ctx: VerifyContext, step: Step, sentence: str, kind: str, values: list[float], cited: list[Evidence],
           about_finding: bool) -> list[Check]:
    """Check a ``box`` or ``point`` claim on the view its sentence names (or the cited evidence shows)."""
    shown = f"{kind} {[round(v, 1) for v in values]}"
    view_id = _view_for(ctx, sentence, step, cited)
    if view_id is None:
        return [Check("unverifiable", f"{shown}: no view named or cited to read it on")]
    check = _box_claim if kind == "box" else _point_claim
    return check(ctx, view_id, shown, values, cited, about_finding)


# -- boxes --------------------------------------------------------------------------------------
def _box_claim(ctx: VerifyContext, view_id: str, shown: str, box: list[float], cited: list[Evidence],
               about_finding: bool) -> list[Check]:
    try:
        region = claimed_region(ctx, view_id, box)
    except GeometryError as exc:
        return [Check("incorrect", f"{shown} on {view_id}: {exc}", "box_mismatch")]
    if region is None:
        return [Check("unverifiable", f"{shown} on projection {view_id}: the projected depth is unknown")]
    thr = ctx.config.iou_threshold
    checks = []
    for ev in cited:
        if ctx.volume_of(ev) not in (None, region.volume):
            continue
        if ev.mask is not None and ev.mask.any():
            iou = region_iou(region, mask_ranges(ev.mask, region))
            ok = iou >= thr
            checks.append(Check("correct" if ok else "incorrect",
                                f"{shown} vs mask of {ev.id}: IoU {iou:.2f} ({'>=' if ok else '<'} {thr})",
                                None if ok else "box_mismatch", [ev.id]))
        elif ev.box and ev.box.get("voxels"):
            inside = _contains(ev.box["voxels"], _centre(region.ranges), region)
            checks.append(Check("correct" if inside else "incorrect",
                                f"{shown} {'lies' if inside else 'does not lie'} inside the box of {ev.id}",
                                None if inside else "box_mismatch", [ev.id]))
    if about_finding:
        truth = _truth_regions(ctx, region)
        if truth:
            label, iou = _best_truth(region, truth)
            ok = iou >= thr
            checks.append(Check("correct" if ok else "incorrect",
                                f"{shown} vs ground truth '{label}': IoU {iou:.2f} ({'>=' if ok else '<'} {thr})",
                                None if ok else "box_mismatch", iou=iou))
    return checks or [Check("unverifiable", f"{shown}: no cited mask/box or ground truth to compare with")]


def claimed_region(ctx: VerifyContext, view_id: str, box: list[float]) -> Region | None:
    """Map a box the model wrote on ``view_id`` (in the frame it saw the view in) to voxel ranges
    (`imaging.locate.locate_box`; None: a projection whose depth is unknown).

    Raises:
        GeometryError: the box is degenerate or lies outside the view.
    """
    geometry = ctx.views[view_id].geometry
    frame = ctx.frames[view_id][1] if view_id in ctx.frames else None
    projected = geometry.panels()[0].geometry.projection_axis is not None  # only a projection needs the depth
    located = locate_box(geometry, box, frame_size=frame, shape=_shape(ctx, geometry.volume) if projected else None,
                         name="box", image=view_id)
    if located.ranges is None:
        return None
    geom = located.geometry
    return Region(located.ranges, geom.normal_axis(), geom.projection_axis is not None, geom.volume)


def _shape(ctx: VerifyContext, volume: str) -> tuple[int, ...] | None:
    """The (z, y, x) grid of ``volume``, from a mask of the trace or of the ground truth on it."""
    for ev in ctx.trace.evidence:
        if ev.mask is not None and ctx.volume_of(ev) in (None, volume):
            return ev.mask.shape
    masks = ctx.gt_masks() if ctx.image_index(volume) == 0 else {}
    return next((m.shape for m in masks.values()), None)


def region_iou(region: Region, ref: Ranges | None) -> float:
    """IoU of a claimed region with reference ranges, in the claim's plane (module docstring)."""
    if ref is None:
        return 0.0
    a = region.ranges
    axes = [0, 1, 2]
    if region.axis is not None:
        k = region.axis
        if not region.projection and min(a[k][1], ref[k][1]) <= max(a[k][0], ref[k][0]):
            return 0.0
        axes.remove(k)
    inter = np.prod([max(0, min(a[i][1], ref[i][1]) - max(a[i][0], ref[i][0])) for i in axes])
    size_a = np.prod([a[i][1] - a[i][0] for i in axes])
    size_b = np.prod([ref[i][1] - ref[i][0] for i in axes])
    union = size_a + size_b - inter
    return float(inter / union) if union > 0 else 0.0


def mask_ranges(mask: np.ndarray, region: Region | None = None) -> Ranges | None:
    """Bounding ranges of a mask; on a slice claim, of the mask's part on the claimed slices."""
    if region is not None and region.axis is not None and not region.projection:
        k = region.axis
        lo, hi = region.ranges[k]
        sub = np.zeros_like(mask)
        index = [slice(None)] * 3
        index[k] = slice(lo, hi)
        sub[tuple(index)] = mask[tuple(index)]
        mask = sub
    idx = np.nonzero(mask)
    if not idx[0].size:
        return None
    return [[int(i.min()), int(i.max()) + 1] for i in idx]


def _centre(ranges: Ranges) -> list[float]:
    return [(lo + hi - 1) / 2 for lo, hi in ranges]


def _contains(ranges: Ranges, zyx: list[float], region: Region | None = None) -> bool:
    return ranges_hold(ranges, zyx, region.axis if region is not None and region.projection else None)


def _truth_regions(ctx: VerifyContext, region: Region) -> list[tuple[str, Ranges]]:
    image = ctx.image_index(region.volume)
    out = [(str(b.get("label", "box")), [[int(lo), int(hi)] for lo, hi in zip(b["zyx_min"], b["zyx_max"])])
           for b in ctx.gt_boxes(image)]
    if image == 0:
        for label, mask in ctx.gt_masks().items():
            ranges = mask_ranges(mask, region)
            if ranges is not None:
                out.append((label, ranges))
    return out


def _best_truth(region: Region, truth: list[tuple[str, Ranges]]) -> tuple[str, float]:
    """The ground-truth label the region overlaps most, and that IoU."""
    return max(((label, region_iou(region, ranges)) for label, ranges in truth), key=lambda t: t[1])


def _tool_box_vs_truth(ctx: VerifyContext, step: Step) -> list[Check]:
    """What a tool call localised against ground truth: records the IoU, never fails the step.

    The region is the call's box (a measured or prompted box; crops are left out, their margin
    makes any IoU with a small finding low by design) or, for a segmentation of a finding
    (nodule, lesion, mass, or a box/point prompt), the mask's bounding box (in its plane for a
    2-D segmentation); an empty segmentation where the ground truth has a region scores IoU 0.
    A look at another structure is not an error by itself, so the label comes from the call's
    execution; the IoU feeds the mean grounding IoU.
    """
    call = step.tool_call
    ev = ctx.evidence.get(call.evidence_id or "") if call else None
    if ev is None or ev.error:
        return []
    if ev.tool != "crop" and ev.box and ev.box.get("voxels"):
        view = ctx.views.get(ev.box.get("view_id", ""))
        # every panel of a montage shows the same plane
        geom = view.geometry.panels()[0].geometry if view is not None else None
        region = Region([list(map(int, r)) for r in ev.box["voxels"]], geom.normal_axis() if geom else None,
                        geom is not None and geom.projection_axis is not None,
                        geom.volume if geom is not None else ctx.volume_of(ev) or "0")
    elif ev.tool == "segment" and ev.mask is not None and _finding_prompt(ev):
        axis = ev.data.get("plane_axis") if ev.data.get("mode") == "2d" else None
        region = Region(mask_ranges(ev.mask) or [[0, 0]] * 3, axis, False, ctx.volume_of(ev) or "0")
    else:
        return []
    truth = _truth_regions(ctx, region)
    if not truth:
        return []
    if not any(hi > lo for lo, hi in region.ranges):  # an empty segmentation of a finding that exists
        return [Check("unverifiable", f"{ev.id} segmented nothing where the ground truth has "
                      f"'{truth[0][0]}': IoU 0.00", None, [ev.id], iou=0.0)]
    label, iou = _best_truth(region, truth)
    return [Check("unverifiable", f"region of {ev.id} vs ground truth '{label}': IoU {iou:.2f}", None, [ev.id],
                  iou=iou)]


def _finding_prompt(ev: Evidence) -> bool:
    target = str(ev.arguments.get("target", ev.data.get("target", "")))
    return bool(FINDING.search(target)) or any(
        k in ev.arguments for k in ("bbox_2d", "point_2d"))


# -- points -------------------------------------------------------------------------------------
def _point_claim(ctx: VerifyContext, view_id: str, shown: str, point: list[float], cited: list[Evidence],
                 about_finding: bool) -> list[Check]:
    frame = ctx.frames[view_id][1] if view_id in ctx.frames else None
    try:
        located = locate_point(ctx.views[view_id].geometry, point, frame_size=frame, name="point", image=view_id)
    except GeometryError as exc:
        return [Check("incorrect", f"{shown} on {view_id}: {exc}", "point_outside")]
    geom, zyx = located.geometry, located.voxel
    probe = Region([[i, i] for i in located.index()], geom.projection_axis, geom.projection_axis is not None,
                   geom.volume)
    checks = []
    for ev in cited:
        if ctx.volume_of(ev) not in (None, geom.volume):
            continue
        if ev.mask is not None:
            inside = _in_mask(ev.mask, zyx, probe)
        elif ev.box and ev.box.get("voxels"):
            inside = _contains(ev.box["voxels"], list(zyx), probe)
        else:
            continue
        checks.append(Check("correct" if inside else "incorrect",
                            f"{shown} {'inside' if inside else 'outside'} the region of {ev.id}",
                            None if inside else "point_outside", [ev.id]))
    if about_finding:
        image = ctx.image_index(geom.volume)
        hits = [_contains([[int(lo), int(hi)] for lo, hi in zip(b["zyx_min"], b["zyx_max"])], list(zyx), probe)
                for b in ctx.gt_boxes(image)]
        if image == 0:
            hits += [_in_mask(m, zyx, probe) for m in ctx.gt_masks().values()]
        if hits:
            ok = any(hits)
            checks.append(Check("correct" if ok else "incorrect",
                                f"{shown} {'inside' if ok else 'outside'} the ground-truth region",
                                None if ok else "point_outside"))
    return checks or [Check("unverifiable", f"{shown}: no cited region or ground truth to compare with")]


def _in_mask(mask: np.ndarray, zyx: np.ndarray, probe: Region) -> bool:
    idx = [min(max(voxel_index(v), 0), n - 1) for v, n in zip(zyx, mask.shape)]
    if probe.projection and probe.axis is not None:
        index: list = list(idx)
        index[probe.axis] = slice(None)
        return bool(mask[tuple(index)].any())
    return bool(mask[tuple(idx)])


# -- sides --------------------------------------------------------------------------------------
def _side_claim(ctx: VerifyContext, sentence: str, cited: list[Evidence]) -> list[Check]:
    sides = side_words(sentence)
    if len(sides) != 1 or _NEGATION.search(sentence) or _IMAGE_SIDE.search(sentence):
        return []
    side = sides.pop()
    checks = []
    for ev in cited:
        actual = evidence_laterality(ev)
        if actual is None:
            continue
        ok = actual == side
        checks.append(Check("correct" if ok else "incorrect",
                            f"states {side}; {ev.id} measured {actual}", None if ok else "laterality", [ev.id]))
    for label, truth_side in _truth_sides(ctx):
        if _mentions_label(sentence, label):
            ok = truth_side == side
            checks.append(Check("correct" if ok else "incorrect",
                                f"states {side}; ground-truth '{label}' is {truth_side}",
                                None if ok else "laterality"))
    return checks


def _truth_sides(ctx: VerifyContext) -> list[tuple[str, str]]:
    """(label, side) of ground-truth boxes that carry a side (``laterality`` key or in the label)."""
    if ctx.case is None:
        return []
    out = []
    for b in ctx.case.boxes:
        label = str(b.get("label", ""))
        named = side_words(label)
        side = b.get("laterality") or (named.pop() if len(named) == 1 else None)
        if side in ("left", "right", "midline"):
            out.append((label, side))
    return out


#: words of a ground-truth label that say where or when, not what ("left lung nodule" -> nodule)
_PLACE_WORDS = {"left", "right", "lung", "lungs", "lobe", "upper", "lower", "middle", "prior", "current"}


def _head_noun(label: str) -> str | None:
    """What a ground-truth label names: its last word that is not a place ("liver_lesion" -> lesion)."""
    words = [w for w in re.findall(r"[a-z]+", label.lower()) if len(w) >= 4 and w not in _PLACE_WORDS]
    return words[-1] if words else None


def _mentions_label(sentence: str, label: str) -> bool:
    noun = _head_noun(label)
    return noun is not None and re.search(rf"\b{noun}", sentence.lower()) is not None


def _about_finding(ctx: VerifyContext, sentence: str) -> bool:
    if FINDING.search(sentence):
        return True
    if ctx.case is None:
        return False
    labels = [str(b.get("label", "")) for b in ctx.case.boxes] + list(ctx.case.masks)
    return any(_mentions_label(sentence, lab) for lab in labels)


def _view_for(ctx: VerifyContext, sentence: str, step: Step, cited: list[Evidence]) -> str | None:
    for text in (sentence, step.text):
        m = _IMAGE_REF.search(text)
        if m and int(m.group(1)) in ctx.images and ctx.images[int(m.group(1))] in ctx.views:
            return ctx.images[int(m.group(1))]
        m = _VIEW_REF.search(text)
        if m and m.group(1) in ctx.views:
            return m.group(1)
    for ev in cited:
        if ev.views and ev.views[0].view_id in ctx.views:
            return ev.views[0].view_id
    return None
