"""Model backends behind one interface (``Backend``): ``hf``, ``openai`` and ``rules``.

    backend = get_backend("hf", model="Qwen/Qwen2.5-VL-3B-Instruct", max_pixels=1280 * 28 * 28)
    backend = get_backend("openai", model="Qwen/Qwen2.5-VL-7B-Instruct", base_url="http://localhost:8000/v1")
    texts = backend.generate([conversation], tools=tool_schemas, max_new_tokens=256)

Backends are imported lazily, so ``import mmreason.backends`` costs nothing and ``rules`` needs
neither torch models nor a server.
"""

from __future__ import annotations

import importlib
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
            api_key_env, timeout, max_retries, concurrency, ...), ``"rules"``, or ``"module:attr"``:
            an importable callable returning an object with the `Backend` interface (custom and
            test backends plug in this way), called with ``options``.
        **options: passed to the backend's constructor; unknown ones raise ``BackendError``.
    """
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"cannot import backend '{name}' ({exc}); "
                               f"give module:attr of an importable callable") from None
        return factory(**options)
    if name == "hf":
        from mmreason.backends.hf import HFBackend as cls
    elif name == "openai":
        from mmreason.backends.openai_compat import OpenAIBackend as cls
    elif name == "rules":
        from mmreason.backends.rules import RulesBackend as cls
    else:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} or module:attr")
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
