"""What the report and the web app show of a `Trace`: annotated images, numbers in human units,
status, quality, verdicts and warnings. One renderer, so the two never disagree.

Images. Every view is enlarged to at least `DISPLAY_SIDE` pixels on its longest side (OpenCV,
cubic) and annotated from its geometry, never from the model's words:

* **orientation markers** on the image edges, from the world direction of the view's columns and
  rows through the volume's affine (LPS: +x is the patient's L, +y P, +z S). A 2-D image (a
  radiograph, a photograph) gets R/L only, in its display layout; a marker whose orientation was
  assumed carries a ``?``;
* a **scale bar** from the view's mm per pixel; when the spacing was assumed its label says so;
* a mask's **contour** (mapped voxel -> pixel through the geometry, every panel of a montage on
  its own), boxes, and **calipers** for every diameter and width a ``measure`` returned, and for
  the cardiothoracic ratio (cardiac and thoracic widths on one image).

Words. Measurements in human units (``256.3 cm2``, ``0.87 mL``, ``12.9 mm``, ``-85 HU``), each
once (no ``volume_mm3`` beside ``volume_ml``, no segment area beside the measure of the same
mask), without float noise; tool results without their machine-readable ``Result: {...}`` line;
the status as ``answered`` / ``untagged`` / ``declined`` / ``failed``; each evidence's quality
level with its reasons; each step's verifier verdict with its reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from grounding.evidence import Evidence, view_from_dict
from imaging.geometry import MontageGeometry, ViewGeometry
from imaging.locate import mask_coverage
from imaging.views import View
from mmreason.trace import Trace

#: the longest side (px) a view is enlarged to for display
DISPLAY_SIDE = 512
MASK_RGB = (255, 48, 48)
BOX_RGB = (40, 200, 255)
CALIPER_RGB = (255, 220, 40)
THORAX_RGB = (80, 220, 120)
MASK_ALPHA = 0.35
#: nice scale-bar lengths (mm)
SCALE_STEPS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)
#: world axis (LPS x, y, z) -> (letter for +, letter for -)
_LETTERS = {0: ("L", "R"), 1: ("P", "A"), 2: ("S", "I")}
_RESULT_LINE = re.compile(r"^Result: \{.*$", re.M)

STATUS_LABELS = {
    "answered": "answered",
    "untagged": "answered without an answer tag (the untagged text was taken as the answer)",
    "declined": "declined: the model said it cannot answer",
    "failed": "failed",
}


# -- words -------------------------------------------------------------------------------------
def human_value(value: float, unit: str) -> str:
    """A number in the unit a reader expects: mm2 -> cm2 from 1 cm2, mm3 -> mL, no float noise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    if unit == "mm2":
        return f"{v / 100:.1f} cm2" if abs(v) >= 100 else f"{v:.1f} mm2"
    if unit == "mm3":
        return f"{v / 1000:.3g} mL" if abs(v) >= 1000 else f"{v:.0f} mm3"
    if unit == "mL":
        return f"{v:.0f} mL" if abs(v) >= 100 else f"{v:.3g} mL"
    if unit == "mm":
        return f"{v:.1f} mm"
    if unit == "HU":
        return f"{v:.0f} HU"
    if unit in ("ratio", ""):
        return f"{v:.2f}"
    if unit == "a.u.":
        return f"{v:.1f} a.u."
    if unit == "%":
        return f"{v:.1f} %"
    return f"{v:.3g} {unit}"


def trace_status(trace: Trace) -> str:
    """``answered``, ``untagged`` (answered, but from text without an answer tag), ``declined``
    (abstained) or ``failed`` (a tool error, or the turn bound reached without an answer)."""
    if trace.status == "answered":
        return "untagged" if trace.meta.get("answer_untagged") else "answered"
    if trace.status == "abstained":
        return "declined"
    return "failed"


