"""The reasoning loop: initial views, model turns, tool execution, until an answer or the turn bound.

One episode::

    system   instructions + answer format (+ the tool list when the chat template does not take tools=)
    user     "Image 1 (768x768), view V1: ..." <image> ... "Question: ..."
    assistant  text with <tool_call>...</tool_call>        (backend.generate)
    tool     "[E1] ..." + returned images, one message per call
    ...
    assistant  <answer>... [E2]</answer>

**Initial views** (the documented, bounded rule of `initial_views`): a 2-D image is shown as
itself; a 3-D volume as an axial montage of 9 evenly spaced key slices and its central coronal
slice. CT uses the lung window when at least `imaging.windowing.LUNG_FRACTION` of the body is aerated
lung (-950..-500 HU), otherwise soft tissue; other modalities use the automatic window. Montages of
all volumes come first, then the coronal slices, at most ``max_initial_images`` in all; volumes
left without an image are still listed so the model can call ``view`` on them.

**Coordinates.** Each image's frame as the model sees it is ``backend.model_image_size(w, h)``
and is recorded in the trace (`ImageRef`): the image's pixels after the processor's resize for
models that write absolute pixel boxes (Qwen2.5-VL and Lingshu: smart resize; Gemma 3 / MedGemma:
the fixed 896x896 square), the square ``1000x1000`` for models that write relative 0..1000
coordinates (Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL), so the caption tells the model the frame it
was trained on and its boxes map back by the same scaling (docs/models.md). A
``bbox_2d``/``point_2d`` argument is in that frame for the view named by ``view_id``: the loop clamps the box to the image, enlarges it to at least
``min_box_px`` (one vision patch) per side with a note to the model, and scales it to the view's
pixels before calling the tool. `ToolCall.arguments` keeps what the model wrote; the evidence
keeps the arguments the tool ran with (view pixels).

**Backends that plan from objects** (``backend.reads_state``: the ``rules`` planner) also get
each conversation's `EpisodeState` (``generate(..., states=[...])``): the volumes, views, tool
calls and evidence the prose of the conversation describes, so the prompt's wording
(`mmreason.prompts`) is free to change.

**Tool results** go back as ``role: tool`` messages (text + returned images). Parse errors,
unknown tools and `MMReasonError` raised by a tool come back the same way, as ``Error: ...``, so
the model can correct itself. A call identical to an earlier one (same tool, same arguments) is
answered from the evidence board ("same call as E3") and not re-run. At most ``max_images``
images stay in context; the oldest crops go first (see `ImageLedger.enforce`).

**Limits** (`LoopConfig`, with sane defaults): at most ``max_tool_calls`` calls of one turn are run
(the model is told which were skipped); an error message quotes at most ``max_echo_chars`` of what
the model wrote; an episode whose conversation text would exceed ``max_prompt_chars``, or that has
run ``max_seconds`` of wall time, ends with status ``limit`` and ``meta["limit"]`` saying which.

**Ending.** ``answered`` (an ``<answer>`` tag, or after ``format_retries`` reminders the untagged
text, flagged ``meta["answer_untagged"]``), ``abstained`` (the answer says it cannot answer),
``max_turns`` (the bound was reached), ``limit`` (see above) or ``error`` (a tool or the reading of
a turn failed with an unexpected exception; ``meta["error"]`` holds it, the other episodes of a
batch go on). An exception of the backend itself propagates.

**Trace.** Besides the turns and the evidence board, ``trace.meta["views"]`` holds the initial
views (`view_to_dict`, with geometry and image) so every view id a box may name is in the trace.
Timings: ``imaging`` (loading + initial views), ``tools``, ``model`` (generation; in a batch
each episode is charged its share of the batch's time) and ``total``, in seconds. Backends that
count tokens (``generate_detailed``: ``hf``, ``openai``) give each assistant `Turn` its
``prompt_tokens``/``completion_tokens``, and ``trace.meta["usage"]`` their sums over the episode
(``prompt_tokens``, ``completion_tokens``, ``total_tokens``; a prompt is counted once per turn).
"""

