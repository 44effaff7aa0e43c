"""The interface every model backend implements, and helpers they share.

A backend turns a batch of chat-format conversations into one completion per conversation. It
never parses tool calls (the loop does): it only renders, generates and cuts the text after the
first stop string, keeping that stop string so the parser sees ``</tool_call>``.

Conversations follow the transformers chat format::

    {"role": "system" | "user" | "assistant" | "tool",
     "content": [{"type": "text", "text": ...}, {"type": "image", "image": PIL.Image}]}

``content`` may also be a plain string. Assistant messages carry raw model text (including
``<tool_call>...</tool_call>``); ``tool`` messages carry a tool result's text and images.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from imaging.errors import MMReasonError

DEFAULT_STOP: tuple[str, ...] = ("</tool_call>", "</answer>")


class BackendError(MMReasonError):
    """A model backend could not load or generate; the message says what to do."""


@dataclass
class GenerationConfig:
    """Decoding options shared by all backends.

    Attributes:
        max_new_tokens: upper bound on generated tokens per conversation.
        temperature: 0 means greedy decoding; > 0 samples at that temperature.
        seed: seeds sampling so a batch is reproducible; None leaves the RNG as it is.
        stop: generation ends after the first of these strings, which is kept in the output.
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = DEFAULT_STOP


@dataclass
class Generation:
    """One completion with the bookkeeping an OpenAI-style server reports.

    ``finish_reason`` is ``"stop"`` (a stop string or end-of-sequence token ended it) or
    ``"length"`` (``max_new_tokens`` was reached); ``stop_string`` is the stop string that ended
    it, if any. Token counts are None when the backend cannot count tokens.
    """

    text: str
    finish_reason: str
    stop_string: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class Backend(Protocol):
    """What the reasoning loop needs from a model.

    Attributes:
        name: the backend kind, ``"hf"``, ``"openai"`` or ``"rules"``.
        model_id: the checkpoint directory, hub id or served model name.
        native_tools: True when the model's chat template renders ``tools=`` itself; otherwise
            the loop writes the tool list into the system prompt.

    A backend may also say ``tool_call_format`` (``"json"`` Hermes calls, the default when
    absent, or ``"xml"``: Qwen3.5's ``<function=...><parameter=...>`` calls its template teaches);
    the loop's format reminder uses it. The parser reads both forms whatever it says. A backend
    that plans from the loop's objects rather than the conversation's text says ``reads_state =
    True`` and gets ``generate(..., states=[mmreason.loop.EpisodeState, ...])`` (the ``rules``
    planner); the others never receive ``states``.
    """

    name: str
    model_id: str
    native_tools: bool

    def generate(
        self,
        conversations: list[list[dict]],
        *,
        tools: list[dict] | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: tuple[str, ...] = DEFAULT_STOP,
    ) -> list[str]:
        """One completion per conversation, cut right after the first stop string."""
        ...

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        """The frame the model sees an image of this size in and writes its boxes in.

        The image's pixels after the processor's resize (Qwen2.5-VL), or ``(1000, 1000)`` for
        models that write relative coordinates (Qwen2-VL, Qwen3-VL, Qwen3.5: `box_frame`);
        identity when the backend cannot know it.
        """
        ...


class DetailedBackend(ABC):
    """Base class of backends that report finish reasons and token counts (``hf``, ``openai``).

    A subclass implements `_generate`; ``generate`` (the `Backend` method) and
    ``generate_detailed`` are built on it, so every such backend reads its options the same way.
    """

    def generate(self, conversations: list[list[dict]], **options: Any) -> list[str]:
        """One completion per conversation, cut right after the first stop string.

        ``options`` are those of `generate_detailed` (the `Backend.generate` keywords).
        """
        return [g.text for g in self.generate_detailed(conversations, **options)]

    def generate_detailed(
        self,
        conversations: list[list[dict]],
        *,
        tools: list[dict] | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: tuple[str, ...] = DEFAULT_STOP,
    ) -> list[Generation]:
        """Like ``generate`` but with finish reasons and token counts.

        Defaults as in `GenerationConfig`; how ``seed`` applies to a batch is said by each backend.
        Empty stop strings are dropped.
        """
        config = GenerationConfig(max_new_tokens, temperature, seed, tuple(s for s in stop if s))
        return self._generate(conversations, tools, config)

    @abstractmethod
    def _generate(
        self, conversations: list[list[dict]], tools: list[dict] | None, config: GenerationConfig
    ) -> list[Generation]:
        """One `Generation` per conversation, in order."""


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, str | None]:
    """Cut ``text`` right after the earliest occurrence of any stop string.

    Returns the (possibly shortened) text and the stop string found, or None. When two stop
    strings end at different places, the one whose occurrence starts first wins.
    """
    best: tuple[int, str] | None = None
    for s in stop:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    i, s = best
    return text[: i + len(s)], s