def failure_reason(trace: Trace) -> str:
    """Why a failed episode failed, in one line ("" when it did not fail)."""
    if trace.status == "max_turns":
        return "no answer within the turn limit"
    if trace.status == "error":
        last = (trace.meta.get("error") or "").strip().splitlines()
        return f"a tool failed: {last[-1]}" if last else "a tool failed"
    return ""


def assumed_warnings(trace: Trace) -> list[str]:
    """One sentence per fact (spacing, orientation, modality) of an input that was assumed."""
    out = []
    for i, summary in enumerate(trace.inputs):
        for name, fact in (summary.get("facts") or {}).items():
            if fact.get("assumed"):
                value = fact.get("value")
                if isinstance(value, list):
                    value = " x ".join(f"{float(v):g}" for v in value) + " mm"
                what = {"spacing": "every mm, mm2 and mL figure rests on it",
                        "orientation": "left/right and the orientation markers rest on it",
                        "modality": "thresholds and windows rest on it"}.get(name, "")
                out.append(f"Volume {i}: {name} {value} was assumed ({fact.get('detail', '')}); {what}.")
    return out


def input_assumed(trace: Trace, volume_id: str, fact: str) -> bool:
    """Whether ``fact`` of input ``volume_id`` was assumed."""
    try:
        summary = trace.inputs[int(volume_id)]
    except (ValueError, IndexError):
        return False
    return bool(((summary.get("facts") or {}).get(fact) or {}).get("assumed"))


def input_is_2d(trace: Trace, volume_id: str) -> bool:
    try:
        return bool(trace.inputs[int(volume_id)].get("is_2d"))
    except (ValueError, IndexError):
        return False


def input_line(summary: dict[str, Any]) -> str:
    """``CT, 48x212x212 voxels (z, y, x), spacing 5 x 1.6 x 1.6 mm`` or ``XR, 2-D image 340x360 px, 1 x 1 mm/px``."""
    nz, ny, nx = summary.get("shape_zyx", [0, 0, 0])
    sz, sy, sx = summary.get("spacing_mm_zyx", [0, 0, 0])
    if summary.get("is_2d"):
        return f"{summary.get('modality', '')}, 2-D image {nx}x{ny} px (width x height), {sy:.3g} x {sx:.3g} mm/px"
    return (f"{summary.get('modality', '')}, {nz}x{ny}x{nx} voxels (z, y, x), "
            f"spacing {sz:.3g} x {sy:.3g} x {sx:.3g} mm (z, y, x)")


def tool_text(text: str) -> str:
    """A tool message for people: without the machine-readable ``Result: {...}`` line."""
    return _RESULT_LINE.sub("", text).strip()


@dataclass
class Row:
    """One line of the measurement table."""

    evidence: str
    what: str
    quantity: str
    value: str
    level: str
    reasons: list[str]


