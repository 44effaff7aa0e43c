"""Model backends behind one interface (``Backend``): ``hf``, ``openai`` and ``rules``.

    backend = get_backend("hf", model="Qwen/Qwen2.5-VL-3B-Instruct", max_pixels=1280 * 28 * 28)
    backend = get_backend("openai", model="Qwen/Qwen2.5-VL-7B-Instruct", base_url="http://localhost:8000/v1")
    texts = backend.generate([conversation], tools=tool_schemas, max_new_tokens=256)

Backends are imported lazily, so ``import mmreason.backends`` costs nothing and ``rules`` needs
neither torch models nor a server.
"""

from __future__ import annotations

import inspect

from mmreason.backends.base import (
    DEFAULT_STOP,
    Backend,
    BackendError,
    Generation,
    GenerationConfig,
    cut_at_stop,
)

BACKENDS = ("hf", "openai", "rules")


def get_backend(name: str, **options) -> Backend:
    """Build a backend by name.

    Args:
        name: ``"hf"`` (options of ``HFBackend``: model, device, dtype, min_pixels, max_pixels,
            batch_size, ...), ``"openai"`` (options of ``OpenAIBackend``: model, base_url,
            api_key_env, timeout, max_retries, concurrency, ...) or ``"rules"``.
        **options: passed to the backend's constructor; unknown ones raise ``BackendError``.
    """
    if name == "hf":
        from mmreason.backends.hf import HFBackend as cls
    elif name == "openai":
        from mmreason.backends.openai_compat import OpenAIBackend as cls
    elif name == "rules":
        from mmreason.backends.rules import RulesBackend as cls
    else:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as error:
        raise BackendError(f"bad options for the {name} backend: {error}") from error
    return cls(**options)


__all__ = [
    "BACKENDS",
    "DEFAULT_STOP",
    "Backend",
    "BackendError",
    "Generation",
    "GenerationConfig",
    "cut_at_stop",
    "get_backend",
]