def qwen_resized_size(width: int, height: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) in pixels a Qwen-VL processor resizes a ``width`` x ``height`` image to.

    ``qwen_vl_utils.smart_resize``: both sides become multiples of ``factor`` pixels and the area
    stays within ``min_pixels``..``max_pixels``, keeping the aspect ratio as closely as it can.
    """
    from qwen_vl_utils import smart_resize

    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return w, h


#: the coordinate range of models that write boxes relative to the image, not in its pixels
RELATIVE_BOX_SCALE = 1000
#: model types (``config.model_type``) trained on boxes in 0..1000 relative coordinates (InternVL
#: writes ``<box>[[x1, y1, x2, y2]]</box>`` in 0..1000); Qwen2.5-VL and the rest write absolute
#: pixels of the image after the processor's resize
RELATIVE_BOX_MODEL_TYPES = frozenset({"qwen2_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "internvl"})
BOX_FORMATS = ("auto", "absolute", "relative")


def uses_relative_boxes(box_format: str, model_type: str | None) -> bool:
    """Whether boxes are in 0..`RELATIVE_BOX_SCALE` coordinates: ``box_format`` (``auto``: by model type).

    Raises:
        BackendError: ``box_format`` is not one of `BOX_FORMATS`.
    """
    if box_format not in BOX_FORMATS:
        raise BackendError(f"box_format must be one of {', '.join(BOX_FORMATS)}, got {box_format!r}")
    if box_format == "auto":
        return (model_type or "") in RELATIVE_BOX_MODEL_TYPES
    return box_format == "relative"


def box_frame(pixel_frame: tuple[int, int], relative: bool) -> tuple[int, int]:
    """The frame a model's boxes are in: the resized image's pixels, or the relative square."""
    return (RELATIVE_BOX_SCALE, RELATIVE_BOX_SCALE) if relative else pixel_frame


def size_field(size: Any, key: str) -> Any:
    """A field of an image processor's ``size`` (a dict, or a ``SizeDict`` in transformers 5)."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def qwen_geometry(image_processor: Any) -> dict[str, int] | None:
    """Patch factor and pixel budget of a Qwen-VL image processor; None for other families."""
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    size = getattr(image_processor, "size", None)
    if not (isinstance(patch, int) and isinstance(merge, int) and size is not None):
        return None
    min_pixels, max_pixels = size_field(size, "shortest_edge"), size_field(size, "longest_edge")
    if not (min_pixels and max_pixels):
        return None
    return {"patch": patch, "factor": patch * merge, "min_pixels": min_pixels, "max_pixels": max_pixels}