def measurement_rows(trace: Trace) -> list[Row]:
    """Each measured quantity once, in human units, with the quality of its evidence.

    A segment's size is left out when a ``measure`` of the same mask reports it; volume in mL
    only; mean and spread of intensity on one line; the centroid left out (it is in the text);
    the cardiothoracic ratio added when a heart and a thorax/lungs width were measured.
    """
    measured = {ev.data.get("source") for ev in trace.evidence if ev.tool == "measure"}
    rows = []
    for ev in trace.evidence:
        if not ev.measurements or (ev.tool == "segment" and ev.id in measured):
            continue
        what = _target_of(trace, ev)
        m = ev.measurements
        items: list[tuple[str, str]] = []
        if "volume_ml" in m:
            items.append(("volume", human_value(m["volume_ml"].value, "mL")))
        elif "volume_mm3" in m:
            items.append(("volume", human_value(m["volume_mm3"].value, "mm3")))
        if "area_mm2" in m:
            items.append(("area", human_value(m["area_mm2"].value, "mm2")))
        if "longest_diameter_mm" in m:
            d = f"{human_value(m['longest_diameter_mm'].value, 'mm')}"
            if "perpendicular_diameter_mm" in m:
                d += f" x {human_value(m['perpendicular_diameter_mm'].value, 'mm')} perpendicular"
            items.append(("longest diameter", d))
        if "width_mm" in m:
            items.append(("left-right width", human_value(m["width_mm"].value, "mm")))
        if "mean_intensity" in m:
            unit = m["mean_intensity"].unit
            text = human_value(m["mean_intensity"].value, unit)
            if "std_intensity" in m:
                text = text.replace(f" {unit}", "") + f" +/- {human_value(m['std_intensity'].value, unit)}"
            items.append(("mean intensity", text))
        shown = {"volume_ml", "volume_mm3", "area_mm2", "longest_diameter_mm", "perpendicular_diameter_mm",
                 "width_mm", "mean_intensity", "std_intensity", "min_intensity", "max_intensity",
                 "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"}
        items += [(name.replace("_", " "), human_value(x.value, x.unit)) for name, x in m.items() if name not in shown]
        rows += [Row(ev.id, what, q, v, ev.quality.level, list(ev.quality.reasons)) for q, v in items]
    ctr = cardiothoracic(trace)
    if ctr is not None:
        rows.append(Row(f"{ctr.heart.id} / {ctr.thorax.id}", "heart / thorax", "cardiothoracic ratio",
                        f"{ctr.ratio:.2f} ({human_value(ctr.heart_mm, 'mm')} / {human_value(ctr.thorax_mm, 'mm')})",
                        ctr.level, ctr.reasons))
    return rows


def _target_of(trace: Trace, ev: Evidence) -> str:
    """What an evidence is about: a segment's target, or the target of the segment a measure measured."""
    if ev.data.get("target"):
        return str(ev.data["target"])
    source = next((e for e in trace.evidence if e.id == ev.data.get("source")), None)
    if source is not None and source.data.get("target"):
        return str(source.data["target"])
    return ev.tool


@dataclass
class Cardiothoracic:
    """The cardiothoracic ratio of two ``measure`` evidences (heart, and lungs or thorax)."""

    heart: Evidence
    thorax: Evidence
    heart_mm: float
    thorax_mm: float

    @property
    def ratio(self) -> float:
        return self.heart_mm / self.thorax_mm

    @property
    def reasons(self) -> list[str]:
        """The two widths' reasons, but an assumed pixel spacing: two widths along the same image
        axis scale together, so their ratio does not depend on it."""
        return [r for r in dict.fromkeys(self.heart.quality.reasons + self.thorax.quality.reasons)
                if "spacing" not in r]

    @property
    def level(self) -> str:
        from grounding.quality import worst

        return worst([self.heart.quality.level, self.thorax.quality.level]) if self.reasons else "ok"


def cardiothoracic(trace: Trace) -> Cardiothoracic | None:
    """The ratio of the last measured heart width to the last measured lungs/thorax width, if both exist."""
    heart = thorax = None
    for ev in trace.evidence:
        if ev.tool != "measure" or "width_mm" not in ev.measurements:
            continue
        target = _target_of(trace, ev)
        if target == "heart":
            heart = ev
        elif target in ("lungs", "thorax"):
            thorax = ev
    if heart is None or thorax is None or not thorax.measurements["width_mm"].value:
        return None
    return Cardiothoracic(heart, thorax, heart.measurements["width_mm"].value, thorax.measurements["width_mm"].value)


def step_verdicts(trace: Trace) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """Verdicts stored in ``trace.meta["verdicts"]``, grouped by the turn of their step:
    turn index -> [(step kind and short text, verdict dict)]."""
    verdicts = trace.meta.get("verdicts") or []
    if not verdicts:
        return {}
    from mmreason.verifiers.steps import split_steps

    steps = split_steps(trace)
    out: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for v in verdicts:
        if 0 <= v["step"] < len(steps):
            step = steps[v["step"]]
            label = step.tool_call.name if step.tool_call is not None else step.kind
            if step.tool_call is not None:
                args = ", ".join(f"{k}={json.dumps(a)}" for k, a in step.tool_call.arguments.items())
                label, snippet = "tool call", f"{step.tool_call.name}({args})"
            else:
                snippet = " ".join(step.text.split())
            out.setdefault(step.turn, []).append((f"{label}: {snippet[:80]}" + ("..." if len(snippet) > 80 else ""), v))
    return out


