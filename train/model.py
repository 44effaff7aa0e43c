"""Loading the model and processor of a run, LoRA adapters, and saving the final checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imaging.errors import MMReasonError
from imaging.locate import ModelFrame, set_pixel_budget

from train.config import LoraSection, ModelConfig


class ModelLoadError(MMReasonError):
    """The model or processor of a run cannot be loaded."""


def _torch_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def load_processor(model: ModelConfig) -> Any:
    """``AutoProcessor`` of the checkpoint with the configured Qwen-VL pixel budget."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model.name_or_path, trust_remote_code=model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the processor of {model.name_or_path!r}: {exc}. Give a checkpoint "
                             f"directory or a hub id (offline runs need a local or cached checkpoint)") from None
    if model.min_pixels is not None or model.max_pixels is not None:
        if set_pixel_budget(getattr(processor, "image_processor", None), model.min_pixels, model.max_pixels) is None:
            raise ModelLoadError(f"model.min_pixels/max_pixels apply to Qwen-VL processors, not "
                                 f"{type(processor).__name__}; remove them")
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def relative_boxes(model: ModelConfig) -> bool:
    """Whether the model writes boxes in relative 0..1000 coordinates (``model.box_format``)."""
    from transformers import AutoConfig

    from mmreason.backends.base import uses_relative_boxes

    if model.box_format != "auto":
        return uses_relative_boxes(model.box_format, None)
    try:
        config = AutoConfig.from_pretrained(model.name_or_path, trust_remote_code=model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the config of {model.name_or_path!r}: {exc}") from None
    return uses_relative_boxes("auto", getattr(config, "model_type", None))


def model_frame(model: ModelConfig, processor: Any) -> ModelFrame:
    """The frame the model of a run sees its images in and writes its boxes in (the one
    `HFBackend.model_image_size` reads from the same checkpoint)."""
    return ModelFrame.from_processor(processor, relative_boxes(model))


def load_model(model: ModelConfig) -> Any:
    """The image-text-to-text model of the checkpoint, in the configured dtype."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(model.dtype), "trust_remote_code": model.trust_remote_code}
    if model.attn_implementation:
        kwargs["attn_implementation"] = model.attn_implementation
    try:
        return AutoModelForImageTextToText.from_pretrained(model.name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {model.name_or_path!r} as an image-text-to-text model: {exc}") from None


def peft_config(lora: LoraSection) -> Any:
    """A peft ``LoraConfig`` when LoRA is enabled, else None (full fine-tuning)."""
    if not lora.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ModelLoadError("LoRA needs peft: pip install 'mmreason[train]'") from None
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


def save_final(model: Any, processor: Any, out_dir: Path, merge_lora: bool = True) -> Path:
    """Save the trained model and its processor to ``out_dir`` as a plain ``from_pretrained``
    checkpoint (LoRA adapters merged when ``merge_lora``; otherwise the adapters alone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
