"""Tiny checkpoints of the coordinator families beyond Qwen2.5-VL / Qwen3-VL, for offline tests.

Each is the real transformers architecture and processor class with a few hundred thousand
random parameters, and a chat template written here (not the published one) that behaves like
the family's own in the ways the ``hf`` backend must get right:

- ``gemma3`` (Gemma 3 / MedGemma): the template writes ``<bos>`` as text and the tokenizer also
  prepends ``<bos>`` by default; every text part is ``| trim``-med; the system prompt is folded
  into the first user turn; roles must alternate; no tools. ``Gemma3ImageProcessor`` resizes
  every image to a fixed 896x896 square (SigLIP), and the processor expands
  ``<start_of_image>`` to ``\\n\\n<start_of_image>`` + soft tokens + ``<end_of_image>\\n\\n``.
- ``internvl`` (InternVL3-hf): system and assistant turns are concatenated as strings
  (``'...' + message.content``), so list content crashes the template; ``role: tool`` turns are
  not rendered; images are ``<IMG_CONTEXT>``, which ``InternVLProcessor`` expands per 448 px tile
  (``GotOcr2ImageProcessor`` with ``crop_to_patches``: a tile grid plus a thumbnail). InternVL
  writes boxes in 0..1000 coordinates.
- ``qwen3_5`` (Qwen3.5): the template renders tools and teaches XML calls
  (``<tool_call><function=name><parameter=key>value</parameter></function></tool_call>``), and
  the generation prompt opens ``<think>`` unless ``enable_thinking=False``.
- ``lingshu`` (Lingshu, a Qwen2.5-VL fine-tune): the Qwen2.5-VL architecture with the Qwen2.5-VL
  style template, which renders no tools (the loop writes them into the system prompt).
"""

from __future__ import annotations

from pathlib import Path

from mmreason.tiny_models import (
    RENDER_MACRO,
    SPECIAL_TOKENS,
    TOOL_TURNS_AND_PROMPT,
    TinyModelError,
    build_tiny_qwen_vl,
    processor,
    train_bpe,
    train_tokenizer,
)

FAMILIES = ("gemma3", "internvl", "qwen3_5", "lingshu")