# -- pictures ----------------------------------------------------------------------------------
@dataclass
class Caliper:
    """A measured distance to draw: two points in view pixels (centre frame) and its label."""

    p1: tuple[float, float]
    p2: tuple[float, float]
    label: str
    color: tuple[int, int, int] = CALIPER_RGB


def base_geometry(geometry: ViewGeometry | MontageGeometry) -> ViewGeometry:
    """The geometry whose orientation and pixel size a whole image shares (a montage's first panel)."""
    return geometry.panels()[0].geometry


def orientation_markers(geometry: ViewGeometry | MontageGeometry, is_2d: bool) -> dict[str, str]:
    """Letters for the image edges (``left``, ``right``, ``top``, ``bottom``) from the geometry.

    The world direction of one pixel step right (columns) and down (rows) through the affine
    names the patient direction; a 2-D image gets only its left and right edges (R/L).
    """
    g = base_geometry(geometry)
    a = np.asarray(g.affine)[:3, :3]
    out = {}
    for edge, vec, sign in (("right", g.col_step, 1), ("left", g.col_step, -1),
                            ("bottom", g.row_step, 1), ("top", g.row_step, -1)):
        world = sign * (a @ np.asarray(vec))
        axis = int(np.argmax(np.abs(world)))
        if abs(world[axis]) < 1e-9:
            continue
        if is_2d and axis != 0:
            continue
        out[edge] = _LETTERS[axis][0 if world[axis] > 0 else 1]
    return out


def scale_bar_mm(mm_per_px: float, width_px: int) -> float:
    """The longest of `SCALE_STEPS_MM` that fits a fifth of an image ``width_px`` pixels wide."""
    fits = [s for s in SCALE_STEPS_MM if s / mm_per_px <= width_px / 5]
    return float(fits[-1] if fits else SCALE_STEPS_MM[0])


def _font(size: float) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(10, round(size)))


