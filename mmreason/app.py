"""``mmreason app``: a Gradio web app to open a study, scroll it, ask a question and watch the
grounded reasoning arrive turn by turn.

The page: open one or more studies (NIfTI, a zipped DICOM folder, DICOM files of one series, a
single DICOM, PNG/JPEG; several studies are volumes 0, 1, ... in the order given, prior first),
with an optional pixel spacing for inputs that lack one; scroll slices of the axial, coronal and
sagittal planes with window presets or a level/width of one's own; choose the backend (``rules``
needs no weights; ``hf`` a checkpoint; ``openai`` a server URL), the segmenter, the limits and the
verifiers; ask. The answer, the reasoning (the model's text, each tool call and result, each image
with its overlay, boxes and calipers, the verifier's verdict next to each step) and the evidence
table with quality levels are drawn by `mmreason.render`, the renderer of ``report.html``; when
the episode ends, ``trace.json`` and ``report.html`` can be downloaded.

Each browser session keeps its own study in a `gr.State` and writes into its own temporary
folder: a second user never sees the first one's study. A study's folder (extracted uploads,
answers) is deleted when the study is replaced by the next one opened, when its session ends,
and at the latest when the server exits; Gradio's copies of uploaded files are deleted after
`UPLOAD_TTL_S`, so a long-running server does not keep patients' scans on disk. The server binds to 127.0.0.1 unless told
otherwise; ``share`` (a public gradio.live link) is the user's explicit choice.

Gradio is an optional dependency (``pip install 'mmreason[app]'``), imported when the app is built.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from imaging.errors import MMReasonError
from imaging.volume import Volume
from mmreason.run_spec import BackendSpec, RunSpec

#: window choices in the viewer: the CT presets, auto, and a level/width of one's own
CUSTOM_WINDOW = "custom (level/width)"
PLANES = ("axial", "coronal", "sagittal")
BACKEND_CHOICES = ("rules", "hf", "openai")
APP_TITLE = "mmreason: grounded reasoning over CT, MRI and X-ray"
#: how long (seconds) Gradio keeps an uploaded file, and how often it looks for old ones
UPLOAD_TTL_S = 3600


class AppError(MMReasonError, ValueError):
    """Bad input in the web app (no study, unreadable spacing, missing model ...)."""


@dataclass
class Study:
    """One session's opened study: its volumes ``"0"``, ``"1"``, ... and its private folder."""

    volumes: dict[str, Volume] = field(default_factory=dict)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mmreason-app-")))

    def __post_init__(self) -> None:
        # The folder holds copies of patient scans: it must not outlive the study, even when a
        # session ends without a goodbye or a test forgets it.
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def close(self) -> None:
        """Delete the study's folder and everything in it (idempotent)."""
        self._remove()


