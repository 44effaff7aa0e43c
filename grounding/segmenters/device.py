"""Where model segmenters run: the device, half precision, and a clear error when memory runs out.

``device="auto"`` (the default of every model adapter) is the first CUDA GPU when torch sees one,
else the CPU. Half precision (``torch.autocast`` to float16) is used on a GPU only: CPU kernels
for float16 3-D convolutions are slow or missing. `out_of_memory_hint` turns the allocator's
failure into a `SegmentationError` that says what to lower.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from grounding.segmenters.base import SegmentationError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``gpu`` is read as ``cuda``.

    Raises:
        SegmentationError: an unknown device, or ``cuda`` asked for on a machine without one.
    """
    import torch

    name = (device or "auto").strip().lower()
    name = "cuda" if name == "gpu" else name
    base = name.split(":")[0]
    if base not in DEVICES:
        raise SegmentationError(f"unknown device '{device}'; choose one of {', '.join(DEVICES)} (or cuda:N)")
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise SegmentationError("device cuda was asked for but torch sees no GPU; use --device cpu (or auto)")
    return name


def autocast(device: str, half: bool = True) -> contextlib.AbstractContextManager:
    """float16 autocast on a CUDA device when ``half``, a no-op context otherwise."""
    import torch

    if half and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "defaultcpuallocator" in text)


@contextlib.contextmanager
def out_of_memory_hint(what: str, shape: tuple[int, ...], device: str, advice: str) -> Iterator[None]:
    """Re-raise an out-of-memory failure inside the block as a `SegmentationError` with ``advice``.

    Args:
        what: the model, e.g. ``"the MONAI bundle wholeBody_ct_segmentation"``.
        shape: the volume's (z, y, x) shape, quoted in the message.
        device: where it ran.
        advice: what the user can lower (batch, overlap, device, a faster model).
    """
    try:
        yield
    except Exception as err:
        if not _is_oom(err):
            raise
        with contextlib.suppress(Exception):
            import torch

            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        raise SegmentationError(
            f"the volume of shape {tuple(shape)} (z, y, x) does not fit in {device} memory for {what}; {advice}"
        ) from err