def annotate(view: View, *, is_2d: bool, mask: np.ndarray | None = None, boxes: list[list[float]] | None = None,
             calipers: list[Caliper] | None = None, spacing_assumed: bool = False,
             orientation_assumed: bool = False, side: int = DISPLAY_SIDE) -> Image.Image:
    """The view enlarged to ``side`` px with orientation markers, a scale bar, and the mask
    contour, boxes and calipers drawn (all mapped through the view's geometry)."""
    rgb = np.asarray(view.image.convert("RGB"))
    h, w = rgb.shape[:2]
    s = max(1.0, side / max(w, h))
    out = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC) if s > 1 else rgb.copy()
    out = np.ascontiguousarray(out)
    H, W = out.shape[:2]
    lw = max(1, round(W / 300))
    texts: list[tuple[str, tuple[float, float], str, tuple[int, int, int], float]] = []
    if mask is not None and mask.any():
        cover = mask_coverage(mask, view.geometry)
        if cover.shape == (h, w) and cover.max() >= 0.5:
            big = cv2.resize(cover, (W, H), interpolation=cv2.INTER_LINEAR) >= 0.5
            fill = out.astype(np.float32)
            fill[big] = (1 - MASK_ALPHA) * fill[big] + MASK_ALPHA * np.asarray(MASK_RGB, np.float32)
            out = fill.astype(np.uint8)
            contours, _ = cv2.findContours(big.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, MASK_RGB, lw, cv2.LINE_AA)
    for x1, y1, x2, y2 in boxes or []:
        cv2.rectangle(out, (round(x1 * s), round(y1 * s)), (round(x2 * s) - 1, round(y2 * s) - 1), BOX_RGB, lw)
    for i, c in enumerate(calipers or []):
        # centre-frame pixel -> enlarged pixel centre
        p1 = np.array([(c.p1[0] + 0.5) * s - 0.5, (c.p1[1] + 0.5) * s - 0.5])
        p2 = np.array([(c.p2[0] + 0.5) * s - 0.5, (c.p2[1] + 0.5) * s - 0.5])
        a, b = tuple(int(round(v)) for v in p1), tuple(int(round(v)) for v in p2)
        cv2.line(out, a, b, c.color, lw, cv2.LINE_AA)
        d = p2 - p1
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9) * 5 * lw
        for p in (p1, p2):  # end ticks across the line
            cv2.line(out, tuple(int(round(v)) for v in p - n), tuple(int(round(v)) for v in p + n), c.color, lw,
                     cv2.LINE_AA)
        mid = (p1 + p2) / 2
        below = i % 2 == 0  # alternate sides so the labels of crossing calipers do not overlap
        texts.append((c.label, (float(mid[0]), float(mid[1]) + (4 if below else -4) * lw), "mt" if below else "mb",
                      c.color, 13 * W / 512))
    q = "?" if orientation_assumed else ""
    for edge, letter in orientation_markers(view.geometry, is_2d).items():
        xy, anchor = {"left": ((6, H / 2), "lm"), "right": ((W - 6, H / 2), "rm"),
                      "top": ((W / 2, 6), "mt"), "bottom": ((W / 2, H - 6), "mb")}[edge]
        texts.append((letter + q, xy, anchor, (255, 255, 255), 20 * max(W, 300) / 512))
    mm_per_px = base_geometry(view.geometry).pixel_spacing_mm[0] / s
    bar = scale_bar_mm(mm_per_px, W)
    length = round(bar / mm_per_px)
    x0, y0 = 10, H - 12
    cv2.line(out, (x0, y0), (x0 + length, y0), (0, 0, 0), lw + 4)
    cv2.line(out, (x0, y0), (x0 + length, y0), (255, 255, 255), lw + 1)
    label = (f"{bar / 10:g} cm" if bar >= 10 else f"{bar:g} mm") + (" (spacing assumed)" if spacing_assumed else "")
    texts.append((label, (x0, y0 - 6), "lb", (255, 230, 120) if spacing_assumed else (255, 255, 255),
                  13 * max(W, 300) / 512))
    image = Image.fromarray(out, "RGB")
    draw = ImageDraw.Draw(image)
    for text, xy, anchor, color, size in texts:  # Pillow text: outlined, kerned, unlike OpenCV's Hershey fonts
        draw.text(xy, text, fill=color, font=_font(size), anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0))
    return image


def views_by_id(trace: Trace) -> dict[str, View]:
    """Every view of the trace (initial views and those the tools returned), by id."""
    views = {d["view_id"]: view_from_dict(d) for d in trace.meta.get("views", [])}
    for ev in trace.evidence:
        for v in ev.views:
            views.setdefault(v.view_id, v)
    return views


def calipers_of(ev: Evidence, view: View) -> list[Caliper]:
    """The longest diameter, its perpendicular length and the left-right width of a ``measure``
    evidence as calipers on ``view`` (only when their endpoints lie on the view's plane)."""
    out = []
    panels = [(t.x0, t.y0, t.geometry) for t in view.geometry.panels()]
    for key, label, color in (("diameter_endpoints_mm", "longest_diameter_mm", CALIPER_RGB),
                              ("width_endpoints_mm", "width_mm", THORAX_RGB)):
        ends = ev.data.get(key)
        if not ends or len(ends) != 2 or label not in ev.measurements:
            continue
        ends = np.asarray(ends, dtype=np.float64)
        for x0, y0, g in panels:  # the panel whose plane holds the ends (a montage: at most one)
            px = g.mm_to_pixel(ends)
            if np.abs(g.pixel_to_mm(px) - ends).max() <= max(g.spacing) * 0.75:
                px = px + [x0, y0]
                out.append(Caliper(tuple(px[0]), tuple(px[1]), human_value(ev.measurements[label].value, "mm"),
                                   color))
                break
    return out


