"""The backend options every command that runs a model shares (``infer``, ``bench``, ``serve``).

`add_backend_arguments` adds them to a parser under the same names everywhere; `backend_spec` turns
them into ``(backend name, constructor options)`` and is a plain function, so the app (or any
front door without argparse) builds a backend the same way::

    name, options = backend_spec("openai", model="Qwen/Qwen2.5-VL-7B-Instruct",
                                 base_urls=["http://gpu0:8000/v1", "http://gpu1:8000/v1"],
                                 image_resize="qwen2_5_vl", max_pixels=1003520)
    backend = get_backend(name, **options)

A pixel limit never silently does nothing: ``rules`` refuses it, ``hf`` refuses it for processors
without a Qwen pixel budget and ``openai`` unless an ``image_resize`` rule makes it change the
box frame (see `mmreason.backends.openai_compat.OpenAIBackend`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from imaging.errors import MMReasonError
from mmreason.backends.base import BOX_FORMATS


class BackendOptionError(MMReasonError, ValueError):
    """Backend options that do not fit together; the message names the option to change."""


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend``, ``--model``, ``--base-url``, ``--backend-option`` and the image options."""
    from mmreason.backends.hf import THINKING_MODES
    from mmreason.backends.openai_compat import IMAGE_RESIZE_CHOICES

    g = parser.add_argument_group("model backend")
    g.add_argument("--backend", help="rules, hf, openai, or module:attr of a backend factory "
                                     "(default: rules, or hf when --model is given)")
    g.add_argument("--model", help="hub id or local checkpoint directory (hf), or served model name (openai)")
    g.add_argument("--base-url", action="append", default=[], metavar="URL",
                   help="OpenAI-compatible server URL ending in /v1 (openai backend); repeat to spread requests "
                        "over several servers of the same model")
    g.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra backend constructor option, repeatable; VALUE is read as JSON when it parses "
                        "(e.g. dtype=bfloat16, timeout=300, concurrency=16)")
    g.add_argument("--min-pixels", type=int, help="smallest image area in pixels the model sees (Qwen processors)")
    g.add_argument("--max-pixels", type=int, help="largest image area in pixels the model sees (Qwen processors)")
    g.add_argument("--image-resize", choices=IMAGE_RESIZE_CHOICES,
                   help="openai: the served model's image resize rule, so boxes are read in the frame the model "
                        "saw (qwen2_5_vl for Qwen2.5-VL behind vLLM; with --min/--max-pixels as the server's "
                        "--mm-processor-kwargs)")
    g.add_argument("--box-format", choices=BOX_FORMATS,
                   help="the model's box coordinates: pixels of the resized image (Qwen2.5-VL) or relative 0-1000 "
                        "(Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL); default auto: from the model type (hf), from "
                        "--image-resize (openai)")
    g.add_argument("--thinking", choices=THINKING_MODES,
                   help="hf: reasoning of thinking templates (Qwen3.5): auto (the template's default), on, or off "
                        "(enable_thinking=False)")
    g.add_argument("--thinking-tokens", type=int,
                   help="hf: tokens granted on top of --max-new-tokens when the prompt opens <think> (default 1024)")


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; a value is read as JSON when it parses, else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BackendOptionError(f"--backend-option expects KEY=VALUE, got '{item}'")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def backend_spec(backend: str | None = None, *, model: str | None = None, base_urls: list[str] | tuple[str, ...] = (),
                 min_pixels: int | None = None, max_pixels: int | None = None, image_resize: str | None = None,
                 box_format: str | None = None, thinking: str | None = None, thinking_tokens: int | None = None,
                 extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The backend name and constructor options; refuses options the backend would ignore.

    ``extra`` (``--backend-option``) is merged last; a key also given by its own option is an error.
    """
    name = backend or ("hf" if model else "rules")
    given = {"model": model, "base_url": list(base_urls) or None, "min_pixels": min_pixels, "max_pixels": max_pixels,
             "image_resize": image_resize, "box_format": box_format, "thinking": thinking,
             "thinking_tokens": thinking_tokens}
    options = {k: v for k, v in given.items() if v is not None}
    if options.get("base_url") and len(options["base_url"]) == 1:
        options["base_url"] = options["base_url"][0]
    clash = sorted(set(options) & set(extra or {}))
    if clash:
        raise BackendOptionError(f"{', '.join(clash)} given twice (its own option and --backend-option); give it once")
    options.update(extra or {})
    if ":" in name:
        return name, options  # a custom factory takes what it takes
    allowed = {
        "rules": set(),
        "hf": {"model", "min_pixels", "max_pixels", "box_format", "thinking", "thinking_tokens"},
        "openai": {"model", "base_url", "min_pixels", "max_pixels", "image_resize", "box_format"},
    }.get(name)
    if allowed is None:
        return name, options  # get_backend names the known backends
    if name == "hf" and not model:
        raise BackendOptionError("the hf backend needs --model (a hub id or a local checkpoint directory)")
    refused = [k for k in given if k in options and k not in allowed]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        owner = {"model": "hf or openai", "base_url": "openai", "image_resize": "openai (hf reads the resize from "
                 "the checkpoint's processor)", "thinking": "hf", "thinking_tokens": "hf", "min_pixels": "hf or openai",
                 "max_pixels": "hf or openai", "box_format": "hf or openai"}
        why = "; ".join(f"--{k.replace('_', '-')} needs --backend {owner[k]}" for k in refused)
        raise BackendOptionError(f"{flags} would do nothing with the {name} backend: {why}")
    return name, options


def backend_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """`backend_spec` of the arguments `add_backend_arguments` added."""
    return backend_spec(args.backend, model=args.model, base_urls=args.base_url, min_pixels=args.min_pixels,
                        max_pixels=args.max_pixels, image_resize=args.image_resize, box_format=args.box_format,
                        thinking=args.thinking, thinking_tokens=args.thinking_tokens,
                        extra=parse_key_values(args.backend_option))
