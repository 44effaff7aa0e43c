"""Chat messages in the transformers format, and the bookkeeping of every image the model sees.

Messages are ``{"role": ..., "content": [{"type": "text", "text": ...}, {"type": "image",
"image": PIL.Image}, ...]}`` with roles ``system``, ``user``, ``assistant`` and ``tool``. Each
image gets a running index and a caption giving its size *as the model sees it* (the frame of
``backend.model_image_size``), because that is the frame its boxes come back in:
"Image 3 (448x336), view V3: zoomed crop ...".

`ImageLedger` remembers, for every image, the view it shows, the model frame and where it sits
in the conversation, so the loop can map boxes back to view pixels and drop old images (crops
first) when the number in context passes a bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from grounding.evidence import Evidence
from imaging.locate import frame_box_to_view, frame_point_to_view
from imaging.views import View
from mmreason import prompts
from mmreason.trace import ImageRef

Message = dict[str, Any]


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def message(role: str, parts: list[dict[str, Any]]) -> Message:
    return {"role": role, "content": parts}


def caption(index: int, model_size: tuple[int, int], view: View) -> str:
    w, h = model_size
    return prompts.CAPTION.format(index=index, width=w, height=h, view_id=view.view_id, description=view.description)


@dataclass
class ImageEntry:
    """One image shown to the model and where it sits in the conversation."""

    ref: ImageRef
    message_index: int
    part_index: int
    initial: bool
    is_crop: bool
    dropped: bool = False


@dataclass
class ImageLedger:
    """Every image of an episode: running index, model frame per view, and the context bound.

    Attributes:
        frame: ``backend.model_image_size`` - (width, height) of a view -> the model's frame.
        max_images: the most images kept in the conversation; older ones are replaced by a note.
    """

    frame: Callable[[int, int], tuple[int, int]]
    max_images: int = 12
    entries: list[ImageEntry] = field(default_factory=list)
    model_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, view: View, message_index: int, part_index: int, initial: bool) -> ImageRef:
        """Register ``view`` shown at ``conversation[message_index].content[part_index]``."""
        w, h = view.size
        model_size = tuple(int(v) for v in self.frame(w, h))
        self.model_sizes[view.view_id] = model_size  # type: ignore[assignment]
        ref = ImageRef(index=len(self.entries) + 1, view_id=view.view_id, size=(w, h),
                       model_size=model_size)  # type: ignore[arg-type]
        self.entries.append(ImageEntry(ref, message_index, part_index, initial, view.plane == "crop"))
        return ref

    def next_index(self) -> int:
        return len(self.entries) + 1

    def live(self) -> list[ImageEntry]:
        return [e for e in self.entries if not e.dropped]

    def enforce(self, conversation: list[Message], keep_from_message: int) -> list[int]:
        """Drop images until at most ``max_images`` remain; returns the dropped image indices.

        Order of dropping: crops (oldest first), then other tool images, then the initial views;
        images of messages at or after ``keep_from_message`` (the newest results) are kept.
        """
        dropped: list[int] = []
        excess = len(self.live()) - self.max_images
        if excess <= 0:
            return dropped
        candidates = [e for e in self.live() if e.message_index < keep_from_message]
        ranked = sorted(candidates, key=lambda e: (not e.is_crop, e.initial, e.ref.index))
        for entry in ranked[:excess]:
            entry.dropped = True
            conversation[entry.message_index]["content"][entry.part_index] = text_part(
                f"[Image {entry.ref.index} (view {entry.ref.view_id}) was removed to keep the context "
                f"small; call crop or view again to see it.]")
            dropped.append(entry.ref.index)
        return dropped


def view_parts(views: list[View], ledger: ImageLedger, message_index: int, first_part: int,
               initial: bool) -> tuple[list[dict[str, Any]], list[ImageRef]]:
    """Caption + image parts for ``views`` placed from ``first_part`` in message ``message_index``."""
    parts: list[dict[str, Any]] = []
    refs = []
    for view in views:
        index = ledger.next_index()
        model_size = tuple(int(v) for v in ledger.frame(*view.size))
        parts.append(text_part(caption(index, model_size, view) + "\n"))  # type: ignore[arg-type]
        refs.append(ledger.add(view, message_index, first_part + len(parts), initial))
        parts.append({"type": "image", "image": view.image})
        parts.append(text_part("\n"))
    return parts, refs


def map_box_to_view(box: Any, model_size: tuple[int, int], view_size: tuple[int, int],
                    min_px: int, image_label: str) -> tuple[list[float], str]:
    """A box in the model's frame -> the same box in view pixels, plus a note for the model.

    The box is clamped to the image and, if narrower or shorter than ``min_px`` (one vision
    patch) in the model frame, enlarged about its centre to ``min_px`` (or the whole image side):
    `imaging.locate.frame_box_to_view`.

    Raises:
        GeometryError: the box is not four finite numbers, has no area, or lies outside the image.
    """
    framed = frame_box_to_view(box, view_size, model_size, min_side=min_px, image=image_label)
    mw, mh = model_size
    notes = []
    if framed.was_clamped:
        notes.append(f"bbox_2d {list(box)} was clamped to the {mw}x{mh} image: {_fmt(framed.clamped)}")
    if framed.was_enlarged:
        notes.append(f"bbox_2d was enlarged to {_fmt(framed.framed)}, at least {min_px} px (one vision patch) per side")
    return [round(v, 2) for v in framed.pixels], "; ".join(notes)


def map_point_to_view(point: Any, model_size: tuple[int, int], view_size: tuple[int, int],
                      image_label: str) -> list[float]:
    """A point [x, y] in the model's frame -> view pixels (`imaging.locate.frame_point_to_view`).

    Raises:
        GeometryError: the point is not two finite numbers or lies outside the image.
    """
    return [round(v, 2) for v in frame_point_to_view(point, view_size, model_size, image=image_label)]


def _fmt(box: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in (round(b, 1) for b in box)) + "]"


def result_text(ev: Evidence, note: str = "") -> str:
    """What the model reads for a tool result: ``[E3] text``, notes, then a JSON line of numbers.

    The JSON line (``Result: {"evidence_id": ..., "measurements": {name: [value, unit]},
    "box_size_mm": [w, h], "data": {...}}``) carries the measurements, the size of the box the
    call was about and the short facts of ``Evidence.data`` (scalars and short lists) in
    machine-readable form, for models and for the rules planner alike.
    """
    lines = [f"[{ev.id}] {ev.text}"]
    if note:
        lines.append(f"Note: {note}.")
    payload = result_payload(ev)
    if len(payload) > 1:
        lines.append("Result: " + json.dumps(payload, separators=(", ", ": ")))
    return "\n".join(lines)


def result_payload(ev: Evidence) -> dict[str, Any]:
    """The machine-readable part of a tool result (`result_text`'s ``Result:`` line) as a dict."""
    payload: dict[str, Any] = {"evidence_id": ev.id}
    if ev.measurements:
        payload["measurements"] = {k: [round(float(m.value), 3), m.unit] for k, m in ev.measurements.items()}
    if ev.box and isinstance(ev.box.get("mm"), dict) and "size_mm" in ev.box["mm"]:
        payload["box_size_mm"] = ev.box["mm"]["size_mm"]
    if ev.quality.level != "ok" or ev.quality.reasons:
        payload["quality"] = {"level": ev.quality.level, "reasons": ev.quality.reasons}
    facts = {k: _rounded(v) for k, v in ev.data.items() if _is_small(v)}
    if facts:
        payload["data"] = facts
    return payload


def _rounded(value: Any) -> Any:
    """Floats to 3 decimals (an mm figure of 11.200000166893005 is 11.2), in lists too."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _is_small(value: Any, depth: int = 0) -> bool:
    """Scalars, short strings and short (nested once) lists of them: what fits on one line."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return not isinstance(value, str) or len(value) <= 80
    if isinstance(value, (list, tuple)) and depth < 2:
        return len(value) <= 6 and all(_is_small(v, depth + 1) for v in value)
    return False


def parse_result_line(text: str) -> dict[str, Any] | None:
    """The JSON payload of a tool message written by `result_text` (None when there is none)."""
    for line in text.splitlines():
        if line.startswith("Result: "):
            try:
                return json.loads(line[len("Result: "):])
            except json.JSONDecodeError:
                return None
    return None
