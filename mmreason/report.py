"""A self-contained HTML report of one `Trace`: answer first, then every step with its evidence.

Images are inline base64 PNG, so ``report.html`` can be mailed or archived alone. Overlays are
drawn from the evidence geometry, not copied from the model's images: a mask (voxels on its
volume) is mapped to each view's pixels through the view's `ViewGeometry` (every panel of a
montage separately), and boxes are drawn in the pixels of the view they name. The report shows
only de-identified data: the input's modality, grid and spacing, never its name or metadata.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from grounding.evidence import Evidence, image_to_b64, view_from_dict
from imaging.geometry import MontageGeometry, ViewGeometry
from imaging.views import View, sample_plane
from mmreason.trace import Trace

MASK_RGB = (255, 48, 48)
BOX_RGB = (40, 200, 255)
MASK_ALPHA = 0.4

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330}
h1{font-size:20px;margin:0 0 8px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.qa{background:#f4f7fb;border:1px solid #d5deeb;border-radius:8px;padding:14px 18px}
.answer{font-size:17px;margin-top:8px} .status{display:inline-block;padding:1px 8px;border-radius:10px;
font-size:12px;background:#dfe7f3;margin-left:6px} .status.answered{background:#cdeccd}
.status.abstained,.status.max_turns{background:#f6e3c0} .status.error{background:#f3c4c4}
.step{border-left:3px solid #c9d3e3;padding:4px 14px;margin:12px 0}
.step.assistant{border-color:#6d8fd3} .step.tool{border-color:#8fbf8f} .step.tool.err{border-color:#d77}
.role{font-size:12px;text-transform:uppercase;color:#667;letter-spacing:.05em}
pre{white-space:pre-wrap;word-break:break-word;background:#fafafa;border:1px solid #eee;padding:8px;
font-size:12.5px;margin:6px 0} figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
figure img{max-width:520px;max-height:520px;border:1px solid #ccc;image-rendering:pixelated}
figcaption{font-size:12px;color:#555;max-width:520px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f3f8} .num{text-align:right;font-variant-numeric:tabular-nums}
"""


def mask_on_view(mask: np.ndarray, geometry: ViewGeometry | MontageGeometry) -> np.ndarray:
    """The (H, W) boolean footprint of a voxel mask in a view's pixels, through its geometry.

    Each pixel centre is mapped to its voxel; the pixel is inside when the (linearly sampled)
    mask there is at least 0.5. A projection shows the mask's projection along its axis.
    """
    if isinstance(geometry, MontageGeometry):
        out = np.zeros((geometry.height, geometry.width), dtype=bool)
        for tile in geometry.tiles:
            g = tile.geometry
            out[tile.y0:tile.y0 + g.height, tile.x0:tile.x0 + g.width] = mask_on_view(mask, g)
        return out
    return sample_plane(mask.astype(np.float32), geometry) >= 0.5


def draw_overlay(view: View, mask: np.ndarray | None = None, boxes: list[list[float]] | None = None) -> Image.Image:
    """The view's image in RGB with the mask filled and outlined in red and the boxes in blue."""
    rgb = np.asarray(view.image.convert("RGB"), dtype=np.float32)
    if mask is not None:
        inside = mask_on_view(mask, view.geometry)
        if inside.shape == rgb.shape[:2] and inside.any():
            from scipy import ndimage

            edge = inside & ~ndimage.binary_erosion(inside)
            rgb[inside] = (1 - MASK_ALPHA) * rgb[inside] + MASK_ALPHA * np.asarray(MASK_RGB, dtype=np.float32)
            rgb[edge] = MASK_RGB
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    if boxes:
        draw = ImageDraw.Draw(image)
        width = max(1, round(max(image.size) / 300))
        for x1, y1, x2, y2 in boxes:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=BOX_RGB, width=width)
    return image