from __future__ import annotations

import functools
import json
import re
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from grounding.evidence import Evidence, view_to_dict
from grounding.tool import ToolContext, ToolError, ToolRegistry, clip
from imaging.errors import MMReasonError
from imaging.views import View, montage_view, slice_view
from imaging.windowing import display_window
from imaging.volume import Volume
from mmreason import prompts
from mmreason.prompts import study_text
from mmreason.backends.base import DEFAULT_STOP, Generation
from mmreason.messages import (
    ImageLedger,
    Message,
    map_box_to_view,
    map_point_to_view,
    message,
    result_text,
    text_part,
    view_parts,
)
from mmreason.parsing import ParsedCall, parse_answer, parse_tool_calls, strip_think
from mmreason.trace import ToolCall, Trace, Turn

#: default limits of `LoopConfig` (see the module docstring): 8 calls a turn is more than any
#: planner needs; 2,000 characters show any real argument; 400,000 characters of text is ~100k
#: tokens, beyond the context of the models we run; 10 minutes is 10x the slowest episode measured
DEFAULT_MAX_TOOL_CALLS = 8
DEFAULT_MAX_ECHO_CHARS = 2000
DEFAULT_MAX_PROMPT_CHARS = 400_000
DEFAULT_MAX_SECONDS = 600.0
#: phrases that make an answer an abstention
_ABSTAIN = re.compile(r"\b(cannot|can't|can ?not|unable to)\s+(answer|determine|tell)\b", re.IGNORECASE)


class LoopError(MMReasonError, ValueError):
    """The episode cannot start (no inputs, bad configuration)."""


@dataclass
class LoopConfig:
    """Settings of the reasoning loop.

    Attributes:
        max_turns: model turns per episode (each ``generate`` call is one turn).
        max_images: images kept in the conversation; older crops are dropped first.
        max_initial_images: images in the first user turn (see `initial_views`).
        montage_count: slices in the initial axial montage of a 3-D volume.
        min_box_px: the smallest box side in the model's frame (one vision patch: 28 px for
            Qwen2.5-VL, whose 14 px patches are merged 2x2; in a relative 1000x1000 frame the
            same number is a share of the image side, 2.8%).
        max_new_tokens, temperature, stop: generation settings passed to the backend.
        format_retries: reminders sent when a turn has neither a tool call nor an answer (in the
            call syntax of ``backend.tool_call_format``, `prompts.format_reminder`); after
            them the untagged text is taken as the answer.
        segmenter: the segmenter the ``segment`` tool uses (``classical``, ``sam``, ...).
        tool_options: per-episode tool options (``ToolContext.options``, e.g. a SAM checkpoint).
        max_tool_calls: tool calls run per model turn; further calls of the turn are skipped.
        max_echo_chars: characters of a malformed call or argument quoted back in an error.
        max_prompt_chars: characters of conversation text an episode may reach (images not counted).
        max_seconds: wall time since the episode started (loading, tools and generation).
        segmenter_instance: a ready segmenter the ``segment`` tool uses instead of building
            ``segmenter`` by name (`mmreason.run_spec.RunSpec.segmenter_instance`).
    """

    max_turns: int = 8
    max_images: int = 12
    max_initial_images: int = 4
    montage_count: int = 9
    min_box_px: int = 28
    max_new_tokens: int = 512
    temperature: float = 0.0
    stop: tuple[str, ...] = DEFAULT_STOP
    format_retries: int = 1
    segmenter: str = "classical"
    tool_options: dict[str, Any] = field(default_factory=dict)
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_echo_chars: int = DEFAULT_MAX_ECHO_CHARS
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    max_seconds: float = DEFAULT_MAX_SECONDS
    segmenter_instance: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise LoopError(f"max_turns must be at least 1, got {self.max_turns}")
        if min(self.max_tool_calls, self.max_echo_chars, self.max_prompt_chars) < 1 or not self.max_seconds > 0:
            raise LoopError("max_tool_calls, max_echo_chars, max_prompt_chars and max_seconds must be positive")
        if self.max_images < 1 or self.max_initial_images < 1:
            raise LoopError("max_images and max_initial_images must be at least 1")


