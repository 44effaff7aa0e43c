"""SAM and MedSAM through ``segment-anything``: a prompt on one slice -> a mask on that slice.

Checkpoints are plain PyTorch state dicts (the official ``sam_vit_b_01ec64.pth`` ...,
``medsam_vit_b.pth``; a ``{"model": state_dict}`` wrapper and ``module.`` prefixes are accepted).
Every checkpoint, real or tiny, goes through `load_sam`: read the state dict on the CPU, pick the
architecture (``model_type`` vit_b / vit_l / vit_h as in ``segment_anything.sam_model_registry``,
an explicit ``config``, or inferred from the tensor shapes), build the model with the same
modules the registry uses, and ``load_state_dict(strict=True)``. Reading with ``map_location``
keeps GPU-saved checkpoints loadable on CPU-only machines, which the registry's builder does not.

The slice shown to the model is the prompted slice resampled to square pixels at its finer
in-plane spacing (a coronal slice of 5 mm CT would otherwise reach SAM squashed several times;
the mask comes back to the voxel grid by area averaging), rows flipped on coronal and sagittal
slices so that superior is up, windowed to uint8 RGB: CT with the
lung window for lung/airway/nodule targets, bone for bone, soft tissue otherwise; other
modalities with the percentile window of `imaging.windowing`. SAM runs through ``SamPredictor``
(the best of three masks for a lone point); MedSAM follows its published inference: resize to the
encoder size, min-max to [0, 1], box scaled to that size, sigmoid of the low-resolution logits
upsampled bilinearly, threshold 0.5. The returned mask lies on the prompted slice, inside the
prompt box when one is given.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from grounding.segmenters.base import TARGETS, Prompt, SegmentationError, normalize_target, resolve_target
from imaging.volume import Volume
from imaging.windowing import CT_PRESETS, apply_window, resolve_window

INSTALL_HINT = "pip install 'mmreason[sam]'"
#: targets rendered with the lung window on CT
LUNG_WINDOW_TARGETS = ("lungs", "lung_left", "lung_right", "airways", "nodule")
#: heads of the mask decoder's transformer: not recoverable from weights; 8 in SAM and MedSAM
DECODER_NUM_HEADS = 8


@dataclass(frozen=True)
class SamConfig:
    """Architecture of a SAM model (defaults: ViT-B, as in ``segment_anything.build_sam``).

    Real checkpoints are ViT-B/L/H (`SAM_CONFIGS`); tiny test models set small sizes.
    """

    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    use_rel_pos: bool = True
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = DECODER_NUM_HEADS
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SamConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SegmentationError(f"unknown SAM config keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "encoder_global_attn_indexes" in d:
            d["encoder_global_attn_indexes"] = tuple(d["encoder_global_attn_indexes"])
        return cls(**d)


SAM_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(),
    "vit_l": SamConfig(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                       encoder_global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamConfig(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                       encoder_global_attn_indexes=(7, 15, 23, 31)),
}


def _require_segment_anything() -> None:
    missing = [m for m in ("torch", "segment_anything") if importlib.util.find_spec(m) is None]
    if missing:
        raise SegmentationError(f"SAM/MedSAM needs {' and '.join(missing)}: {INSTALL_HINT}")


def build_sam(config: SamConfig):
    """A ``segment_anything.modeling.Sam`` with the architecture of ``config`` (random weights)."""
    _require_segment_anything()
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = config.image_size // config.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=config.encoder_depth,
            embed_dim=config.encoder_embed_dim,
            img_size=config.image_size,
            mlp_ratio=config.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.encoder_num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=config.use_rel_pos,
            global_attn_indexes=config.encoder_global_attn_indexes,
            window_size=config.window_size,
            out_chans=config.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=config.prompt_embed_dim,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def _count(state: dict[str, Any], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(found) + 1 if found else 0


def infer_config(state: dict[str, Any]) -> SamConfig:
    """The architecture of a SAM state dict, read from its tensor shapes.

    Everything but the mask decoder's head count is recoverable; that is `DECODER_NUM_HEADS`
    (as in every published SAM and MedSAM checkpoint).

    Raises:
        SegmentationError: the state dict is not a SAM model.
    """
    try:
        embed, _, patch, _ = state["image_encoder.patch_embed.proj.weight"].shape
        grid = state["image_encoder.pos_embed"].shape[1]
        depth = _count(state, "image_encoder.blocks.")
        hidden = state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
        use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in state
        global_idx, window, heads = [], 0, None
        for i in range(depth):
            key = f"image_encoder.blocks.{i}.attn.rel_pos_h"
            if not use_rel_pos:
                break
            size, head_dim = state[key].shape
            heads = embed // head_dim
            span = (size + 1) // 2
            if span == grid:
                global_idx.append(i)
            else:
                window = span
        return SamConfig(
            encoder_embed_dim=embed,
            encoder_depth=depth,
            encoder_num_heads=heads or SAM_CONFIGS["vit_b"].encoder_num_heads,
            encoder_global_attn_indexes=tuple(global_idx),
            image_size=grid * patch,
            patch_size=patch,
            window_size=window,
            mlp_ratio=hidden / embed,
            use_rel_pos=use_rel_pos,
            prompt_embed_dim=state["image_encoder.neck.0.weight"].shape[0],
            mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
            decoder_depth=_count(state, "mask_decoder.transformer.layers."),
            decoder_mlp_dim=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
            iou_head_depth=_count(state, "mask_decoder.iou_prediction_head.layers."),
            iou_head_hidden_dim=state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
            num_multimask_outputs=state["mask_decoder.mask_tokens.weight"].shape[0] - 1,
        )
    except (KeyError, IndexError, ValueError) as err:
        raise SegmentationError(
            f"the checkpoint does not look like a SAM/MedSAM model (missing or odd tensor: {err}); "
            "pass model_type='vit_b'|'vit_l'|'vit_h' or a config"
        ) from err


def read_state_dict(checkpoint: str | Path) -> dict[str, Any]:
    """A SAM state dict from a ``.pth`` file (CPU tensors; wrappers and ``module.`` removed)."""
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        raise SegmentationError(f"SAM checkpoint not found: {path}; pass the path of a .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable or unsafe pickles
        raise SegmentationError(f"cannot read SAM checkpoint {path}: {err}") from err
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SegmentationError(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_sam(
    checkpoint: str | Path,
    model_type: str | None = None,
    config: SamConfig | dict[str, Any] | None = None,
    device: str = "cpu",
):
    """Build a SAM model and load ``checkpoint`` into it (see the module docstring).

    Args:
        checkpoint: path of the state dict.
        model_type: ``vit_b``, ``vit_l`` or ``vit_h``; default: inferred from the weights.
        config: an explicit architecture (`SamConfig` or its dict), overriding ``model_type``.
        device: torch device.

    Raises:
        SegmentationError: missing package or file, or weights that do not fit the architecture.
    """
    _require_segment_anything()
    state = read_state_dict(checkpoint)
    if config is not None:
        cfg = config if isinstance(config, SamConfig) else SamConfig.from_dict(config)
    elif model_type is not None:
        if model_type not in SAM_CONFIGS:
            raise SegmentationError(f"unknown SAM model_type '{model_type}'; choose one of {', '.join(SAM_CONFIGS)}")
        cfg = SAM_CONFIGS[model_type]
    else:
        cfg = infer_config(state)
    sam = build_sam(cfg)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise SegmentationError(
            f"the weights in {checkpoint} do not fit the {model_type or 'inferred'} SAM architecture ({first}); "
            "check model_type (vit_b, vit_l, vit_h) or pass a config"
        ) from err
    return sam.to(device).eval()


@dataclass(frozen=True)
class SliceImage:
    """One prompted slice as the model sees it, and the way back to voxels.

    ``scale`` is (rows, columns) image pixels per voxel, ``voxel_shape`` the slice's voxel grid.
    """

    axis: int
    index: int
    rgb: np.ndarray  # (H, W, 3) uint8
    flip_rows: bool
    scale: tuple[float, float] = (1.0, 1.0)
    voxel_shape: tuple[int, int] = (0, 0)

    def to_pixel(self, row: float, col: float) -> tuple[float, float]:
        """Voxel (row, column) of the slice, at the voxel's centre -> image (x, y) pixel centre."""
        sr, sc = self.scale
        y = (row + 0.5) * sr - 0.5
        return (col + 0.5) * sc - 0.5, (self.rgb.shape[0] - 1 - y) if self.flip_rows else y

    def box_to_pixels(self, rows: slice, cols: slice) -> np.ndarray:
        """A voxel box of the slice -> the image box [x0, y0, x1, y1] covering its voxels."""
        sr, sc = self.scale
        x0, x1 = cols.start * sc, cols.stop * sc - 1
        y0, y1 = rows.start * sr, rows.stop * sr - 1
        if self.flip_rows:
            height = self.rgb.shape[0]
            y0, y1 = height - 1 - y1, height - 1 - y0
        return np.array([x0, y0, x1, y1], dtype=np.float64)

    def to_slab(self, mask2d: np.ndarray) -> np.ndarray:
        """An image mask -> the voxel slab of this slice (as indexed by ``take(axis)``)."""
        mask = mask2d[::-1] if self.flip_rows else mask2d
        if mask.shape != self.voxel_shape and all(self.voxel_shape):
            from skimage.transform import resize

            mask = resize(mask.astype(np.float32), self.voxel_shape, order=1, anti_aliasing=True) >= 0.5
        return mask


