"""A self-contained HTML report of one `Trace`: answer first, then every step with its evidence.

Images are inline base64 PNG, so ``report.html`` can be mailed or archived alone; click one to
enlarge it. What is drawn and said comes from `mmreason.render`, which the web app uses too:
overlays, calipers, orientation markers and scale bars from the evidence geometry, numbers in
human units, the status badge, quality levels and reasons, verifier verdicts next to their step,
and a warning wherever spacing or orientation was assumed. The report shows only de-identified
data: the input's modality, grid and spacing, never its name or metadata.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from grounding.evidence import image_to_b64
from mmreason import render
from mmreason.trace import Trace

_PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330}
h1{font-size:20px;margin:0 0 8px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
"""
#: the style of the report's parts, also used by the web app around the same HTML
CSS = """
.qa h1{font-size:20px;margin:0 0 8px}
.qa{background:#f4f7fb;border:1px solid #d5deeb;border-radius:8px;padding:14px 18px}
.answer{font-size:17px;margin-top:8px}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;margin-left:6px;vertical-align:middle}
.badge.answered,.badge.ok,.badge.correct{background:#cdeccd} .badge.untagged,.badge.declined,.badge.doubtful,
.badge.unverifiable{background:#f6e3c0} .badge.failed,.badge.implausible,.badge.incorrect{background:#f3c4c4}
.warn{background:#fff4d6;border:1px solid #e8c66a;border-radius:6px;padding:8px 12px;margin:10px 0;font-size:14px}
.step{border-left:3px solid #c9d3e3;padding:4px 14px;margin:12px 0}
.step.assistant{border-color:#6d8fd3} .step.tool{border-color:#8fbf8f} .step.tool.err{border-color:#d77}
.role{font-size:12px;text-transform:uppercase;color:#667;letter-spacing:.05em}
.verdict{font-size:13px;margin:3px 0} .quality{font-size:13px;margin:3px 0}
pre{white-space:pre-wrap;word-break:break-word;background:#fafafa;border:1px solid #eee;padding:8px;
font-size:12.5px;margin:6px 0} figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
figure img{max-width:512px;border:1px solid #ccc;cursor:zoom-in}
figure img.big{max-width:none;width:min(1024px,96vw);cursor:zoom-out}
figcaption{font-size:12px;color:#555;max-width:512px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f3f8} .num{text-align:right;font-variant-numeric:tabular-nums}
"""

def figure_html(fig: render.Figure) -> str:
    cap = html.escape(fig.caption)
    return (f'<figure><img alt="{cap}" title="click to enlarge" onclick="this.classList.toggle(\'big\')" '
            f'src="data:image/png;base64,{image_to_b64(fig.image)}"><figcaption>{cap}</figcaption></figure>')


def _badge(key: str, text: str | None = None) -> str:
    return f"<span class='badge {html.escape(key)}'>{html.escape(text or key)}</span>"


def header_html(trace: Trace) -> str:
    """Question, options, the answer with its status badge, and what produced it."""
    esc = html.escape
    status = render.trace_status(trace)
    answer = trace.answer if trace.answer is not None else "(no answer)"
    option = f" — option {esc(trace.answer_option)}" if trace.answer_option else ""
    options = ""
    if trace.options:
        options = "<ol type='A'>" + "".join(f"<li>{esc(o)}</li>" for o in trace.options) + "</ol>"
    why = render.failure_reason(trace)
    status_note = render.STATUS_LABELS[status] + (f": {why}" if why else "")
    run = [f"backend {trace.backend}"] + ([f"model {trace.model}"] if trace.model else [])
    run += [f"seed {trace.seed}"] if trace.seed is not None else []
    cited = ", ".join(trace.cited_evidence) or "none"
    return "".join([
        "<div class='qa'><h1>Question</h1>",
        f"<div>{esc(trace.question)}</div>{options}",
        f"<h1 style='margin-top:14px'>Answer{_badge(status)}</h1>",
        f"<div class='answer'>{esc(answer)}{option}</div>",
        f"<div style='font-size:12px;color:#555;margin-top:6px'>{esc(status_note)} · cited evidence: {esc(cited)} · "
        f"{esc(' · '.join(run))}</div></div>",
    ])


def warnings_html(trace: Trace) -> str:
    """A visible box listing every assumed spacing, orientation or modality ("" when none)."""
    warnings = render.assumed_warnings(trace)
    if not warnings:
        return ""
    return ("<div class='warn'><b>Assumed, not read from the file:</b><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>")


def summary_html(trace: Trace) -> str:
    """The top of the report and of the app: question and answer, assumed-fact warnings, and the
    cardiothoracic ratio's calipers when one was measured."""
    ctr = render.ctr_figure(trace, render.views_by_id(trace))
    return header_html(trace) + warnings_html(trace) + (figure_html(ctr) if ctr is not None else "")


