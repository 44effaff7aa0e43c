"""The ``hf`` backend: any transformers image-text-to-text checkpoint, batched, on CPU or GPU.

Loads a hub id or a local directory with ``AutoProcessor`` and ``AutoModelForImageTextToText``
(falling back to ``AutoModelForMultimodalLM`` and ``AutoModelForCausalLM`` for checkpoints that
register only those), renders conversations with the checkpoint's own chat template and
generates with left padding.

Qwen-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, and derivatives such as Lingshu): images are
prepared with ``qwen_vl_utils.process_vision_info`` under the processor's pixel budget
(``min_pixels``/``max_pixels``), so ``model_image_size`` is exactly the frame the processor
resizes to and the loop can map the model's absolute pixel boxes back to the view. Other
families get the processor's own image handling and an identity ``model_image_size``.

Tool messages: when the chat template renders tools itself *and* renders images inside
``role: tool`` messages (Qwen3-VL does), tool messages go to the template unchanged. Otherwise
(e.g. Qwen2.5-VL, whose template knows no tools and would print an off-distribution
``<|im_start|>tool`` turn) they become user turns wrapped in ``<tool_response>`` tags, keeping
their images, which is how Qwen's tool-aware templates render them anyway. Force either with
``tool_messages="tool"`` or ``"user"``.

Thinking: when a rendered prompt ends inside ``<think>`` (Qwen3.5; ``thinking="off"`` asks the
template for ``enable_thinking=False`` instead), generation runs in two steps: reasoning, with
``</think>`` as an extra stop string and ``thinking_tokens`` new tokens; then, unless a call or an
answer already ended the turn, the block is closed (``</think>`` added when the budget ran out)
and the reply continues with ``max_new_tokens`` of its own. The completion starts with the
prompt's ``<think>`` opening, so the turn reads as the model's whole reply.

Prefix cache: every conversation of the loop starts with the same system prompt and tool list
(thousands of tokens), which a plain batched ``generate`` prefills again for every row, every
batch and every turn, with a padding mask that sends attention down its slow path. Qwen-VL
checkpoints therefore keep the key/value cache of the longest text-only prefix the rows share
(computed once, batch 1, no padding) and prefill only the rest: the batch is laid out as
``[shared prefix][left padding][own suffix]``, which the attention mask and Qwen's 3-D positions
handle like ordinary left padding. Greedy outputs are those of a full prefill; turn it off with
``prefix_cache=False``. Other families, and transformers older than `PREFIX_CACHE_TRANSFORMERS`
(not verified there), always prefill in full.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import re
import threading
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from imaging.locate import ModelFrame, qwen_geometry, set_pixel_budget
from mmreason.backends.base import (
    DEFAULT_STOP,
    BackendError,
    DetailedBackend,
    Generation,
    GenerationConfig,
    conversation_images,
    cut_at_stop,
    template_ready,
    tool_messages_as_user,
    uses_relative_boxes,
)

TOOL_MESSAGE_MODES = ("auto", "tool", "user")
THINKING_MODES = ("auto", "on", "off")
THINK_END = "</think>"
#: a shared prompt prefix shorter than this (tokens) is prefilled with the rest, not cached
MIN_PREFIX_TOKENS = 32
#: the transformers version whose Qwen-VL generation from a prefix cache was checked token for token
PREFIX_CACHE_TRANSFORMERS = (5, 24)
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "mmreason_probe_tool",
        "description": "probe",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _looks_like_path(model: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a directory."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def _inserted_text(short: str, long: str) -> str:
    """What was inserted into ``short`` to make ``long`` (common prefix and suffix removed)."""
    start = len(os.path.commonprefix([short, long]))
    end = len(os.path.commonprefix([short[start:][::-1], long[start:][::-1]]))
    return long[start : len(long) - end]


@dataclass
class _Prefix:
    """The key/value cache (batch 1) of the prompt tokens ``ids``."""

    ids: list[int]
    cache: Any


def think_opening(prompt: str) -> str:
    """The ``<think>`` opening a rendered prompt ends with (e.g. ``"<think>\n"``), or ""."""
    start = prompt.rfind("<think>")
    return prompt[start:] if start >= 0 and not prompt[start + len("<think>"):].strip() else ""


def _common_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _transformers_at_least(version: tuple[int, int]) -> bool:
    try:
        found = tuple(int(p) for p in metadata.version("transformers").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return found >= version


def _resolve_device_dtype(device: str, dtype: str) -> tuple[str, Any]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise BackendError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return device, resolved


class HFBackend(DetailedBackend):
    """Generate with a transformers vision-language model.

    Args:
        model: hub id (``Qwen/Qwen2.5-VL-3B-Instruct``) or checkpoint directory.
        device: ``"auto"`` (cuda when available, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        dtype: ``"auto"`` (bfloat16 on cuda, float32 on cpu) or a torch dtype name.
        min_pixels, max_pixels: per-image pixel budget of Qwen-VL processors (pixels after
            resize); None keeps the checkpoint's ``preprocessor_config``.
        batch_size: conversations per forward batch; a call with more is split.
        tool_messages: ``"auto"``, ``"tool"`` (always pass ``role: tool`` to the template) or
            ``"user"`` (always rewrite as ``<tool_response>`` user turns); see the module doc.
        top_p, top_k: nucleus / top-k filtering when sampling (temperature > 0); the defaults
            (1.0, 0) sample from the full tempered distribution, overriding the checkpoint's
            ``generation_config`` so ``temperature`` means the same on every model.
        trust_remote_code: passed to ``from_pretrained`` for checkpoints with custom code.
        prefix_cache: reuse the key/value cache of the prompt prefix all rows share (see the
            module doc); True by default, effective for Qwen-VL checkpoints only.
        box_format: ``"auto"`` (by ``config.model_type``: relative 0..1000 boxes for Qwen2-VL,
            Qwen3-VL, Qwen3.5 and InternVL, absolute pixels of the processor's image otherwise),
            ``"absolute"`` or ``"relative"``; decides the frame of `model_image_size`.
        thinking: ``"auto"`` (what the chat template does by default), ``"on"`` or ``"off"``
            (``enable_thinking`` passed to the template; ``"off"`` raises a `BackendError` when
            the template cannot turn thinking off).
        thinking_tokens: the reasoning budget when the generation prompt opens a ``<think>``
            block (Qwen3.5, Qwen3 thinking models): reasoning gets up to this many new tokens;
            then (or when it closes ``</think>`` itself) the block is closed and the reply goes on
            with its own ``max_new_tokens`` for the tool call or answer. 0: no separate budget.

    Family behaviour read from the checkpoint itself (see docs/models.md): the box frame from the
    processor (`imaging.locate.ModelFrame.from_processor`), ``tool_call_format`` (``"json"``
    Hermes, or ``"xml"`` when the template teaches Qwen3.5's ``<function=...><parameter=...>``
    form), ``opens_thinking``.
    Prompts are tokenised with ``add_special_tokens=False``: the chat template writes the special
    tokens it wants (Gemma's writes ``<bos>``), as ``apply_chat_template(tokenize=True)`` does.

    A ``seed`` given to ``generate`` seeds torch once per call: the same call with the same
    ``batch_size`` gives the same output. Calls are serialised (one model, one thread).
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        batch_size: int = 8,
        tool_messages: str = "auto",
        top_p: float = 1.0,
        top_k: int = 0,
        trust_remote_code: bool = False,
        prefix_cache: bool = True,
        box_format: str = "auto",
        thinking: str = "auto",
        thinking_tokens: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise BackendError(f"batch_size must be at least 1, got {batch_size}")
        if tool_messages not in TOOL_MESSAGE_MODES:
            raise BackendError(f"tool_messages must be one of {TOOL_MESSAGE_MODES}, got {tool_messages!r}")
        if thinking not in THINKING_MODES:
            raise BackendError(f"thinking must be one of {', '.join(THINKING_MODES)}, got {thinking!r}")
        if thinking_tokens < 0:
            raise BackendError(f"thinking_tokens must be 0 or more, got {thinking_tokens}")
        self.model_id = str(model)
        self.thinking, self.thinking_tokens = thinking, thinking_tokens
        self.batch_size = batch_size
        self.top_p, self.top_k = top_p, top_k
        self.device, self.dtype = _resolve_device_dtype(device, dtype)
        self._lock = threading.Lock()
        self.processor = self._load_processor(trust_remote_code, min_pixels, max_pixels)
        self.model = self._load_model(trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._qwen = qwen_geometry(getattr(self.processor, "image_processor", None))
        self.relative_boxes = uses_relative_boxes(box_format, getattr(self.model.config, "model_type", None))
        self.frame = ModelFrame.from_processor(self.processor, self.relative_boxes)
        self.native_tools = self._template_renders_tools()
        self.tool_call_format = self._template_tool_call_format()
        self.opens_thinking = self._template_opens_thinking()
        if tool_messages == "auto":
            tool_messages = "tool" if self.native_tools and self._template_renders_tool_images() else "user"
        self.tool_messages = tool_messages
        self._end_ids = self._end_token_ids()
        self._prefix: _Prefix | None = None
        # Qwen-VL keeps the 3-D position offsets of the last call in `rope_deltas`; a prefix
        # cache must clear them, so only models that expose them use one.
        self._positions_owner = getattr(self.model, "model", None)
        self.prefix_cache = bool(
            prefix_cache and self._qwen is not None and hasattr(self._positions_owner, "rope_deltas")
            and _transformers_at_least(PREFIX_CACHE_TRANSFORMERS) and self._cache_can_be_shared()
        )
        forward = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"

    # -- loading ---------------------------------------------------------------------------

    def _source(self) -> str:
        path = Path(self.model_id).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BackendError(
                    f"{path} has no config.json, so it is not a transformers checkpoint; point "
                    "--model at the directory written by save_pretrained (or a hub id)"
                )
            return str(path)
        if path.exists() or _looks_like_path(self.model_id):
            raise BackendError(
                f"model directory {self.model_id!r} does not exist; pass an existing checkpoint "
                "directory or a hub id such as Qwen/Qwen2.5-VL-3B-Instruct. For a weight-free "
                "smoke test, build a tiny model with `python -m mmreason.tiny_models DIR`"
            )
        return self.model_id

    def _hub_error(self, what: str, error: Exception) -> BackendError:
        reason = " ".join(str(error).split()).rstrip(".")  # one line, as the CLI prints it
        return BackendError(
            f"could not load the {what} of {self.model_id!r}: {reason}. Check the hub id, or "
            "download it first (`hf download ID --local-dir DIR`) and pass the directory; "
            "without network the checkpoint must be in the Hugging Face cache or a local directory"
        )

    def _load_processor(self, trust_remote_code: bool, min_pixels: int | None, max_pixels: int | None):
        from transformers import AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(self._source(), trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            raise self._hub_error("processor", error) from error
        if min_pixels is None and max_pixels is None:
            return processor
        budget = set_pixel_budget(getattr(processor, "image_processor", None), min_pixels, max_pixels)
        if budget is None:
            raise BackendError(
                f"min_pixels/max_pixels apply to Qwen-VL processors; {type(processor).__name__} "
                "has its own image size settings, so drop these options"
            )
        if budget["shortest_edge"] > budget["longest_edge"]:
            raise BackendError(f"min_pixels ({budget['shortest_edge']}) exceeds max_pixels ({budget['longest_edge']})")
        return processor

    def _load_model(self, trust_remote_code: bool):
        import transformers

        source = self._source()
        last_error: Exception | None = None
        for auto in ("AutoModelForImageTextToText", "AutoModelForMultimodalLM", "AutoModelForCausalLM"):
            loader = getattr(transformers, auto, None)
            if loader is None:
                continue
            try:
                model = loader.from_pretrained(source, dtype=self.dtype, trust_remote_code=trust_remote_code)
            except ValueError as error:  # this auto class does not know the config type
                last_error = error
                continue
            except OSError as error:
                raise self._hub_error("weights", error) from error
            return model.to(self.device).eval()
        raise BackendError(
            f"{self.model_id!r} is not an image-text-to-text model transformers can load "
            f"({last_error}); use a vision-language checkpoint or pass trust_remote_code"
        )

    def _cache_can_be_shared(self) -> bool:
        """Whether every layer's cache can be cut back and copied across a batch; the recurrent
        state of linear-attention layers (Qwen3.5's Gated DeltaNet) cannot."""
        from transformers import DynamicCache

        layers = DynamicCache(config=self.model.config).layers
        return all(hasattr(layer, "crop") and hasattr(layer, "batch_repeat_interleave") for layer in layers)

    def _end_token_ids(self) -> set[int]:
        ids = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos])
        return {i for i in ids if i is not None}

    # -- chat template ---------------------------------------------------------------------

    def render(self, conversation: list[dict], tools: list[dict] | None = None) -> str:
        """The prompt text the model sees, generation prompt included (images as placeholders)."""
        conversation = self._without_vision_tokens(conversation)
        if self.tool_messages == "user":
            conversation = tool_messages_as_user(conversation)
        try:
            return self._apply_template(conversation, tools)
        except Exception as error:  # jinja errors from arbitrary checkpoint templates
            raise BackendError(
                f"the chat template of {self.model_id!r} could not render the conversation: {error}"
            ) from error

    def _apply_template(self, conversation: list[dict], tools: list[dict] | None,
                        thinking: str | None = None) -> str:
        options = {}
        if (thinking or self.thinking) != "auto":
            options["enable_thinking"] = (thinking or self.thinking) == "on"
        return self.processor.apply_chat_template(template_ready(conversation), tools=tools, add_generation_prompt=True,
                                                  tokenize=False, **options)

    def _raw_render(self, conversation: list[dict], tools: list[dict] | None = None) -> str | None:
        """The template's rendering as is (no tool-message rewrite), None when it raises."""
        try:
            return self._apply_template(conversation, tools)
        except Exception:  # a template that rejects the probe simply lacks that feature
            return None

    def _template_renders_tools(self) -> bool:
        text = self._raw_render([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [_PROBE_TOOL])
        return text is not None and "mmreason_probe_tool" in text

    def _template_tool_call_format(self) -> str:
        """``"xml"`` when the template teaches Qwen3.5's ``<function=name><parameter=key>`` calls
        with its tool list, else ``"json"`` (Hermes; also what our own tool prompt teaches)."""
        if not self.native_tools:
            return "json"
        text = self._raw_render([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [_PROBE_TOOL])
        return "xml" if text and "<function=" in text else "json"

    def _template_opens_thinking(self) -> bool:
        """Whether the generation prompt of a plain user turn opens a ``<think>`` block.

        Raises:
            BackendError: ``thinking="off"`` but the template opens a thinking block anyway.
        """
        probe = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        try:
            opens = bool(think_opening(self._apply_template(probe, None)))
        except Exception:  # the render error is reported, with its cause, on the first real call
            return False
        if opens and self.thinking == "off":
            raise BackendError(
                f"the chat template of {self.model_id!r} opens a <think> block even with "
                "enable_thinking=False; use thinking='auto' and budget it with thinking_tokens"
            )
        return opens

    def _template_renders_tool_images(self) -> bool:
        from PIL import Image

        image = {"type": "image", "image": Image.new("RGB", (32, 32))}
        text = {"type": "text", "text": "probe"}
        user_without = self._raw_render([{"role": "user", "content": [text]}])
        user_with = self._raw_render([{"role": "user", "content": [image, text]}])
        if not user_with or not user_without:
            return False
        marker = _inserted_text(user_without, user_with)

        def tool_turn(parts: list[dict]) -> str | None:
            return self._raw_render(
                [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "call"}]},
                    {"role": "tool", "content": parts},
                ]
            )

        tool_without, tool_with = tool_turn([text]), tool_turn([text, image])
        if not marker or tool_with is None or tool_without is None:
            return False
        return tool_with.count(marker) > tool_without.count(marker)

    def _without_vision_tokens(self, conversation: list[dict]) -> list[dict]:
        """Assistant turns with the processor's image/video placeholder tokens removed.

        A model may write ``<|image_pad|>`` itself (a sampling tiny or fine-tuned model does);
        fed back, the processor would count it as an image and refuse the whole batch.
        """
        pattern = self._vision_token_pattern
        if pattern is None or not any(m.get("role") == "assistant" for m in conversation):
            return conversation

        def clean(content: Any) -> Any:
            if isinstance(content, str):
                return pattern.sub("", content)
            if isinstance(content, list):
                return [{**p, "text": pattern.sub("", p["text"])} if isinstance(p.get("text"), str) else p
                        for p in content]
            return content

        return [{**m, "content": clean(m.get("content"))} if m.get("role") == "assistant" else m
                for m in conversation]

    @functools.cached_property
    def _vision_token_pattern(self) -> re.Pattern[str] | None:
        """One regex of the processor's image/video placeholder tokens (None when it has none)."""
        names = ("image_token", "video_token", "vision_start_token", "vision_end_token")
        found = {getattr(obj, n, None) for obj in (self.processor, self.tokenizer) for n in names}
        found |= {"<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"} & set(
            getattr(self.tokenizer, "all_special_tokens", []) or [])
        tokens = sorted(t for t in found if isinstance(t, str) and t)
        return re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None

    # -- images ----------------------------------------------------------------------------

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        """The frame of the model's boxes, read from the processor (`ModelFrame.from_processor`):
        ``(1000, 1000)`` for relative-coordinate models (Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL),
        the smart-resized image for Qwen2.5-VL and Lingshu (the same call that prepares the
        images), the fixed square of Gemma 3 / MedGemma (896x896), identity otherwise.
        """
        return self.frame(width, height)

    def _images(self, conversations: list[list[dict]]) -> list[Any]:
        """Images in template order: a flat list of resized images for Qwen-VL, else one list of
        RGB images per conversation (the nesting generic processors expect for batches)."""
        if self._qwen is None:
            nested = [[image.convert("RGB") for image in conversation_images(c)] for c in conversations]
            return nested if any(nested) else []
        from qwen_vl_utils import process_vision_info

        images = [image for conversation in conversations for image in conversation_images(conversation)]
        g = self._qwen
        budget = {"min_pixels": g["min_pixels"], "max_pixels": g["max_pixels"]}
        elements = [{"role": "user", "content": [{"type": "image", "image": im, **budget} for im in images]}]
        try:
            resized, _ = process_vision_info(elements, image_patch_size=g["patch"])
        except ValueError as error:  # e.g. aspect ratio beyond 200:1
            raise BackendError(f"cannot prepare an image for {self.model_id!r}: {error}") from error
        return resized or []

    def prepare_inputs(self, conversations: list[list[dict]], tools: list[dict] | None = None):
        """The processor's batch (left-padded ``input_ids``, ``pixel_values``, ``image_grid_thw``
        for Qwen-VL ...) on the backend's device, exactly as ``generate`` feeds the model."""
        return self._encode([self.render(conversation, tools) for conversation in conversations], conversations)

    def _encode(self, texts: list[str], conversations: list[list[dict]]):
        images = self._images(conversations)
        # The template already wrote the special tokens it wants (Gemma's writes <bos>).
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt",
                                add_special_tokens=False)
        return inputs.to(self.device)

    # -- generation ------------------------------------------------------------------------

    def _generate(
        self, conversations: list[list[dict]], tools: list[dict] | None, config: GenerationConfig
    ) -> list[Generation]:
        """Generate in batches of ``batch_size``.

        ``config.seed`` seeds torch (and python/numpy) once per call, so the same call with the
        same ``batch_size`` gives the same output. Calls are serialised: one model, one thread.
        """
        from transformers import set_seed

        with self._lock:
            if config.seed is not None:
                set_seed(config.seed)
            out: list[Generation] = []
            for start in range(0, len(conversations), self.batch_size):
                out.extend(self._generate_batch(conversations[start : start + self.batch_size], tools, config))
            return out

    def _generate_batch(
        self, conversations: list[list[dict]], tools: list[dict] | None, config: GenerationConfig
    ) -> list[Generation]:
        """One batch; prompts that open ``<think>`` get a thinking budget (the module doc)."""
        texts = [self.render(conversation, tools) for conversation in conversations]
        # A template may open <think> for some prompts only (e.g. not when tools are given).
        openings = [think_opening(text) for text in texts]
        if not (self.thinking_tokens and all(openings)):
            return self._complete(texts, conversations, config, openings)
        thinking = replace(config, max_new_tokens=self.thinking_tokens, stop=config.stop + (THINK_END,))
        out = self._complete(texts, conversations, thinking, openings)
        # Reasoning that ended or ran out of budget is closed, and the reply goes on from there.
        going_on = [i for i, g in enumerate(out) if g.stop_string == THINK_END or g.finish_reason == "length"]
        if not going_on:
            return out
        closed = {i: out[i].text + ("\n\n" if out[i].stop_string == THINK_END else "\n</think>\n\n") for i in going_on}
        replies = self._complete([texts[i] + closed[i][len(openings[i]):] for i in going_on],
                                 [conversations[i] for i in going_on], config, [""] * len(going_on))
        for i, reply in zip(going_on, replies):
            out[i] = Generation(closed[i] + reply.text, reply.finish_reason, reply.stop_string, out[i].prompt_tokens,
                                (out[i].completion_tokens or 0) + (reply.completion_tokens or 0))
        return out

    def _complete(self, texts: list[str], conversations: list[list[dict]], config: GenerationConfig,
                  openings: list[str]) -> list[Generation]:
        """Generate from the rendered prompts ``texts`` (with the images of ``conversations``)."""
        import torch

        inputs = self._encode(texts, conversations)
        sampling: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if config.temperature > 0:
            sampling = {"do_sample": True, "temperature": config.temperature, "top_p": self.top_p, "top_k": self.top_k}
        stop_strings = list(config.stop)
        with torch.inference_mode():
            cached: dict[str, Any] = {}
            if self.prefix_cache:
                inputs, cached = self._reuse_prefix(inputs)
            output = self.model.generate(
                **inputs,
                **cached,
                max_new_tokens=config.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=stop_strings or None,
                tokenizer=self.tokenizer if stop_strings else None,
                **sampling,
            )
        prompt_length = inputs["input_ids"].shape[1]
        prompt_tokens = [int(n) for n in inputs["attention_mask"].sum(dim=1)]
        return [self.decode(row[prompt_length:].tolist(), config.stop, config.max_new_tokens, prompt_tokens[i],
                            openings[i])
                for i, row in enumerate(output)]

    # -- prefix cache ----------------------------------------------------------------------

    def _reuse_prefix(self, inputs: Any) -> tuple[Any, dict[str, Any]]:
        """``inputs`` laid out as [shared prefix][left padding][own suffix], and the ``generate``
        keyword holding a batch copy of the prefix's cache (``{}`` when no prefix is worth it).

        The prefix is text only (it ends before the first image or video token) and leaves every
        row at least one token to prefill. A stored prefix is reused when all rows start with
        it, cut down to what the rows share otherwise; only what no stored prefix covers is run.
        """
        import torch

        mask = inputs["attention_mask"].bool()
        ids = inputs["input_ids"]
        kinds = inputs.get("mm_token_type_ids")
        rows = [ids[i][mask[i]].tolist() for i in range(ids.shape[0])]
        limit = min(len(r) for r in rows) - 1
        if kinds is not None:
            media = [(kinds[i][mask[i]] != 0).nonzero() for i in range(ids.shape[0])]
            limit = min([limit] + [int(m[0]) for m in media if len(m)])
        shared = rows[0][:max(limit, 0)]
        for row in rows[1:]:
            shared = shared[: _common_length(shared, row)]
        stored = self._prefix
        length = 0 if stored is None else _common_length(stored.ids, shared)
        if stored is not None and length >= MIN_PREFIX_TOKENS:
            if length < len(stored.ids):
                stored.cache.crop(length - len(stored.ids))  # negative: tokens to drop
                stored.ids = stored.ids[:length]
        elif len(shared) >= MIN_PREFIX_TOKENS:
            stored = self._prefix = _Prefix(shared, self._prefill(shared))
            length = len(shared)
        else:
            return inputs, {}

        batch = len(rows)
        width = length + max(len(r) - length for r in rows)
        pad = self.tokenizer.pad_token_id
        laid = {
            "input_ids": torch.full((batch, width), pad, dtype=ids.dtype, device=ids.device),
            "attention_mask": inputs["attention_mask"].new_zeros((batch, width)),
        }
        if kinds is not None:
            laid["mm_token_type_ids"] = kinds.new_zeros((batch, width))
        for i, row in enumerate(rows):
            start = width - (len(row) - length)
            laid["input_ids"][i, :length] = ids[i][mask[i]][:length]
            laid["input_ids"][i, start:] = ids[i][mask[i]][length:]
            laid["attention_mask"][i, :length] = 1
            laid["attention_mask"][i, start:] = 1
            if kinds is not None:
                laid["mm_token_type_ids"][i, start:] = kinds[i][mask[i]][length:]
        inputs = dict(inputs) | laid
        cache = copy.deepcopy(stored.cache)
        cache.batch_repeat_interleave(batch)
        self._positions_owner.rope_deltas = None  # offsets of an earlier call, not of this batch
        return inputs, {self._cache_kwarg: cache}

    def _prefill(self, ids: list[int]) -> Any:
        """The key/value cache of the text tokens ``ids`` (batch 1, no padding)."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        self._positions_owner.rope_deltas = None
        self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1,
                   **{self._cache_kwarg: cache})
        return cache

    def decode(
        self, ids: list[int], stop: tuple[str, ...] = DEFAULT_STOP, max_new_tokens: int | None = None,
        prompt_tokens: int | None = None, opening: str = "",
    ) -> Generation:
        """Turn generated token ids into a completion.

        Decodes with ``skip_special_tokens=False`` so added markup such as ``<tool_call>`` (a
        special token in some Qwen tokenizers) survives, ends the text at the first end-of-turn
        or pad token, and cuts it right after the first stop string. ``max_new_tokens`` tells
        a length cut-off from a natural end. ``opening`` is the ``<think>`` block the generation
        prompt opened (`think_opening`): the completion starts with it, so the turn reads (and is
        fed back to the template) as the model's whole reply: reasoning, then call or answer.
        """
        ended = next((i for i, t in enumerate(ids) if t in self._end_ids), None)
        kept = ids if ended is None else ids[:ended]
        text, stop_string = cut_at_stop(opening + self.tokenizer.decode(kept, skip_special_tokens=False),
                                        stop)
        # Stop strings end a row inside generate, so the kept tokens are the completion.
        budget_left = max_new_tokens is None or len(ids) < max_new_tokens
        finished = stop_string is not None or ended is not None or budget_left
        reason = "stop" if finished else "length"
        completion = len(kept) + (ended is not None and stop_string is None)
        return Generation(text, reason, stop_string, prompt_tokens, completion)