def _slice_axis(prompt: Prompt, shape: tuple[int, int, int]) -> int:
    if prompt.plane_axis is not None:
        if prompt.plane_axis not in (0, 1, 2):
            raise SegmentationError(f"plane_axis must be 0, 1 or 2, got {prompt.plane_axis}")
        return prompt.plane_axis
    if prompt.box_zyx is not None:
        thin = [axis for axis, s in enumerate(prompt.region(shape)) if s.stop - s.start == 1]
        if thin:
            return thin[0]
    return 0


def render_slice(volume: Volume, axis: int, index: int, target: str | None) -> SliceImage:
    """Window one slice to uint8 RGB with square pixels (see the module docstring)."""
    plane = np.take(volume.data, index, axis=axis)
    voxel_shape = plane.shape
    row_mm, col_mm = (volume.spacing[a] for a in range(3) if a != axis)
    fine = min(row_mm, col_mm)
    shape = (max(1, round(plane.shape[0] * row_mm / fine)), max(1, round(plane.shape[1] * col_mm / fine)))
    if shape != plane.shape:
        from skimage.transform import resize

        plane = resize(plane, shape, order=1, preserve_range=True, anti_aliasing=False)
    scale = (shape[0] / voxel_shape[0], shape[1] / voxel_shape[1])
    flip = axis != 0
    if flip:
        plane = plane[::-1]
    if volume.modality == "CT":
        name = normalize_target(target) if target else ""
        window = CT_PRESETS["lung" if name in LUNG_WINDOW_TARGETS else "bone" if name == "bone" else "soft_tissue"]
    else:
        window = resolve_window("auto", volume.modality, plane)
    gray = apply_window(plane, window)
    return SliceImage(axis=axis, index=index, rgb=np.repeat(gray[..., None], 3, axis=2), flip_rows=flip,
                      scale=scale, voxel_shape=voxel_shape)


