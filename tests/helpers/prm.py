"""A tiny process reward model built locally: Qwen2 token classifier with 2 labels, a byte-level
BPE tokenizer trained on a few sentences and the ``<extra_0>`` step separator as a special token."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForTokenClassification

SEPARATOR = "<extra_0>"
_CORPUS = [
    "The nodule measures 12.3 mm in the right lung.",
    "Segment the left lung and measure the volume in mL.",
    "Tool call crop view V1 box [10, 20, 90, 120] evidence E2.",
    "Answer: yes, the lesion grew from 4.1 mL to 5.0 mL.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
]
#: a minimal Qwen-style chat template (system, user, assistant turns)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


def build_tiny_prm(directory: Path, seed: int = 0, chat_template: bool = True) -> Path:
    """Save a tiny PRM checkpoint (model + tokenizer) to ``directory`` and return it."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", SEPARATOR]
    tok.train_from_iterator(_CORPUS * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>", "<|im_end|>", SEPARATOR])
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, num_labels=2,
                         pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForTokenClassification(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
