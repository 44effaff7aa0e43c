"""PNG plots of a run's results (matplotlib, Agg backend: no display needed).

* ``accuracy_<task>.png``: accuracy per subgroup value with Wilson 95% interval error bars, one
  panel per subgroup key (overall accuracy as a dashed line);
* ``steps_<task>.png``: the step metrics that are proportions (values in [0, 1]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: subgroups with more values than this are plotted by their most frequent values only
MAX_BARS = 20


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported when a plot is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric entries of nested metric dicts as ``{"reference_steps.f1": 0.49, ...}``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_metrics(value, name + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _accuracy_plot(task: str, summary: dict[str, Any], path: Path) -> Path | None:
    panels = [(k, g) for k, g in summary["subgroups"].items() if g]
    if not panels:
        panels = [("answer_type", summary["by_answer_type"])]
    if not panels[0][1]:
        return None
    height = 1.2 + sum(0.3 * min(len(g), MAX_BARS) + 0.6 for _, g in panels)
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, height), squeeze=False)
    overall = summary["accuracy"]["value"]
    for ax, (key, groups) in zip(axes[:, 0], panels):
        items = sorted(groups.items(), key=lambda kv: -kv[1]["n"])[:MAX_BARS]
        names = [f"{v or '(none)'} (n={p['n']})" for v, p in items]
        values = [p["value"] for _, p in items]
        err = [[p["value"] - p["low"] for _, p in items], [p["high"] - p["value"] for _, p in items]]
        ax.barh(range(len(items)), values, xerr=err, color="#4c72b0", ecolor="black", capsize=3)
        ax.set_yticks(range(len(items)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.axvline(overall, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{task}: accuracy by {key} (Wilson 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _steps_plot(task: str, metrics: dict[str, Any], path: Path) -> Path | None:
    items = [(k, v) for k, v in flat_metrics(metrics).items() if 0.0 <= v <= 1.0 and not k.endswith("samples")]
    if not items:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1 + 0.3 * len(items)))
    ax.barh(range(len(items)), [v for _, v in items], color="#55a868")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"{task}: step metrics", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(results: dict[str, Any], folder: Path) -> list[Path]:
    """Write the plots of every task in ``results`` into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, summary in results["tasks"].items():
        if summary["n"]:
            written.append(_accuracy_plot(task, summary, folder / f"accuracy_{task}.png"))
        if summary.get("step_metrics"):
            written.append(_steps_plot(task, summary["step_metrics"], folder / f"steps_{task}.png"))
    return [p for p in written if p is not None]


def scaling_plot(points: dict[str, list[tuple[int, float, float, float]]], path: Path, title: str) -> Path:
    """Time against voxel count, one line per contender, on log-log axes.

    ``points`` maps a contender to ``(voxels, median s, min s, max s)`` tuples; the error bars span
    each figure's min to max over its repeats.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, rows in points.items():
        rows = sorted(rows)
        x = [r[0] for r in rows]
        y = [r[1] for r in rows]
        err = [[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("voxels")
    ax.set_ylabel("seconds (median, min-max bars)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