class SamSegmenter:
    """Segment what a box or point prompt shows on one slice, with SAM or MedSAM.

    Args:
        checkpoint: path of the SAM / MedSAM state dict.
        model_type: ``vit_b`` / ``vit_l`` / ``vit_h``; default inferred from the weights.
        medsam: use MedSAM's pre/post-processing; default: the file name contains "medsam".
        device: torch device (default ``cpu``).
        config: explicit architecture (`SamConfig` or dict), e.g. for tiny test models.

    ``target`` only chooses the CT window; a prompt (box and/or point) is required.
    """

    targets: tuple[str, ...] = tuple(TARGETS)

    def __init__(
        self,
        checkpoint: str | Path,
        model_type: str | None = None,
        medsam: bool | None = None,
        device: str = "cpu",
        config: SamConfig | dict[str, Any] | None = None,
    ) -> None:
        self.checkpoint = Path(checkpoint)
        self.medsam = "medsam" in self.checkpoint.name.lower() if medsam is None else bool(medsam)
        self.name = "medsam" if self.medsam else "sam"
        self.device = device
        self.model = load_sam(checkpoint, model_type=model_type, config=config, device=device)
        self._predictor = None
        self._image_key: tuple | None = None
        self._embedding = None

    def segment(self, volume: Volume, target: str | None = None, prompt: Prompt | None = None) -> np.ndarray:
        """A boolean mask of ``volume.shape``, non-zero only on the prompted slice.

        Raises:
            SegmentationError: no prompt, or a prompt outside the volume.
        """
        if target is not None:
            resolve_target(target, self.targets)
        if prompt is None or (prompt.box_zyx is None and prompt.point_zyx is None):
            raise SegmentationError(
                f"the {self.name} segmenter segments what a prompt shows: give a box or a point "
                "(or use the classical segmenter for named targets)"
            )
        shape = volume.shape
        region = prompt.region(shape)
        point = prompt.point_index(shape)
        axis = _slice_axis(prompt, shape)
        if region is not None and (point is None or region[axis].stop - region[axis].start == 1):
            index = (region[axis].start + region[axis].stop - 1) // 2
        else:
            index = point[axis]  # type: ignore[index]
        image = render_slice(volume, axis, index, target)
        in_plane = [a for a in range(3) if a != axis]  # (row axis, column axis) of the slice
        box = None
        if region is not None:
            box = image.box_to_pixels(region[in_plane[0]], region[in_plane[1]])
        coords = labels = None
        if point is not None:
            coords = np.array([image.to_pixel(point[in_plane[0]], point[in_plane[1]])], dtype=np.float64)
            labels = np.ones(1, dtype=np.int64)
        mask2d = self._predict_medsam(image, box, coords, labels) if self.medsam else self._predict_sam(
            image, box, coords, labels
        )
        out = np.zeros(shape, dtype=bool)
        slab = [slice(None)] * 3
        slab[axis] = slice(index, index + 1)
        out[tuple(slab)] = np.expand_dims(image.to_slab(mask2d), axis)
        if region is not None:
            clipped = np.zeros(shape, dtype=bool)
            clipped[region] = out[region]
            out = clipped
        return out

    def _key(self, image: SliceImage) -> tuple:
        return (image.axis, image.index, image.rgb.shape, hash(image.rgb.tobytes()))

    def _predict_sam(self, image: SliceImage, box, coords, labels) -> np.ndarray:
        from segment_anything import SamPredictor

        if self._predictor is None:
            self._predictor = SamPredictor(self.model)
        key = self._key(image)
        if self._image_key != key:
            self._predictor.set_image(image.rgb)
            self._image_key = key
        masks, scores, _ = self._predictor.predict(
            point_coords=coords, point_labels=labels, box=box, multimask_output=box is None
        )
        return np.asarray(masks[int(np.argmax(scores))], dtype=bool)

    def _predict_medsam(self, image: SliceImage, box, coords, labels) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from skimage.transform import resize

        size = self.model.image_encoder.img_size
        height, width = image.rgb.shape[:2]
        key = self._key(image)
        if self._image_key != key:
            resized = resize(image.rgb, (size, size), order=3, preserve_range=True, anti_aliasing=True)
            lo, hi = float(resized.min()), float(resized.max())
            norm = (resized - lo) / max(hi - lo, 1e-8)
            tensor = torch.as_tensor(norm, dtype=torch.float32).permute(2, 0, 1)[None].to(self.device)
            with torch.no_grad():
                self._embedding = self.model.image_encoder(tensor)
            self._image_key = key
        scale = np.array([size / width, size / height] * 2)
        with torch.no_grad():
            boxes = None
            if box is not None:
                boxes = torch.as_tensor(box * scale, dtype=torch.float32, device=self.device)[None, None]
            points = None
            if coords is not None:
                points = (
                    torch.as_tensor(coords * scale[:2], dtype=torch.float32, device=self.device)[None],
                    torch.as_tensor(labels, dtype=torch.int64, device=self.device)[None],
                )
            sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=None)
            logits, _ = self.model.mask_decoder(
                image_embeddings=self._embedding,
                image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            prob = F.interpolate(torch.sigmoid(logits), size=(height, width), mode="bilinear", align_corners=False)
        return prob[0, 0].cpu().numpy() > 0.5
