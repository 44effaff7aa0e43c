"""What the planner knows about an episode: the question, the study, the images shown, the results.

Built from the loop's objects (`from_episode`: the `mmreason.loop.EpisodeState` the loop passes
to a backend that ``reads_state``): volumes, views with their ids, each tool call with its
evidence (`mmreason.messages.result_payload`, the numbers a model reads on the ``Result:``
line) and the frame each image was shown in. The prompt's wording plays no part.

A conversation that comes without the loop (the backend served over HTTP, `mmreason serve`) has
only its text; `mmreason.backends.rules.transcript` reads the same `State` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from grounding.plausibility import modality_hint, radiograph_view, radiograph_view_source
from mmreason.backends.rules.question import Question
from mmreason.messages import result_payload

if TYPE_CHECKING:
    from mmreason.loop import EpisodeState
    from mmreason.trace import ImageRef


@dataclass
class VolumeInfo:
    """A study as the planner needs it: id, modality, 2-D or not, its grid as (x, y[, z]),
    whether its orientation (no trusted header: the plane shown is not known to be the patient's)
    and its modality (guessed from the values) were assumed, the volume of one voxel in mm^3, and an
    MR's sequence where the files name it (``FLAIR``, ``T2``, ``T1``, ``T1C``, ...; None otherwise),
    and a radiograph's view as its header gives it (`grounding.plausibility.radiograph_view`:
    ``frontal``, ``lateral``, ``decubitus``, ``unknown``; None when not read, e.g. from a transcript)
    with the tag that said it; ``modality_hint`` tells the user how to correct a guessed modality
    (`grounding.plausibility.modality_hint`)."""

    id: str
    modality: str
    is_2d: bool
    shape_xyz: tuple[int, ...]
    orientation_assumed: bool = False
    modality_assumed: bool = False
    voxel_mm3: float = 1.0
    sequence: str | None = None
    view: str | None = None
    view_source: str = ""
    modality_hint: str = ""


@dataclass
class Shown:
    """An image shown to the model: its view, its size in the model's frame, the volume it shows,
    the image itself and its geometry (`imaging.geometry`; None in a served conversation)."""

    view_id: str
    size: tuple[int, int]
    volume: str | None
    image: Any = None
    geometry: Any = None


@dataclass
class Result:
    """One tool call of an earlier turn and what came back: the payload a model reads, the images,
    and a segment's boolean (z, y, x) mask (None in a served conversation, which has only text)."""

    name: str
    arguments: dict[str, Any]
    error: str | None
    payload: dict[str, Any]
    images: list[Shown]
    mask: Any = None

    @property
    def evidence_id(self) -> str | None:
        return self.payload.get("evidence_id")

    def measure(self, key: str) -> float | None:
        value = self.payload.get("measurements", {}).get(key)
        return float(value[0]) if value else None

    def fact(self, key: str) -> Any:
        return self.payload.get("data", {}).get(key)


@dataclass
class State:
    """What the planner knows: the question, the study, the initial images, the results so far."""

    question: str
    options: list[str] | None
    volumes: list[VolumeInfo]
    shown: list[Shown]
    results: list[Result]
    targets: list[str] = field(default_factory=list)
    #: False in a direct-answer run (vision only): no tool may be called
    tools_offered: bool = True

    @cached_property
    def q(self) -> Question:
        """The question's cues and what it asks for (`Question`)."""
        return Question.of(self.question)

    def first_view_of(self, volume_id: str) -> Shown | None:
        return next((s for s in self.shown if s.volume == volume_id), None)

    def cites(self) -> list[str]:
        """Every evidence id produced so far."""
        return [x.evidence_id for x in self.results if x.evidence_id]

    def three_d(self) -> list[VolumeInfo]:
        return [v for v in self.volumes if not v.is_2d]

    def modality(self) -> str | None:
        """The modality of the first 3-D volume (None when there is none)."""
        return next((v.modality for v in self.volumes if not v.is_2d), None)

    def sequence_names(self) -> dict[str, str]:
        """Volume id -> sequence name (``T1``, ``T2``, ``FLAIR``) as the question names them, else
        as the files do (`VolumeInfo.sequence`)."""
        ids = {v.id for v in self.volumes}
        named = {v.id: v.sequence for v in self.volumes if v.sequence}
        return named | {vid: name for vid, name in self.q.sequences.items() if vid in ids}


def segment_targets(specs: list[dict[str, Any]]) -> list[str]:
    """The ``target`` choices of the segment tool among ``specs`` (empty when it declares none)."""
    for spec in specs:
        fn = spec.get("function", spec)
        if fn.get("name") == "segment":
            return list(fn.get("parameters", {}).get("properties", {}).get("target", {}).get("enum", []))
    return []


def _named_sequence(facts: dict[str, Any]) -> str | None:
    """An MR's sequence when the files (or the program that built the volume) name it."""
    sequence = facts.get("sequence")
    return sequence.value if sequence is not None and not sequence.assumed else None


def _view(vol: Any) -> tuple[str | None, str]:
    """A radiograph's view and the header tag it was read from; (None, "") for other images."""
    if not (vol.is_2d and vol.modality == "XR"):
        return None, ""
    return radiograph_view(vol), radiograph_view_source(vol)


def from_episode(episode: EpisodeState) -> State:
    """The planner's `State` of an episode, from the loop's objects."""
    volumes = [VolumeInfo(vid, vol.modality, vol.is_2d, _shape_xyz(vol.shape, vol.is_2d),
                          (facts := vol.facts)["orientation"].assumed, facts["modality"].assumed,
                          float(vol.voxel_volume_mm3), _named_sequence(facts), *_view(vol), modality_hint(vol))
               for vid, vol in episode.volumes.items()]
    turns = episode.trace.turns
    shown = _shown(episode, turns[1].images) if len(turns) > 1 else []
    results: list[Result] = []
    pending = []
    for turn in turns[2:]:
        if turn.role == "assistant":
            pending = list(turn.tool_calls)
        elif turn.role == "tool" and pending:
            call = pending.pop(0)
            evidence = None if call.error else episode.find(call.evidence_id)
            results.append(Result(call.name, call.arguments, call.error,
                                  result_payload(evidence) if evidence is not None else {},
                                  _shown(episode, turn.images), None if evidence is None else evidence.mask))
    return State(episode.question.strip(), episode.options, volumes, shown, results, segment_targets(episode.specs),
                 tools_offered=bool(episode.specs))


def _shape_xyz(shape: tuple[int, ...], is_2d: bool) -> tuple[int, ...]:
    """(x, y) of a 2-D image, (x, y, z) of a 3-D volume, from its (z, y, x) array shape."""
    nz, ny, nx = shape
    return (nx, ny) if is_2d else (nx, ny, nz)


def _shown(episode: EpisodeState, refs: list[ImageRef]) -> list[Shown]:
    out = []
    for ref in refs:
        view = episode.views.get(ref.view_id)
        if view is None:
            continue
        image = None if ref.index in episode.dropped_images else view.image
        out.append(Shown(ref.view_id, tuple(ref.model_size), view.geometry.volume, image,  # type: ignore[arg-type]
                         view.geometry))
    return out