def inputs_html(trace: Trace) -> str:
    rows = []
    for i, s in enumerate(trace.inputs):  # no name, no metadata: de-identified by construction
        facts = s.get("facts") or {}
        where = "; ".join(f"{k}: {f.get('source')}" + (" (ASSUMED)" if f.get("assumed") else "")
                          for k, f in facts.items())
        rows.append(f"<tr><td>{i}</td><td>{html.escape(render.input_line(s))}</td><td>{html.escape(where)}</td></tr>")
    return ("<table><tr><th>volume</th><th>grid</th><th>where the facts came from</th></tr>"
            + "".join(rows) + "</table>")


def measurements_html(trace: Trace) -> str:
    """The measurement table: each quantity once, human units, quality level and reasons."""
    rows = render.measurement_rows(trace)
    if not rows:
        return "<p>No measurements.</p>"
    esc = html.escape
    body = "".join(  # an evidence's reasons once, on its first row
        f"<tr><td>{esc(r.evidence)}</td><td>{esc(r.what)}</td><td>{esc(r.quantity)}</td>"
        f"<td class='num'>{esc(r.value)}</td><td>{_badge(r.level)} "
        f"{esc('; '.join(r.reasons)) if i == 0 or rows[i - 1].evidence != r.evidence else ''}</td></tr>"
        for i, r in enumerate(rows))
    return ("<table><tr><th>evidence</th><th>of</th><th>quantity</th><th>value</th><th>quality</th></tr>"
            + body + "</table>")


def evidence_list_html(trace: Trace) -> str:
    """Every evidence with its tool, its quality level and reasons, and its short result."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(ev.id)}</td><td>{esc(ev.tool)}</td><td>{_badge(ev.quality.level)} "
        f"{esc('; '.join(ev.quality.reasons))}</td><td>{esc(render.tool_text(ev.text)[:300])}</td></tr>"
        for ev in trace.evidence)
    if not rows:
        return "<p>No evidence yet.</p>"
    return "<table><tr><th>evidence</th><th>tool</th><th>quality</th><th>result</th></tr>" + rows + "</table>"


def _quality_html(ev: Any) -> str:
    q = ev.quality
    reasons = f": {html.escape('; '.join(q.reasons))}" if q.reasons else ""
    return f"<div class='quality'>{ev.id} quality {_badge(q.level)}{reasons}</div>"


def steps_html(trace: Trace) -> str:
    """Every turn after the system prompt, with its images, evidence figures, quality and verdicts."""
    esc = html.escape
    views = render.views_by_id(trace)
    evidence = trace.evidence_by_id()
    verdicts = render.step_verdicts(trace)
    parts = []
    step = 0
    for t, turn in enumerate(trace.turns):
        if turn.role == "system":
            continue
        css = turn.role + (" err" if turn.role == "tool" and turn.text.startswith("Error") else "")
        label = turn.role
        text = render.tool_text(turn.text) if turn.role == "tool" else turn.text
        if turn.role == "assistant":
            step += 1
            label = f"step {step} · model"
        parts.append(f"<div class='step {css}'><div class='role'>{esc(label)}</div><pre>{esc(text)}</pre>")
        for what, v in verdicts.get(t, []):
            parts.append(f"<div class='verdict'>{_badge(v['label'])} <b>{esc(what)}</b> — "
                         f"{esc(v.get('reason') or '')}</div>")
        if turn.role == "user":
            parts += [figure_html(render.view_figure(trace, views[ref.view_id], f"Image {ref.index} · {ref.view_id}: "
                                                 f"{views[ref.view_id].description}"))
                      for ref in turn.images if ref.view_id in views]
        for eid in turn.evidence_ids:
            if eid in evidence:
                parts.append(_quality_html(evidence[eid]))
                parts += [figure_html(f) for f in render.evidence_figures(evidence[eid], trace, views)]
        parts.append("</div>")
    return "\n".join(parts)


def render_html(trace: Trace) -> str:
    """The report as one HTML string (see the module docstring)."""
    esc = html.escape
    timings = "".join(f"<tr><td>{esc(k)}</td><td class='num'>{v:.2f}</td></tr>" for k, v in trace.timings.items())
    versions = ", ".join(f"{esc(k)} {esc(v)}" for k, v in trace.versions.items())
    verdicts = trace.meta.get("verdicts")
    checked = ("" if verdicts is None else
               f"<p style='font-size:13px'>Verified by the rule verifiers: "
               f"{sum(v['label'] == 'correct' for v in verdicts)} correct, "
               f"{sum(v['label'] == 'incorrect' for v in verdicts)} incorrect, "
               f"{sum(v['label'] == 'unverifiable' for v in verdicts)} unverifiable steps (shown next to each step).</p>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mmreason report</title>",
        f"<style>{_PAGE_CSS}{CSS}</style></head><body>",
        summary_html(trace),
        "<h2>Inputs</h2>", inputs_html(trace),
        "<h2>Measurements</h2>", measurements_html(trace),
        "<h2>Reasoning, step by step</h2>", checked, steps_html(trace),
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