@dataclass
class Figure:
    """An annotated image with its caption."""

    image: Image.Image
    caption: str


def _annotated(trace: Trace, view: View, **kwargs: Any) -> Image.Image:
    vid = view.geometry.volume
    return annotate(view, is_2d=input_is_2d(trace, vid), spacing_assumed=input_assumed(trace, vid, "spacing"),
                    orientation_assumed=input_assumed(trace, vid, "orientation"), **kwargs)


def view_figure(trace: Trace, view: View, caption: str) -> Figure:
    return Figure(_annotated(trace, view), caption)


def evidence_figures(ev: Evidence, trace: Trace, views: dict[str, View]) -> list[Figure]:
    """An evidence's own images annotated, its mask on the first view of its volume, its box, and
    for a ``measure`` the calipers on the image of the mask it measured."""
    figs = [Figure(_annotated(trace, v), f"{ev.id} · {v.view_id}: {v.description}") for v in ev.views]
    # a 2-D image's own overlay already shows the whole mask; a volume's is one slice of it
    if ev.mask is not None and ev.mask.any() and not (ev.views and input_is_2d(trace, ev.mask_volume or "0")):
        own = {v.view_id for v in ev.views}
        target = next((vid for vid, v in views.items() if v.geometry.volume == (ev.mask_volume or "0")
                       and vid not in own), None)
        if target is not None:
            figs.append(Figure(_annotated(trace, views[target], mask=ev.mask),
                               f"{ev.id} mask drawn on {target} from its geometry"))
    if ev.box and ev.box.get("view_id") in views:
        view = views[ev.box["view_id"]]
        figs.append(Figure(_annotated(trace, view, boxes=[ev.box["pixels"]]), f"{ev.id} box on {view.view_id}"))
    if ev.tool == "measure":
        source = next((e for e in trace.evidence if e.id == ev.data.get("source")), None)
        shown = source.views[0] if source is not None and source.views else None
        if shown is None and ev.box and ev.box.get("view_id") in views:
            shown = views[ev.box["view_id"]]
        if shown is not None:
            calipers = calipers_of(ev, shown)
            if calipers:
                figs.append(Figure(_annotated(trace, shown, calipers=calipers),
                                   f"{ev.id} calipers on {shown.view_id}: " + ", ".join(c.label for c in calipers)))
    return figs


def ctr_figure(trace: Trace, views: dict[str, View]) -> Figure | None:
    """The cardiac and thoracic widths as calipers on the radiograph, with the ratio."""
    ctr = cardiothoracic(trace)
    if ctr is None:
        return None
    vid = str(ctr.heart.data.get("volume", "0"))
    view = next((v for v in views.values() if v.geometry.volume == vid and len(v.geometry.panels()) == 1
                 and v.plane in ("axial", "")), None)
    if view is None:
        return None
    calipers = []
    for ev, name, color in ((ctr.thorax, "thorax", THORAX_RGB), (ctr.heart, "heart", CALIPER_RGB)):
        ends = ev.data.get("width_endpoints_mm")
        if ends:
            px = base_geometry(view.geometry).mm_to_pixel(np.asarray(ends, dtype=np.float64))
            calipers.append(Caliper(tuple(px[0]), tuple(px[1]),
                                    f"{name} {human_value(ev.measurements['width_mm'].value, 'mm')}", color))
    if not calipers:
        return None
    caption = (f"cardiothoracic ratio {ctr.ratio:.2f} = cardiac width {human_value(ctr.heart_mm, 'mm')} "
               f"[{ctr.heart.id}] / thoracic width {human_value(ctr.thorax_mm, 'mm')} [{ctr.thorax.id}]")
    return Figure(_annotated(trace, view, calipers=calipers), caption)
