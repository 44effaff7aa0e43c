"""A tiny Qwen-VL that can learn on a CPU: `mmreason.tiny_models` with a wider, longer text model.

`mmreason.tiny_models.build_tiny_qwen_vl` writes a real-architecture checkpoint (tokenizer, chat
template, processor) with a 64-wide text model and 4096 positions. Training prompts carry the
tool schemas and the study (about 5000 tokens with that tokenizer), and TRL drops tool results
that reach the model's ``max_position_embeddings``, so this keeps everything of that checkpoint
and re-initialises the model from its config with more positions and, optionally, a wider text
model (the brief's "hidden 128, 2 layers").
"""

from __future__ import annotations

from pathlib import Path


def build_trainable_tiny(out_dir: str | Path, arch: str = "qwen2_5_vl", hidden_size: int = 64,
                         num_layers: int = 2, max_positions: int = 16384, seed: int = 0) -> Path:
    """Write a tiny checkpoint to ``out_dir`` and return it.

    Args:
        arch: ``qwen2_5_vl`` or ``qwen3_vl`` (see `mmreason.tiny_models.ARCHS`).
        hidden_size: text hidden size, a multiple of 16: attention heads stay 16 wide (the rotary
            sections of the tiny config assume it), so there are ``hidden_size / 16`` of them; the
            MLP is twice as wide and the vision tower projects into it.
        num_layers: text decoder layers.
        max_positions: ``max_position_embeddings`` of the text model (rotary, so no new weights).
        seed: seed of the random weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    from mmreason.tiny_models import build_tiny_qwen_vl

    if hidden_size % 16:
        raise ValueError(f"hidden_size must be a multiple of 16, got {hidden_size}")
    out = build_tiny_qwen_vl(out_dir, arch=arch, seed=seed)
    config = AutoConfig.from_pretrained(out)
    text = config.text_config
    text.max_position_embeddings = max_positions
    if hidden_size != text.hidden_size:
        text.hidden_size, text.intermediate_size = hidden_size, 2 * hidden_size
        text.num_attention_heads, text.head_dim = hidden_size // 16, 16
        config.vision_config.out_hidden_size = hidden_size
    text.num_hidden_layers = num_layers
    # the smoke-test checkpoints use a wide init (0.5) so random outputs vary; a model meant to learn
    # starts from the usual 0.02, or its first hundred steps only undo huge random logits
    text.initializer_range = config.vision_config.initializer_range = 0.02
    if getattr(text, "layer_types", None) is not None:
        text.layer_types = [text.layer_types[0]] * num_layers
    generation = GenerationConfig.from_pretrained(out)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = generation
    model.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m train.tiny",
                                     description="Write a tiny Qwen-VL that can be trained on a CPU (no download).")
    parser.add_argument("out_dir", type=Path, help="directory to write the checkpoint to")
    parser.add_argument("--arch", choices=("qwen2_5_vl", "qwen3_vl"), default="qwen2_5_vl")
    parser.add_argument("--hidden-size", type=int, default=128, help="text hidden size (default 128)")
    parser.add_argument("--layers", type=int, default=2, help="text decoder layers (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_trainable_tiny(args.out_dir, args.arch, args.hidden_size, args.layers, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
