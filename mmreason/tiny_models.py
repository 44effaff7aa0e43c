"""Tiny, randomly initialised Qwen-VL checkpoints for smoke tests without downloading weights.

A tiny model has the real architecture (Qwen2.5-VL or Qwen3-VL), a real byte-level BPE tokenizer
trained here on a few sentences, the Qwen special tokens, a Hermes/Qwen-style chat template that
renders tools, and the real image processor with the real patch geometry (28 px resize factor for
Qwen2.5-VL, 32 px for Qwen3-VL). It is written with ``save_pretrained`` and loads back through
``from_pretrained`` exactly as a hub checkpoint does, so it exercises the whole ``hf`` backend
code path. Its outputs are random text: use it to check plumbing, never answer quality.

    python -m mmreason.tiny_models /tmp/tiny-qwen3 --arch qwen3_vl
    mmreason infer --backend hf --model /tmp/tiny-qwen3 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imaging.errors import MMReasonError

ARCHS = ("qwen2_5_vl", "qwen3_vl")


class TinyModelError(MMReasonError, ValueError):
    """A tiny checkpoint cannot be built as asked (unknown arch)."""


# The Qwen special tokens in their published order; ids follow the trained vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen marks these as added but not special, so they survive skip_special_tokens decoding.
MARKUP_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)

_CORPUS = (
    "The axial CT slice shows the right lung and the left lung separated by the mediastinum.",
    "A nodule of 12 mm is seen in the right upper lobe; its mean density is -35 HU.",
    "The liver, spleen, kidneys and aorta are within normal limits on this MRI.",
    "Chest X-ray: no pneumothorax, no pleural effusion, the heart size is normal.",
    '{"name": "view", "arguments": {"plane": "axial", "index": 42, "window": "lung"}}',
    '{"name": "crop", "arguments": {"evidence": "E1", "box": [120, 88, 240, 196]}}',
    '{"name": "segment", "arguments": {"target": "left_lung"}}',
    '{"name": "measure", "arguments": {"evidence": "E3", "quantity": "volume"}}',
    "Answer: the lesion is in the left lower lobe, 23.5 mm in diameter, volume 4.1 mL.",
    "0 1 2 3 4 5 6 7 8 9 10 25 50 100 256 512 1024 mm cm mL HU",
    "Is there a fracture? yes no. Which side? left right. What organ is abnormal?",
)

#: the Qwen-style ``render(content)`` macro: text parts as text, images (anywhere, tool results
#: included) as ``<|vision_start|><|image_pad|><|vision_end|>``
RENDER_MACRO = r"""{%- macro render(content) -%}
{%- if content is string -%}{{ content }}
{%- else -%}{%- for part in content -%}
{%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}<|vision_start|><|image_pad|><|vision_end|>
{%- elif part.type == 'video' or 'video' in part -%}<|vision_start|><|video_pad|><|vision_end|>
{%- elif 'text' in part -%}{{ part.text }}
{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
"""
#: tool results as ``<tool_response>`` blocks of one user turn (consecutive ones share it), then
#: the opening of the generation prompt
TOOL_TURNS_AND_PROMPT = r"""{% elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}<|im_start|>user{%- endif -%}
{{ '\n<tool_response>\n' }}{{ render(message.content) }}{{ '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}<|im_end|>{{ '\n' }}{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
"""

# Hermes/Qwen tool format. Consecutive tool messages share one user turn, as in Qwen2.5/Qwen3;
# images anywhere (including in tool results) become <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = RENDER_MACRO + r"""{%- if tools -%}
<|im_start|>system
{% if messages[0].role == 'system' %}{{ render(messages[0].content) }}

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' -%}
<|im_start|>system
{{ render(messages[0].content) }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- if not loop.first -%}<|im_start|>system
{{ render(message.content) }}<|im_end|>
{% endif -%}
{%- elif message.role == 'user' -%}
<|im_start|>user
{{ render(message.content) }}<|im_end|>
{% elif message.role == 'assistant' -%}
<|im_start|>assistant
{{ render(message.content) if message.content is not none }}
{%- for call in message.tool_calls or [] -%}
{%- set fn = call.function if call.function is defined else call -%}
{%- if not loop.first or message.content %}
{% endif -%}
<tool_call>
{"name": "{{ fn.name }}", "arguments": {{ fn.arguments if fn.arguments is string else fn.arguments | tojson }}}
</tool_call>
{%- endfor -%}
<|im_end|>
""" + TOOL_TURNS_AND_PROMPT + r"""{% endif -%}"""

# Per-architecture geometry kept from the real models so image resizing matches them exactly.
_PATCH = {"qwen2_5_vl": 14, "qwen3_vl": 16}
_MERGE = 2
# Small pixel budget: between 4 and 64 merged tokens per image.
_MIN_TOKENS, _MAX_TOKENS = 4, 64


def _prompt_corpus() -> list[str]:
    """The loop's own fixed prompt text: instructions, tool schemas and the format reminder.

    Trained on, so a tiny model spends about as many tokens on a prompt as a real Qwen tokenizer
    (3-4 characters per token) rather than nearly one per byte: long prompts would otherwise
    make attention, not batching or tools, dominate every figure measured with it.
    """
    from grounding.tools import default_registry
    from mmreason.prompts import FORMAT_REMINDER, INSTRUCTIONS, render_tools

    return [INSTRUCTIONS, render_tools(default_registry().specs()), FORMAT_REMINDER]


def train_bpe(special_tokens: tuple[str, ...] | list[str], vocab_size: int = 2048):
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on the tiny corpus and the prompt text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    bpe.train_from_iterator((list(_CORPUS) + _prompt_corpus()) * 4, trainer=trainer)
    return bpe


def train_tokenizer(vocab_size: int = 2048, extra_special_tokens: dict[str, str] | None = None):
    """A byte-level BPE trained on the tiny corpus and the prompt text, as the real ``Qwen2Tokenizer``.

    ``extra_special_tokens`` (name -> token, e.g. InternVL's ``context_image_token``) are added as
    special tokens and exposed as attributes, as the family's processor reads them.
    """
    from transformers import Qwen2Tokenizer

    spec = json.loads(train_bpe(["<|endoftext|>"], vocab_size).to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=spec["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        extra_special_tokens=extra_special_tokens or {},
    )
    extra = [t for t in (extra_special_tokens or {}).values() if t not in SPECIAL_TOKENS]
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS) + extra})
    tokenizer.add_tokens(list(MARKUP_TOKENS), special_tokens=False)
    tokenizer.padding_side = "left"
    return tokenizer


def _model_config(arch: str, vocab_size: int, token_ids: dict[str, int]):
    """A few hundred thousand parameters: hidden 64, 2 text layers, a 1-block vision tower."""
    ids = dict(
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
    )
    text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
        # Untied, wider-initialised weights: a tied random model only repeats its last input
        # token, which would make every test output a run of one character.
        tie_word_embeddings=False,
        initializer_range=0.5,
    )
    # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width).
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=_PATCH[arch],
        spatial_merge_size=_MERGE,
        temporal_patch_size=2,
        out_hidden_size=text["hidden_size"],
    )
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as config_class

        vision.update(fullatt_block_indexes=[0], window_size=112)
    else:
        from transformers import Qwen3VLConfig as config_class

        vision.update(deepstack_visual_indexes=[0], num_position_embeddings=256)
        rope["mrope_interleaved"] = True
        text["head_dim"] = 16
    return config_class(
        text_config={**text, "rope_parameters": rope},
        vision_config=vision,
        tie_word_embeddings=False,
        **ids,
    )


def processor(arch: str, tokenizer, chat_template: str = CHAT_TEMPLATE):
    """The real Qwen-VL processor of ``arch`` with the tiny pixel budget and ``chat_template``."""
    from transformers import Qwen2VLImageProcessor

    factor = _PATCH[arch] * _MERGE
    pixels = {"min_pixels": _MIN_TOKENS * factor**2, "max_pixels": _MAX_TOKENS * factor**2}
    image_processor = Qwen2VLImageProcessor(
        patch_size=_PATCH[arch], merge_size=_MERGE, temporal_patch_size=2, **pixels
    )
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor as processor_class
        from transformers import Qwen2VLVideoProcessor

        video = Qwen2VLVideoProcessor(patch_size=_PATCH[arch], merge_size=_MERGE, **pixels)
    else:
        from transformers import Qwen3VLProcessor as processor_class
        from transformers import Qwen3VLVideoProcessor

        video = Qwen3VLVideoProcessor(patch_size=_PATCH[arch], merge_size=_MERGE)
    return processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video,
        chat_template=chat_template,
    )


def build_tiny_qwen_vl(out_dir: str | Path, arch: str = "qwen2_5_vl", seed: int = 0,
                       chat_template: str = CHAT_TEMPLATE) -> Path:
    """Build and save a tiny random Qwen-VL checkpoint.

    Args:
        out_dir: directory to write (created; existing files are overwritten).
        arch: ``"qwen2_5_vl"`` (patch 14, merge 2: 28 px factor) or ``"qwen3_vl"`` (patch 16,
            merge 2: 32 px factor).
        seed: seed for the random weights; the same seed gives the same checkpoint.
        chat_template: the template saved with the processor (the Hermes/Qwen one by default).

    Returns:
        ``out_dir`` as a ``Path``; load it with ``get_backend("hf", model=str(out_dir))``.
    """
    if arch not in ARCHS:
        raise TinyModelError(f"unknown tiny arch {arch!r}; choose one of {', '.join(ARCHS)}")
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = _model_config(arch, len(tokenizer), token_ids)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids["<|im_end|>"], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out)
    processor(arch, tokenizer, chat_template).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmreason.tiny_models",
        description="Write a tiny random Qwen-VL checkpoint for smoke tests (no download).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the checkpoint to")
    from mmreason.tiny_families import FAMILIES, build_tiny_family

    parser.add_argument("--arch", choices=ARCHS + FAMILIES, default="qwen2_5_vl",
                        help="architecture; gemma3, internvl, qwen3_5 and lingshu: see mmreason.tiny_families")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    if args.arch in FAMILIES:
        path = build_tiny_family(args.out_dir, args.arch, seed=args.seed)
    else:
        path = build_tiny_qwen_vl(args.out_dir, arch=args.arch, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