GEMMA3_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0].role == 'system' -%}
{%- set first_prefix = (messages[0].content if messages[0].content is string else messages[0].content[0].text) + '\n\n' -%}
{%- set turns = messages[1:] -%}
{%- else -%}
{%- set first_prefix = '' -%}
{%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
{%- if (message.role == 'user') != (loop.index0 % 2 == 0) -%}
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif -%}
{{ '<start_of_turn>' + ('model' if message.role == 'assistant' else message.role) + '\n' + (first_prefix if loop.first else '') }}
{%- if message.content is string -%}{{ message.content | trim }}
{%- else -%}{%- for part in message.content -%}
{%- if part.type == 'image' -%}{{ '<start_of_image>' }}
{%- elif part.type == 'text' -%}{{ part.text | trim }}
{%- endif -%}{%- endfor -%}{%- endif -%}
{{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"""

INTERNVL_TEMPLATE = r"""{%- if messages[0].role == 'system' -%}
{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- else -%}
{{- '<|im_start|>system\nYou are InternVL, a multimodal large language model.<|im_end|>\n' }}
{%- endif -%}
{%- for message in messages -%}
{%- if message.role == 'user' -%}
{{- '<|im_start|>user\n' }}
{%- if message.content is string -%}{{- message.content }}
{%- else -%}{%- for part in message.content -%}
{%- if part.type == 'image' -%}{{- '<IMG_CONTEXT>\n' }}
{%- elif part.type == 'text' -%}{{- part.text }}
{%- endif -%}{%- endfor -%}{%- endif -%}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'assistant' -%}
{{- '<|im_start|>assistant\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == 'system' and not loop.first -%}
{{- '<|im_start|>system\n' + message.content + '<|im_end|>\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' }}{%- endif -%}"""

QWEN3_5_TEMPLATE = RENDER_MACRO + r"""{%- if tools -%}
<|im_start|>system
# Tools

You have access to the following functions:

<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

If you choose to call a function ONLY reply in the following format with NO suffix:

<tool_call>
<function=example_function_name>
<parameter=example_parameter_1>
value_1
</parameter>
</function>
</tool_call>
{%- if messages[0].role == 'system' %}

{{ render(messages[0].content) }}
{%- endif %}<|im_end|>
{% elif messages[0].role == 'system' -%}
<|im_start|>system
{{ render(messages[0].content) }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'user' -%}
<|im_start|>user
{{ render(message.content) }}<|im_end|>
{% elif message.role == 'assistant' -%}
<|im_start|>assistant
{{ render(message.content) }}<|im_end|>
""" + TOOL_TURNS_AND_PROMPT + r"""{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>

{% else %}<think>
{% endif %}{%- endif -%}"""

LINGSHU_TEMPLATE = r"""{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif %}<|im_start|>{{ message['role'] }}
{% if message['content'] is string %}{{ message['content'] }}<|im_end|>
{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>
{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

GEMMA_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                        "<start_of_image>", "<end_of_image>", "<image_soft_token>")
#: Gemma 3's SigLIP input size; every image is resized to this square
GEMMA_IMAGE_SIZE = 896
#: soft tokens per image (a 4x4 pool of the tiny tower's 16x16 patches; 256 in the real model)
GEMMA_IMAGE_TOKENS = 16
INTERNVL_TILE = 448
INTERNVL_MAX_TILES = 4
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>")

_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=4096)


def _gemma_tokenizer():
    """Byte-level BPE whose post-processor prepends ``<bos>`` unless ``add_special_tokens=False``,
    as Gemma's tokenizer does; ``boi``/``eoi``/``image`` tokens named as ``Gemma3Processor`` reads them."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast


    bpe = train_bpe(GEMMA_SPECIAL_TOKENS)
    bos = bpe.token_to_id("<bos>")
    bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        padding_side="left",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>", "sot_token": "<start_of_turn>",
                              "eot_token": "<end_of_turn>"},
    )


def _build_gemma3(out: Path) -> None:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor
    from transformers import GenerationConfig

    tokenizer = _gemma_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GEMMA_SPECIAL_TOKENS}
    config = Gemma3Config(
        text_config={**_TEXT, "vocab_size": len(tokenizer), "head_dim": 16, "sliding_window": 64,
                     "bos_token_id": ids["<bos>"], "eos_token_id": ids["<eos>"], "pad_token_id": ids["<pad>"],
                     "initializer_range": 0.5},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=GEMMA_IMAGE_SIZE, patch_size=GEMMA_IMAGE_SIZE // 16),
        mm_tokens_per_image=GEMMA_IMAGE_TOKENS, boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"], image_token_index=ids["<image_soft_token>"],
        tie_word_embeddings=False,
    )
    model = Gemma3ForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<bos>"], eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]], pad_token_id=ids["<pad>"],
        do_sample=False)
    model.save_pretrained(out)
    image_processor = Gemma3ImageProcessor(size={"height": GEMMA_IMAGE_SIZE, "width": GEMMA_IMAGE_SIZE})
    Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=GEMMA3_TEMPLATE,
                    image_seq_length=GEMMA_IMAGE_TOKENS).save_pretrained(out)


def _build_internvl(out: Path) -> None:
    import torch
    from transformers import GenerationConfig, GotOcr2ImageProcessor, InternVLConfig
    from transformers import InternVLForConditionalGeneration, InternVLProcessor, InternVLVideoProcessor


    tokenizer = train_tokenizer(extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                                                      "context_image_token": "<IMG_CONTEXT>",
                                                      "video_token": "<video>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<IMG_CONTEXT>")}
    patch = INTERNVL_TILE // 16
    config = InternVLConfig(
        text_config={**_TEXT, "model_type": "qwen2", "vocab_size": len(tokenizer), "initializer_range": 0.5,
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
                     "tie_word_embeddings": False},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=[INTERNVL_TILE, INTERNVL_TILE], patch_size=[patch, patch]),
        image_token_id=ids["<IMG_CONTEXT>"], tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                               pad_token_id=ids["<|endoftext|>"], do_sample=False)
    model.save_pretrained(out)
    image_processor = GotOcr2ImageProcessor(size={"height": INTERNVL_TILE, "width": INTERNVL_TILE},
                                            crop_to_patches=True, min_patches=1, max_patches=INTERNVL_MAX_TILES,
                                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    # (448 / 28)^2 patches, pixel-shuffled by 0.5: 64 tokens per tile
    InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                      video_processor=InternVLVideoProcessor(), chat_template=INTERNVL_TEMPLATE,
                      image_seq_length=64).save_pretrained(out)


def _build_qwen3_5(out: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3_5Config, Qwen3_5ForConditionalGeneration


    tokenizer = train_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0,
            "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    config = Qwen3_5Config(
        text_config={**_TEXT, "vocab_size": len(tokenizer), "head_dim": 16, "initializer_range": 0.5,
                     "layer_types": ["linear_attention", "full_attention"], "linear_num_value_heads": 2,
                     "linear_num_key_heads": 2, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                     "rope_parameters": rope, "eos_token_id": ids["<|im_end|>"],
                     "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": False},
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=256,
                           deepstack_visual_indexes=[]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen3_5ForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                               pad_token_id=ids["<|endoftext|>"], do_sample=False)
    model.save_pretrained(out)
    processor("qwen3_vl", tokenizer, QWEN3_5_TEMPLATE).save_pretrained(out)


def build_tiny_family(out_dir: str | Path, family: str, seed: int = 0) -> Path:
    """Build and save a tiny random checkpoint of ``family`` (one of `FAMILIES`) in ``out_dir``."""
    import torch


    if family not in FAMILIES:
        raise TinyModelError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if family == "lingshu":
        return build_tiny_qwen_vl(out, "qwen2_5_vl", seed=seed, chat_template=LINGSHU_TEMPLATE)
    torch.manual_seed(seed)
    {"gemma3": _build_gemma3, "internvl": _build_internvl, "qwen3_5": _build_qwen3_5}[family](out)
    return out