def processor_box_frame(processor: Any, relative: bool) -> Callable[[int, int], tuple[int, int]]:
    """``(width, height) -> (width, height)`` of the frame a model writes its boxes in, read from
    its processor (the rule `HFBackend.model_image_size` and training share).

    - ``relative`` (Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL: `uses_relative_boxes`): ``(1000, 1000)``
      for every image, whatever the processor does to it.
    - Qwen-VL processors (``patch_size``, ``merge_size`` and a ``size`` pixel budget; Qwen2.5-VL,
      Lingshu): the image as ``qwen_vl_utils.smart_resize`` resizes it.
    - Tiling processors (``crop_to_patches``: InternVL's GotOcr2) with absolute boxes forced: the
      canvas of whole tiles the image is resized to before it is cut (``get_optimal_tiled_canvas``).
    - Fixed-size processors (``do_resize`` to ``size = {height, width}``: Gemma 3 / MedGemma's
      SigLIP at 896x896, whatever the aspect ratio): that size.
    - Anything else: the image's own size (identity).
    """
    if relative:
        return lambda width, height: box_frame((width, height), True)
    image_processor = getattr(processor, "image_processor", None)
    qwen = qwen_geometry(image_processor)
    if qwen is not None:
        return lambda width, height: qwen_resized_size(width, height, qwen["factor"], qwen["min_pixels"],
                                                       qwen["max_pixels"])
    size = getattr(image_processor, "size", None)
    fixed = (size_field(size, "width"), size_field(size, "height")) if size is not None else (None, None)
    if not (getattr(image_processor, "do_resize", False) and all(isinstance(v, int) for v in fixed)):
        return lambda width, height: (width, height)
    tile_w, tile_h = fixed
    if getattr(image_processor, "crop_to_patches", False):
        from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

        lo, hi = image_processor.min_patches, image_processor.max_patches

        def tiled(width: int, height: int) -> tuple[int, int]:
            columns, rows = get_optimal_tiled_canvas((height, width), (tile_h, tile_w), lo, hi)
            return columns * tile_w, rows * tile_h

        return tiled
    return lambda width, height: (tile_w, tile_h)


def content_parts(content: Any) -> list[dict]:
    """A message's content as a list of parts; a plain string becomes one text part."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def is_image_part(part: dict) -> bool:
    return part.get("type") in ("image", "image_url") or "image" in part or "image_url" in part


def conversation_images(conversation: list[dict]) -> list[Any]:
    """The PIL images of a conversation in the order the chat template renders them."""
    return [
        part["image"]
        for message in conversation
        for part in content_parts(message.get("content"))
        if is_image_part(part) and "image" in part
    ]


def template_ready(conversation: list[dict]) -> list[dict]:
    """The conversation as chat templates of every family read it right.

    - Adjacent text parts merge into one, so a template that trims each part (Gemma 3's
      ``| trim``) keeps the newlines between a study line and an image caption instead of gluing
      them ("... 5.00 mmImage 1").
    - A message with text only gets its content as a plain string: templates written for text
      models (InternVL3-hf's system and assistant turns, Qwen2.5's ``'...' + message['content']``)
      concatenate it with strings and fail on a list.
    """
    out = []
    for message in conversation:
        parts: list[dict] = []
        for part in content_parts(message.get("content")):
            if part.get("type") == "text" and parts and parts[-1].get("type") == "text":
                parts[-1] = {**parts[-1], "text": parts[-1]["text"] + part["text"]}
            else:
                parts.append(part)
        if "content" in message and all(p.get("type") == "text" for p in parts):
            out.append({**message, "content": "".join(p["text"] for p in parts)})
        else:
            out.append({**message, "content": parts} if "content" in message else message)
    return out


def tool_messages_as_user(conversation: list[dict]) -> list[dict]:
    """Rewrite ``role: tool`` messages as user turns wrapped in ``<tool_response>`` tags.

    For chat templates (and servers) that cannot put images inside tool messages. Consecutive
    tool messages merge into one user turn, one ``<tool_response>`` block each, as Qwen's own
    templates render them; images stay in place inside the block.
    """
    out: list[dict] = []
    previous_was_tool = False
    for message in conversation:
        if message.get("role") != "tool":
            out.append(message)
            previous_was_tool = False
            continue
        parts = [{"type": "text", "text": "<tool_response>\n"}]
        parts += copy.copy(content_parts(message.get("content")))
        parts.append({"type": "text", "text": "\n</tool_response>"})
        if previous_was_tool:
            out[-1]["content"].append({"type": "text", "text": "\n"})
            out[-1]["content"].extend(parts)
        else:
            out.append({"role": "user", "content": parts})
        previous_was_tool = True
    return out