def parse_spacing(text: str | None) -> tuple[float, float] | None:
    """``"0.7"`` or ``"0.7, 0.6"`` (row, column mm) -> a pixel spacing; blank -> None."""
    if text is None or not str(text).strip():
        return None
    try:
        values = [float(v) for v in re.split(r"[,\sx]+", str(text).strip()) if v]
    except ValueError:
        raise AppError(f"pixel spacing must be one or two numbers in mm (row, column), got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) <= 0:
        raise AppError(f"pixel spacing must be one or two positive numbers in mm (row, column), got {text!r}")
    return values[0], values[1]


def study_inputs(paths: list[str], folder: Path) -> list[Path]:
    """The inputs to load from uploaded files, in order: a zip is extracted (a DICOM folder),
    loose DICOM files together form one series, every other file is a study of its own."""
    out: list[Path] = []
    loose_dicom: list[Path] = []
    for i, name in enumerate(paths):
        path = Path(name)
        if path.suffix.lower() == ".zip":
            target = folder / f"upload{i}"
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():  # never write outside the session folder
                    if Path(member).is_absolute() or ".." in Path(member).parts:
                        raise AppError(f"{path.name}: the zip holds an unsafe path {member!r}")
                z.extractall(target)
            out.append(target)
        elif path.suffix.lower() in (".dcm", ".dicom", ".ima") or _is_dicom(path):
            loose_dicom.append(path)
        else:
            out.append(path)
    if len(loose_dicom) == 1:
        out.append(loose_dicom[0])
    elif loose_dicom:
        series = folder / "dicom_series"
        series.mkdir(exist_ok=True)
        for j, path in enumerate(loose_dicom):
            shutil.copy(path, series / f"{j:05d}.dcm")
        out.append(series)
    return out


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def load_study(paths: list[str], spacing_text: str | None = None) -> Study:
    """A new `Study` from uploaded files (see `study_inputs`), with the pixel spacing, if given,
    applied to inputs that lack one (`imaging.io.load` ``spacing``)."""
    from imaging.io import load

    if not paths:
        raise AppError("open a study first: a NIfTI, a zipped DICOM folder, DICOM files or a PNG/JPEG")
    spacing = parse_spacing(spacing_text)
    study = Study()
    try:
        for i, path in enumerate(study_inputs(paths, study.folder)):
            study.volumes[str(i)] = load(path, spacing=spacing)
    except BaseException:
        study.close()
        raise
    return study


def study_markdown(study: Study) -> str:
    """The opened study in a few lines, with a warning for every assumed fact."""
    from mmreason import render

    lines = []
    for vid, vol in study.volumes.items():
        summary = vol.summary()
        lines.append(f"- **volume {vid}**: {render.input_line(summary)}")
        for fact in vol.assumed_facts():
            lines.append(f"  - ⚠ {fact.describe()}")
    return "\n".join(lines)


def slice_image(study: Study | None, volume_id: str, plane: str, index: float, window: str,
                level: float, width: float) -> Any:
    """The annotated slice the viewer shows (None without a study)."""
    from imaging.views import slice_view
    from imaging.windowing import Window
    from mmreason import render

    if study is None or volume_id not in study.volumes:
        return None
    vol = study.volumes[volume_id]
    if vol.is_2d:
        plane, index = "axial", 0
    axis = PLANES.index(plane)
    index = min(max(int(index), 0), vol.shape[axis] - 1)
    win = Window(float(level), max(float(width), 1e-3)) if window == CUSTOM_WINDOW else window
    view = slice_view(vol, plane, index, win, volume_id=volume_id)
    facts = vol.facts
    return render.annotate(view, is_2d=vol.is_2d, spacing_assumed=facts["spacing"].assumed,
                           orientation_assumed=facts["orientation"].assumed)


_BACKENDS: dict[str, Any] = {}


def get_backend(spec: BackendSpec) -> Any:
    """The backend of ``spec``, built once per resolved options in this process (weights are not per user)."""
    name, options = spec.resolve()
    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in _BACKENDS:
        _BACKENDS[key] = spec.build()
    return _BACKENDS[key]


@dataclass
class Ask:
    """The settings of one question, as chosen on the page (over the `RunSpec` the app started with)."""

    question: str
    backend: str = "rules"
    model: str = ""
    base_url: str = ""
    segmenter: str = "classical"
    max_turns: int = 8
    max_new_tokens: int = 512
    verifiers: str = "rule"

    def run_spec(self, base: RunSpec | None = None) -> RunSpec:
        """``base`` (the app's ``--config`` and options) with this page's choices over it."""
        base = base or RunSpec()
        same_backend = self.backend == (base.backend.name or "rules")
        backend = dataclasses.replace(base.backend if same_backend else BackendSpec(), name=self.backend,
                                      model=self.model or (base.backend.model if same_backend else None),
                                      base_url=[self.base_url] if self.base_url and self.backend == "openai"
                                      else (base.backend.base_url if same_backend else []))
        if backend.name == "hf" and not backend.model:
            raise AppError("the hf backend needs a model: a hub id or a local checkpoint directory")
        segmenter = base.segmenter if self.segmenter == base.segmenter.name else type(base.segmenter)(name=self.segmenter)
        loop = dataclasses.replace(base.loop, max_turns=int(self.max_turns), max_new_tokens=int(self.max_new_tokens))
        return dataclasses.replace(base, backend=backend, segmenter=segmenter, loop=loop)


def ask(study: Study | None, settings: Ask, base: RunSpec | None = None) -> Iterator[tuple[Any, bool]]:
    """Run one episode on the session's study, yielding ``(trace, finished)`` after every turn;
    the finished trace carries its verdicts (unless verifiers are ``none``) and is saved with its
    report in a new folder of the session's own. ``base``: the run settings the app started with."""
    from mmreason.loop import EpisodeRequest, stream_episode
    from mmreason.report import write_report

    if study is None or not study.volumes:
        raise AppError("open a study first (the Study panel), then ask")
    if not settings.question.strip():
        raise AppError("the question is empty")
    spec = settings.run_spec(base)
    backend = get_backend(spec.backend)
    config = spec.loop_config()
    registry = spec.registry()
    request = EpisodeRequest(list(study.volumes.values()), settings.question)
    trace = None
    for trace in stream_episode(request, backend, config=config, registry=registry, seed=spec.seed):
        if trace.status == "running":
            yield trace, False
    assert trace is not None
    if settings.verifiers == "rule":
        from mmreason.verifiers.pipeline import attach_verdicts

        attach_verdicts(trace)
    out = Path(tempfile.mkdtemp(prefix="answer-", dir=study.folder))
    trace.save(out / "trace.json")
    write_report(trace, out / "report.html")
    trace.meta["files"] = [str(out / "trace.json"), str(out / "report.html")]
    yield trace, True


def _panels(trace: Any) -> tuple[str, str, str]:
    """(answer, reasoning, evidence) HTML of a trace, by the report's renderer."""
    from mmreason import report

    evidence = report.measurements_html(trace) + report.evidence_list_html(trace)
    return report.summary_html(trace), report.steps_html(trace), evidence


def _close_study(study: Study | None) -> None:
    if study is not None:
        study.close()


def build_app(base: RunSpec | None = None) -> Any:
    """The Gradio Blocks of the app (not launched); ``base``: the run settings its controls start
    from and every question runs with (``mmreason app --config FILE`` ...)."""
    try:
        import gradio as gr
    except ModuleNotFoundError:
        raise AppError("the web app needs Gradio: pip install 'mmreason[app]'") from None
    from grounding.segmenters import SEGMENTERS
    from imaging.windowing import CT_PRESETS

    windows = ["auto", *CT_PRESETS, CUSTOM_WINDOW]
    base = base or RunSpec()
    start_backend = base.backend.name or ("hf" if base.backend.model else "rules")

    with gr.Blocks(title="mmreason", delete_cache=(UPLOAD_TTL_S, UPLOAD_TTL_S)) as demo:
        state = gr.State(None, delete_callback=_close_study)
        gr.Markdown(f"## {APP_TITLE}")
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(label="Study: NIfTI, zipped DICOM folder, DICOM files, PNG/JPEG (several: prior first)",
                                file_count="multiple", type="filepath")
                spacing = gr.Textbox(label="Pixel spacing (mm, row[, column]) for inputs without one",
                                     placeholder="e.g. 0.7 (blank: from the file)")
                open_btn = gr.Button("Open study")
                study_md = gr.Markdown("No study open.")
                with gr.Row():
                    volume = gr.Dropdown(["0"], value="0", label="Volume")
                    plane = gr.Radio(list(PLANES), value="axial", label="Plane")
                index = gr.Slider(0, 1, value=0, step=1, label="Slice")
                with gr.Row():
                    window = gr.Dropdown(windows, value="auto", label="Window")
                    level = gr.Number(40, label="Level")
                    width = gr.Number(400, label="Width")
                viewer = gr.Image(label="Viewer", type="pil", interactive=False, elem_id="viewer")
            with gr.Column(scale=3):
                question = gr.Textbox(label="Question", placeholder="Is there a lung nodule? Where is it and how large?",
                                      elem_id="question")
                ask_btn = gr.Button("Ask", variant="primary", elem_id="ask")
                with gr.Accordion("Model, tools and limits", open=False):
                    with gr.Row():
                        backend = gr.Dropdown(list(BACKEND_CHOICES), value=start_backend, label="Backend")
                        model = gr.Textbox(base.backend.model or "", label="Model (hf: hub id or folder; openai: served name)")
                        base_url = gr.Textbox(base.backend.base_url[0] if base.backend.base_url else "",
                                              label="Server URL (openai)", placeholder="http://localhost:8000/v1")
                    with gr.Row():
                        segmenter = gr.Dropdown(list(SEGMENTERS), value=base.segmenter.name, label="Segmenter")
                        max_turns = gr.Number(base.loop.max_turns, precision=0, label="Max turns")
                        max_new_tokens = gr.Number(base.loop.max_new_tokens, precision=0, label="Max new tokens per turn")
                        verifiers = gr.Radio(["rule", "none"], value="rule", label="Verifiers")
                answer = gr.HTML(elem_id="answer")
                with gr.Tab("Reasoning"):
                    steps = gr.HTML(elem_id="steps")
                with gr.Tab("Evidence"):
                    evidence = gr.HTML(elem_id="evidence")
                downloads = gr.File(label="trace.json and report.html", file_count="multiple", interactive=False)

        def on_open(old: Study | None, paths: list[str] | None, spacing_text: str) -> tuple:
            try:
                study = load_study(list(paths or []), spacing_text)
            except MMReasonError as exc:
                raise gr.Error(str(exc)) from None
            _close_study(old)
            vol = study.volumes["0"]
            return (study, study_markdown(study), gr.update(choices=list(study.volumes), value="0"),
                    *_viewer_controls(vol))

        def _viewer_controls(vol: Volume) -> tuple:
            from imaging.windowing import display_window

            plane_update = gr.update(value="axial", interactive=not vol.is_2d)
            n = vol.shape[0]
            return (plane_update, gr.update(minimum=0, maximum=max(n - 1, 1), value=n // 2, interactive=n > 1),
                    display_window(vol.modality, vol.data))

        def on_volume(study: Study | None, vid: str) -> tuple:
            if study is None or vid not in study.volumes:
                return gr.update(), gr.update(), gr.update()
            return _viewer_controls(study.volumes[vid])

        def on_plane(study: Study | None, vid: str, p: str) -> Any:
            if study is None or vid not in study.volumes:
                return gr.update()
            n = study.volumes[vid].shape[PLANES.index(p)]
            return gr.update(minimum=0, maximum=max(n - 1, 1), value=n // 2, interactive=n > 1)

        def on_window(w: str) -> tuple:
            preset = CT_PRESETS.get(w)
            return (preset.level, preset.width) if preset else (gr.update(), gr.update())

        def on_ask(study: Study | None, q: str, b: str, m: str, url: str, seg: str, turns: float, tokens: float,
                   verify: str) -> Iterator[tuple]:
            settings = Ask(q, b, m, url, seg, int(turns or base.loop.max_turns),
                           int(tokens or base.loop.max_new_tokens), verify)
            try:
                for trace, finished in ask(study, settings, base):
                    yield (*_panels(trace), trace.meta.get("files") if finished else None)
            except MMReasonError as exc:
                raise gr.Error(str(exc)) from None

        view_inputs = [state, volume, plane, index, window, level, width]
        hidden: dict[str, Any] = {"api_visibility": "private"}
        opened = open_btn.click(on_open, [state, files, spacing],
                                [state, study_md, volume, plane, index, window], api_name="open")
        opened.then(slice_image, view_inputs, viewer, api_name="slice")
        volume.change(on_volume, [state, volume], [plane, index, window], **hidden).then(
            slice_image, view_inputs, viewer, **hidden)
        plane.change(on_plane, [state, volume, plane], index, **hidden).then(slice_image, view_inputs, viewer, **hidden)
        window.change(on_window, window, [level, width], **hidden).then(slice_image, view_inputs, viewer, **hidden)
        index.release(slice_image, view_inputs, viewer, **hidden)
        level.submit(slice_image, view_inputs, viewer, **hidden)
        width.submit(slice_image, view_inputs, viewer, **hidden)
        ask_inputs = [state, question, backend, model, base_url, segmenter, max_turns, max_new_tokens, verifiers]
        ask_btn.click(on_ask, ask_inputs, [answer, steps, evidence, downloads], api_name="ask")
        question.submit(on_ask, ask_inputs, [answer, steps, evidence, downloads], **hidden)
    return demo


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False, run: RunSpec | None = None,
           **kwargs: Any) -> Any:
    """Build and launch the app on ``host`` (default this machine only) and return the running
    Blocks (``.local_url``; ``.close()`` stops it). Blocks unless ``prevent_thread_lock=True``.
    ``run``: the run settings (backend, segmenter, loop, tools) questions start from."""
    from mmreason.report import CSS

    demo = build_app(run)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, share=share, css=CSS, **kwargs)
    return demo
