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
from typing import Any, Protocol, runtime_checkable

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
        models that write relative coordinates (Qwen2-VL, Qwen3-VL, Qwen3.5): an `imaging.locate.ModelFrame`;
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


#: model types (``config.model_type``) trained on boxes in 0..1000 relative coordinates (InternVL
#: writes ``<box>[[x1, y1, x2, y2]]</box>`` in 0..1000); Qwen2.5-VL and the rest write absolute
#: pixels of the image after the processor's resize
RELATIVE_BOX_MODEL_TYPES = frozenset({"qwen2_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "internvl"})
BOX_FORMATS = ("auto", "absolute", "relative")


def uses_relative_boxes(box_format: str, model_type: str | None) -> bool:
    """Whether boxes are in 0..`imaging.locate.RELATIVE_SCALE` coordinates: ``box_format`` (``auto``: by model type).

    Raises:
        BackendError: ``box_format`` is not one of `BOX_FORMATS`.
    """
    if box_format not in BOX_FORMATS:
        raise BackendError(f"box_format must be one of {', '.join(BOX_FORMATS)}, got {box_format!r}")
    if box_format == "auto":
        return (model_type or "") in RELATIVE_BOX_MODEL_TYPES
    return box_format == "relative"


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