def _img(image: Image.Image, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{image_to_b64(image)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _views_by_id(trace: Trace) -> dict[str, View]:
    views = {d["view_id"]: view_from_dict(d) for d in trace.meta.get("views", [])}
    for ev in trace.evidence:
        for v in ev.views:
            views.setdefault(v.view_id, v)
    return views


def evidence_figures(ev: Evidence, trace: Trace, views: dict[str, View]) -> list[str]:
    """Figures for one evidence item: its own images, and its mask or box drawn on the views it refers to."""
    figs = [_img(v.image, f"{ev.id} · {v.view_id}: {v.description}") for v in ev.views]
    volume_of = {vid: v.geometry.volume for vid, v in views.items()}
    if ev.mask is not None and ev.mask.any():
        # the mask on the first view shown of its volume (the initial montage or slice)
        target = next((vid for vid in views if volume_of[vid] == (ev.mask_volume or "0")
                       and vid not in {v.view_id for v in ev.views}), None)
        if target is not None and views[target].geometry is not None:
            view = views[target]
            figs.append(_img(draw_overlay(view, mask=ev.mask), f"{ev.id} mask drawn on {target} from its geometry"))
    if ev.box and ev.box.get("view_id") in views:
        view = views[ev.box["view_id"]]
        figs.append(_img(draw_overlay(view, boxes=[ev.box["pixels"]]), f"{ev.id} box on {view.view_id}"))
    return figs


def _measurement_rows(trace: Trace) -> str:
    rows = []
    for ev in trace.evidence:
        for name, m in ev.measurements.items():
            rows.append(f"<tr><td>{ev.id}</td><td>{html.escape(ev.tool)}</td><td>{html.escape(name)}</td>"
                        f'<td class="num">{m.value:.4g}</td><td>{html.escape(m.unit)}</td></tr>')
    if not rows:
        return "<p>No measurements.</p>"
    return ("<table><tr><th>evidence</th><th>tool</th><th>measurement</th><th>value</th><th>unit</th></tr>"
            + "".join(rows) + "</table>")


def _inputs_table(trace: Trace) -> str:
    rows = []
    for i, s in enumerate(trace.inputs):  # no name, no metadata: de-identified by construction
        shape = "x".join(str(v) for v in s.get("shape_zyx", []))
        spacing = " x ".join(f"{v:g}" for v in s.get("spacing_mm_zyx", []))
        rows.append(f"<tr><td>{i}</td><td>{html.escape(str(s.get('modality', '')))}</td><td>{shape}</td>"
                    f"<td>{spacing}</td><td>{'2-D' if s.get('is_2d') else '3-D'}</td></tr>")
    return ("<table><tr><th>volume</th><th>modality</th><th>shape (z, y, x)</th><th>spacing mm (z, y, x)</th>"
            "<th></th></tr>" + "".join(rows) + "</table>")


def render_html(trace: Trace) -> str:
    """The report as one HTML string (see the module docstring)."""
    esc = html.escape
    views = _views_by_id(trace)
    evidence = trace.evidence_by_id()
    answer = trace.answer if trace.answer is not None else "(no answer)"
    option = f" — option {esc(trace.answer_option)}" if trace.answer_option else ""
    options = ""
    if trace.options:
        options = "<ol type='A'>" + "".join(f"<li>{esc(o)}</li>" for o in trace.options) + "</ol>"
    cited = ", ".join(trace.cited_evidence) or "none"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mmreason report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<div class='qa'><h1>Question</h1>",
        f"<div>{esc(trace.question)}</div>{options}",
        f"<h1 style='margin-top:14px'>Answer<span class='status {esc(trace.status)}'>{esc(trace.status)}</span></h1>",
        f"<div class='answer'>{esc(answer)}{option}</div>",
        f"<div style='font-size:12px;color:#555;margin-top:6px'>Cited evidence: {esc(cited)} · backend "
        f"{esc(trace.backend)} · model {esc(trace.model)} · seed {trace.seed}</div></div>",
        "<h2>Inputs</h2>", _inputs_table(trace),
        "<h2>Reasoning, step by step</h2>",
    ]
    step = 0
    for turn in trace.turns:
        if turn.role == "system":
            continue
        css = turn.role + (" err" if turn.role == "tool" and turn.text.startswith("Error") else "")
        label = turn.role
        if turn.role == "assistant":
            step += 1
            label = f"step {step} · model"
        parts.append(f"<div class='step {css}'><div class='role'>{esc(label)}</div><pre>{esc(turn.text)}</pre>")
        if turn.role == "user":
            parts += [_img(views[ref.view_id].image, f"Image {ref.index} · {ref.view_id}: "
                           f"{views[ref.view_id].description}") for ref in turn.images if ref.view_id in views]
        for eid in turn.evidence_ids:
            if eid in evidence:
                parts += evidence_figures(evidence[eid], trace, views)
        parts.append("</div>")
    timings = "".join(f"<tr><td>{esc(k)}</td><td class='num'>{v:.3f}</td></tr>" for k, v in trace.timings.items())
    versions = ", ".join(f"{esc(k)} {esc(v)}" for k, v in trace.versions.items())
    parts += [
        "<h2>Measurements</h2>", _measurement_rows(trace),
        "<h2>Timings (s)</h2>", f"<table>{timings}</table>",
        f"<p style='font-size:12px;color:#666'>Versions: {versions}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(trace: Trace, path: str | Path) -> Path:
    """Write ``render_html(trace)`` to ``path`` (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(trace), encoding="utf-8")
    return path


def summary_line(trace: Trace) -> dict[str, Any]:
    """The short, JSON-friendly summary printed by ``mmreason infer --json``."""
    return {"question": trace.question, "answer": trace.answer, "option": trace.answer_option,
            "status": trace.status, "cited_evidence": trace.cited_evidence, "backend": trace.backend,
            "model": trace.model, "turns": sum(t.role == "assistant" for t in trace.turns),
            "evidence": [{"id": e.id, "tool": e.tool, "text": e.text,
                          "measurements": {k: m.to_dict() for k, m in e.measurements.items()}}
                         for e in trace.evidence],
            "timings": trace.timings}
