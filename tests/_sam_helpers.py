"""A tiny SAM (a few hundred thousand parameters) saved as a real checkpoint file for tests."""

from __future__ import annotations

from pathlib import Path

#: the tiny architecture: 64-pixel images, one global-attention block, 32-channel embeddings
TINY_SAM = {
    "encoder_embed_dim": 32,
    "encoder_depth": 1,
    "encoder_num_heads": 1,
    "encoder_global_attn_indexes": (0,),
    "image_size": 64,
    "patch_size": 16,
    "window_size": 0,
    "prompt_embed_dim": 32,
    "mask_in_chans": 8,
    "decoder_depth": 1,
    "decoder_mlp_dim": 64,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 32,
}


def save_tiny_sam(path: Path, seed: int = 0) -> Path:
    """Build the tiny SAM with seeded random weights and ``torch.save`` its state dict to ``path``."""
    import torch

    from grounding.segmenters.sam import SamConfig, build_sam

    torch.manual_seed(seed)
    model = build_sam(SamConfig.from_dict(TINY_SAM))
    torch.save(model.state_dict(), path)
    return path