@dataclass
class EpisodeRequest:
    """One question about one or more images/studies (paths or loaded volumes), for `run_episodes`."""

    inputs: Sequence[str | Path | Volume]
    question: str
    options: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: tool options of this episode only, over `LoopConfig.tool_options` (a case's reference masks)
    tool_options: dict[str, Any] = field(default_factory=dict)


def load_inputs(inputs: Sequence[str | Path | Volume]) -> dict[str, Volume]:
    """Volumes keyed ``"0"``, ``"1"``, ... in input order; paths are read with `imaging.io.load`."""
    if not inputs:
        raise LoopError("no input image: give at least one image or study")
    volumes: dict[str, Volume] = {}
    for i, item in enumerate(inputs):
        if isinstance(item, Volume):
            volumes[str(i)] = item
        else:
            from imaging.io import load

            volumes[str(i)] = load(item)
    return volumes


def initial_views(volumes: dict[str, Volume], max_images: int = 4, montage_count: int = 9) -> list[View]:
    """The views of the first user turn, by the rule in the module docstring (unregistered)."""
    first: list[View] = []
    second: list[View] = []
    for vid, vol in volumes.items():
        label = f"volume {vid} ({vol.modality}"
        if vol.is_2d:
            view = slice_view(vol, "axial", 0, "auto", volume_id=vid)
            view.description = f"{label} image), the whole 2-D image, auto window"
            first.append(view)
            continue
        window = display_window(vol.modality, vol.data)
        montage = montage_view(vol, "axial", count=montage_count, window=window, volume_id=vid)
        montage.description = f"{label}), {montage.description}, {window} window"
        first.append(montage)
        coronal = slice_view(vol, "coronal", None, window, volume_id=vid)
        coronal.description = f"{label}), {coronal.description}"
        second.append(coronal)
    return (first + second)[:max_images]


def _deidentified(volume: Volume) -> dict[str, Any]:
    """`Volume.summary` without the name (a file stem may be a patient's name)."""
    return {k: v for k, v in volume.summary().items() if k != "name"}


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # reading package metadata costs milliseconds, and every episode records it
    out = {}
    for pkg in ("mmreason", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return tuple(out.items())


def versions() -> dict[str, str]:
    """Installed versions of mmreason, torch and transformers, recorded in every trace."""
    return dict(_installed_versions())


@dataclass
class EpisodeState:
    """What an episode holds so far, as the objects the loop keeps rather than the prose the model
    reads: the input of backends that plan from it (a backend with ``reads_state = True`` gets one
    per conversation as ``generate(..., states=...)``; the ``rules`` planner).

    Attributes:
        question, options: as asked (options are the texts of the lettered choices).
        volumes: the studies by volume id (``"0"``, ``"1"``, ... in input order).
        specs: the tool specs (JSON Schema) the model is offered.
        trace: the turns so far: each assistant turn's `ToolCall`s, each message's `ImageRef`s
            (the frame the model saw each image in).
        views: every view shown so far, by view id.
        evidence: the evidence board so far.
        dropped_images: running indices of images removed from the conversation (`ImageLedger`).
    """

    question: str
    options: list[str] | None
    volumes: dict[str, Volume]
    specs: list[dict[str, Any]]
    trace: Trace
    views: dict[str, View]
    evidence: list[Evidence]
    dropped_images: frozenset[int] = frozenset()

    def find(self, evidence_id: str | None) -> Evidence | None:
        return next((ev for ev in self.evidence if ev.id == evidence_id), None)


class Episode:
    """The state of one episode; `run_episodes` advances several of them one turn at a time."""

    def __init__(self, request: EpisodeRequest, backend: Any, registry: ToolRegistry, config: LoopConfig,
                 seed: int | None) -> None:
        t0 = time.perf_counter()
        self.config, self.registry, self.backend = config, registry, backend
        self.options = request.options
        self.specs = registry.specs()
        volumes = load_inputs(request.inputs)
        self.context = ToolContext(volumes=volumes, segmenter=config.segmenter,
                                   options={**config.tool_options, **request.tool_options},
                                   segmenter_instance=config.segmenter_instance)
        views = initial_views(volumes, config.max_initial_images, config.montage_count)
        for view in views:
            self.context.add_view(view)
        self.trace = Trace(question=request.question, options=request.options,
                           inputs=[_deidentified(v) for v in volumes.values()], backend=backend.name,
                           model=getattr(backend, "model_id", ""), seed=seed, versions=versions(),
                           meta=dict(request.meta))
        self.trace.meta["views"] = [view_to_dict(v) for v in views]
        self.ledger = ImageLedger(frame=backend.model_image_size, max_images=config.max_images)
        self.seen: dict[str, str] = {}
        self.retries_left = config.format_retries
        self.turns = 0
        self.timings = {"imaging": 0.0, "tools": 0.0, "model": 0.0}

        system = prompts.system_prompt(self.specs, backend.native_tools)
        self.conversation: list[Message] = [message("system", [text_part(system)])]
        self.trace.turns.append(Turn(role="system", text=system))
        parts, refs = view_parts(views, self.ledger, message_index=1, first_part=1, initial=True)
        question = prompts.question_text(request.question, request.options)
        parts = [text_part(study_text(volumes) + "\n")] + parts + [text_part(question)]
        self.conversation.append(message("user", parts))
        self.trace.turns.append(Turn(role="user", text=_text_of(parts), images=refs))
        self.timings["imaging"] = time.perf_counter() - t0
        self._t0 = t0

    @property
    def done(self) -> bool:
        return self.trace.status != "running"

    def state(self) -> EpisodeState:
        """The episode so far as objects (see `EpisodeState`)."""
        return EpisodeState(question=self.trace.question, options=self.options, volumes=self.context.volumes,
                            specs=self.specs, trace=self.trace, views=self.context.views,
                            evidence=list(self.context.evidence),
                            dropped_images=frozenset(self.trace.meta.get("dropped_images", ())))

    def step(self, text: str, model_seconds: float, generation: Generation | None = None) -> None:
        """Take one model turn: record it, run its tool calls or read its answer.

        ``generation`` (from a ``generate_detailed`` backend) supplies the turn's token counts.
        """
        self.turns += 1
        self.timings["model"] += model_seconds
        calls = parse_tool_calls(text, self.specs)
        self.conversation.append(message("assistant", [text_part(text)]))
        turn = Turn(role="assistant", text=text, seconds=model_seconds)
        if generation is not None:
            turn.prompt_tokens, turn.completion_tokens = generation.prompt_tokens, generation.completion_tokens
            self._count_usage(turn)
        self.trace.turns.append(turn)
        if calls:
            first_tool_message = len(self.conversation)
            limit = self.config.max_tool_calls
            for parsed in calls[:limit]:
                if self.done:
                    break
                self._run_call(parsed, turn)
            if len(calls) > limit and not self.done:
                self._skip_calls(calls[limit:], turn)
            dropped = self.ledger.enforce(self.conversation, keep_from_message=first_tool_message)
            if dropped:
                self.trace.meta.setdefault("dropped_images", []).extend(dropped)
        else:
            self._read_answer(text)
        if not self.done and self.turns >= self.config.max_turns:
            self._finish("max_turns")
        self._check_limits()

    def _check_limits(self) -> None:
        """End the episode (status ``limit``) when its text or its wall time passed the bound."""
        if self.done:
            return
        chars = self.prompt_chars()
        elapsed = time.perf_counter() - self._t0
        if chars > self.config.max_prompt_chars:
            why = (f"the conversation reached {chars} characters, above max_prompt_chars="
                   f"{self.config.max_prompt_chars} (CLI: --max-prompt-chars)")
        elif elapsed > self.config.max_seconds:
            why = (f"the episode ran {elapsed:.0f} s, above max_seconds={self.config.max_seconds:g} "
                   "(CLI: --max-seconds)")
        else:
            return
        self.trace.meta["limit"] = why
        self._finish("limit")

    def prompt_chars(self) -> int:
        """Characters of text in the conversation (what the next turn's prompt holds, images aside)."""
        return sum(len(p.get("text", "")) for m in self.conversation for p in m["content"]
                   if isinstance(p, dict))

    def fail(self, exc: BaseException) -> None:
        """End the episode with status ``error`` after an unexpected exception outside the tools."""
        self.trace.meta["error"] = "".join(traceback.format_exception(exc, limit=6))
        self._finish("error")

    def _skip_calls(self, skipped: list[ParsedCall], turn: Turn) -> None:
        """One tool message for the calls past ``max_tool_calls``: not run, and the model is told."""
        names = ", ".join(c.name or "?" for c in skipped[:20]) + (" ..." if len(skipped) > 20 else "")
        text = (f"Error: only {self.config.max_tool_calls} tool calls are run per turn; {len(skipped)} more "
                f"({names}) were not run. Make the calls you still need in your next turn.")
        for parsed in skipped:
            turn.tool_calls.append(ToolCall(name=parsed.name, arguments={}, raw=clip(parsed.raw, self.config.max_echo_chars),
                                            error="not run: max_tool_calls per turn reached"))
        self.trace.meta.setdefault("skipped_calls", 0)
        self.trace.meta["skipped_calls"] += len(skipped)
        self.conversation.append({"role": "tool", "name": "limit", "content": [text_part(text)]})
        self.trace.turns.append(Turn(role="tool", text=text))

    def _count_usage(self, turn: Turn) -> None:
        if turn.prompt_tokens is None or turn.completion_tokens is None:
            return
        usage = self.trace.meta.setdefault("usage", {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        usage["prompt_tokens"] += turn.prompt_tokens
        usage["completion_tokens"] += turn.completion_tokens
        usage["total_tokens"] += turn.prompt_tokens + turn.completion_tokens

    def _read_answer(self, text: str) -> None:
        answer = parse_answer(text, self.options)
        if answer is None:
            if self.retries_left > 0:
                self.retries_left -= 1
                reminder = prompts.format_reminder(getattr(self.backend, "tool_call_format", "json"))
                self.conversation.append(message("user", [text_part(reminder)]))
                self.trace.turns.append(Turn(role="user", text=reminder))
                return
            self.trace.meta["answer_untagged"] = True
            plain = strip_think(text).strip()
            answer = parse_answer(f"<answer>{plain}</answer>", self.options)
        assert answer is not None
        self.trace.answer, self.trace.answer_option, self.trace.cited_evidence = (
            answer.text, answer.option, answer.cited)
        self._finish("abstained" if _ABSTAIN.search(answer.text) else "answered")

    def _run_call(self, parsed: ParsedCall, turn: Turn) -> None:
        t0 = time.perf_counter()
        echo = self.config.max_echo_chars
        call = ToolCall(name=parsed.name, arguments=parsed.arguments, raw=clip(parsed.raw, echo))
        turn.tool_calls.append(call)
        key = parsed.name + json.dumps(parsed.arguments, sort_keys=True, default=str)
        images: list[View] = []
        ev: Evidence | None = None
        try:
            if parsed.error:
                raise ToolError(parsed.error)
            tool = self.registry.get(parsed.name)
            if key in self.seen:
                ev = self.context.find(self.seen[key])
                assert ev is not None
                call.cached, call.evidence_id = True, ev.id
                text = (f"Same call as {ev.id}: the result is repeated from the evidence board, not re-run "
                        f"(its images are shown above).\n" + result_text(ev))
            else:
                arguments, note = self._to_view_pixels(tool.validate(dict(parsed.arguments)))
                ev = tool.run(self.context, **arguments)
                for view in ev.views:
                    if not view.view_id or self.context.views.get(view.view_id) is not view:
                        self.context.add_view(view)
                call.evidence_id = ev.id
                self.seen[key] = ev.id
                text, images = result_text(ev, note), ev.views
        except MMReasonError as exc:
            call.error = clip(str(exc), echo)
            text = f"Error: {call.error}"
        except Exception as exc:  # a bug in a tool: end this episode, keep the others of a batch going
            call.error = clip(f"{type(exc).__name__}: {exc}", echo)
            text = f"Error: the tool failed ({call.error})"
            self.trace.meta["error"] = traceback.format_exc(limit=6)
            self._finish("error")
        index = len(self.conversation)
        parts = [text_part(text + ("\n" if images else ""))]
        image_parts, refs = view_parts(images, self.ledger, index, len(parts), initial=False)
        self.conversation.append({"role": "tool", "name": parsed.name or "unknown", "content": parts + image_parts})
        seconds = time.perf_counter() - t0
        self.timings["tools"] += seconds
        self.trace.turns.append(Turn(role="tool", text=_text_of(parts + image_parts),
                                     evidence_ids=[ev.id] if ev is not None else [], images=refs, seconds=seconds))

    def _to_view_pixels(self, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Map ``bbox_2d``/``point_2d`` from the model's frame of ``view_id`` to the view's pixels."""
        view_id = arguments.get("view_id")
        if not isinstance(view_id, str) or view_id not in self.ledger.model_sizes or view_id not in self.context.views:
            return arguments, ""  # the tool reports unknown views itself
        model_size = self.ledger.model_sizes[view_id]
        view_size = self.context.views[view_id].size
        note = ""
        out = dict(arguments)
        label = f"view {view_id}"
        if "bbox_2d" in out:
            out["bbox_2d"], note = map_box_to_view(out["bbox_2d"], model_size, view_size, self.config.min_box_px, label)
        if "point_2d" in out:
            out["point_2d"] = map_point_to_view(out["point_2d"], model_size, view_size, label)
        return out, note

    def _finish(self, status: str) -> None:
        self.trace.status = status
        self.trace.evidence = list(self.context.evidence)
        self.trace.timings = {k: round(v, 4) for k, v in self.timings.items()}
        self.trace.timings["total"] = round(time.perf_counter() - self._t0, 4)


def run_episodes(requests: Sequence[EpisodeRequest], backend: Any, *, config: LoopConfig | None = None,
                 registry: ToolRegistry | None = None, seed: int | None = None,
                 progress: Callable[[str], None] | None = None) -> list[Trace]:
    """Run several episodes together: each turn, one ``backend.generate`` call on every active one.

    Args:
        requests: the questions and their inputs.
        backend: any `mmreason.backends` backend (``generate``, ``model_image_size``, ``native_tools``).
        config: loop settings (`LoopConfig` defaults when None).
        registry: the tools (``grounding.tools.default_registry()`` when None).
        seed: sampling seed; turn ``t`` of the batch is generated with ``seed + t``.
        progress: called with a one-line message after each turn (e.g. print to stderr).

    Returns:
        one finished `Trace` per request, in order.
    """
    config = config or LoopConfig()
    if registry is None:
        from grounding.tools import default_registry

        registry = default_registry()
    episodes = [Episode(r, backend, registry, config, seed) for r in requests]
    tools = registry.specs() if backend.native_tools else None
    turn = 0
    while active := [e for e in episodes if not e.done]:
        _model_turn(active, backend, config, tools, None if seed is None else seed + turn)
        turn += 1
        if progress:
            called = [c.name or "?" for e in active for c in _last_assistant(e.trace).tool_calls]
            what = f"tool calls: {', '.join(called)}" if called else "no tool call"
            progress(f"turn {turn}: {len(active)} active, {what}; {sum(e.done for e in episodes)}/{len(episodes)} done")
    return [e.trace for e in episodes]


def stream_episode(request: EpisodeRequest, backend: Any, *, config: LoopConfig | None = None,
                   registry: ToolRegistry | None = None, seed: int | None = None) -> Iterator[Trace]:
    """One episode, yielding its trace once the study is shown and again after every model turn
    (with the tool results of that turn and the evidence so far), for a live view (the web app).

    The last trace yielded is finished (its ``status`` is no longer ``running``), as `run_episode`'s.
    """
    config = config or LoopConfig()
    if registry is None:
        from grounding.tools import default_registry

        registry = default_registry()
    episode = Episode(request, backend, registry, config, seed)
    tools = registry.specs() if backend.native_tools else None
    yield episode.trace
    turn = 0
    while not episode.done:
        _model_turn([episode], backend, config, tools, None if seed is None else seed + turn)
        turn += 1
        if not episode.done:
            episode.trace.evidence = list(episode.context.evidence)
        yield episode.trace


def _model_turn(active: list[Episode], backend: Any, config: LoopConfig, tools: list[dict] | None,
                seed: int | None) -> None:
    """One ``generate`` call over the active episodes, then one step of each."""
    t0 = time.perf_counter()
    options = dict(tools=tools, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                   seed=seed, stop=config.stop)
    conversations = [e.conversation for e in active]
    if getattr(backend, "reads_state", False):
        options["states"] = [e.state() for e in active]
    generations: list[Generation] | list[None]
    detailed = getattr(backend, "generate_detailed", None)
    if detailed is not None:
        generations = detailed(conversations, **options)
        texts = [g.text for g in generations]
    else:
        texts = backend.generate(conversations, **options)
        generations = [None] * len(texts)
    share = (time.perf_counter() - t0) / len(active)
    for episode, text, generation in zip(active, texts, generations, strict=True):
        try:
            episode.step(text, share, generation)
        except Exception as exc:  # reading this turn failed: end this episode, keep the batch going
            episode.fail(exc)


def run_episode(images_or_volumes: Sequence[str | Path | Volume] | str | Path | Volume, question: str,
                backend: Any, *, options: list[str] | None = None, max_turns: int | None = None,
                registry: ToolRegistry | None = None, seed: int | None = None, config: LoopConfig | None = None,
                progress: Callable[[str], None] | None = None) -> Trace:
    """Answer ``question`` about one study (one or more images/volumes) with ``backend``.

    Args:
        images_or_volumes: paths (any format `imaging.io.load` reads) or `Volume`s; several are
            shown as volumes ``0``, ``1``, ... (prior first for a follow-up).
        question: the question text; options: multiple-choice option texts (letters A, B, ...).
        max_turns: overrides ``config.max_turns`` (default 8).
        registry, seed, config, progress: as in `run_episodes`.
    """
    if isinstance(images_or_volumes, (str, Path, Volume)):
        images_or_volumes = [images_or_volumes]
    config = config or LoopConfig()
    if max_turns is not None:
        config = LoopConfig(**{**config.__dict__, "max_turns": max_turns})
    request = EpisodeRequest(inputs=list(images_or_volumes), question=question, options=options)
    return run_episodes([request], backend, config=config, registry=registry, seed=seed, progress=progress)[0]


def _last_assistant(trace: Trace) -> Turn:
    return next(t for t in reversed(trace.turns) if t.role == "assistant")


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(p["text"] if p.get("type") == "text" else "<image>" for p in parts)
