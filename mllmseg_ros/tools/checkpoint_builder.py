"""Writing checkpoints in the official layout: config.json, model.safetensors and a tokenizer.

Used for small models built here (the demo, tests, training output). Folders written this way load with
``MLLMSegModel.from_pretrained`` / ``Segmenter.from_pretrained`` like a released checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import save_file

from ..engine.prompt import INTERNVL2_5_SYSTEM_MESSAGE
from ..model import MLLMSegConfig, MLLMSegModel, SpecialTokens

ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "[SEG]", "[REJ]"]
PROMPT_WORDS = [
    "system", "user", "assistant", INTERNVL2_5_SYSTEM_MESSAGE, "\n What are ", "in this image? Please output segmentation masks.",
    "Sure,", ":[SEG]", ", ", ".",
]


def build_tokenizer(folder: Path, corpus: Iterable[str], vocab_size: int = 512) -> dict[str, int]:
    """Train a small byte-level BPE tokenizer (Qwen2-style) on ``corpus`` + the prompt's fixed words; save it as
    ``tokenizer.json`` for transformers' fast tokenizer. Returns the added tokens' ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(ADDED_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(list(corpus) + PROMPT_WORDS, trainer)
    tokenizer.add_special_tokens(ADDED_TOKENS)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return {token: tokenizer.token_to_id(token) for token in ADDED_TOKENS}


def small_config_dict(
    vocab_size: int,
    image_size: int = 224,
    vision_width: int = 64,
    vision_layers: int = 2,
    llm_width: int = 64,
    llm_layers: int = 2,
    decoder_ffn: int | None = None,
    decoder_dropout: float = 0.1,
) -> dict:
    """An official-layout config.json for a small model (Qwen2 LLM); the decoder width follows the ViT width."""
    return {
        "architectures": ["MLLMSeg"], "model_type": "internvl_chat", "template": "internvl2_5", "ps_version": "v2",
        "downsample_ratio": 0.5, "force_image_size": image_size, "select_layer": -1, "dynamic_image_size": False,
        "vision_config": {
            "architectures": ["InternVisionModel"], "hidden_size": vision_width, "num_hidden_layers": vision_layers,
            "num_attention_heads": 4, "intermediate_size": 2 * vision_width, "image_size": image_size, "patch_size": 14,
            "qkv_bias": True, "qk_normalization": False, "norm_type": "layer_norm", "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
        },
        "llm_config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab_size,
            "hidden_size": llm_width, "intermediate_size": 2 * llm_width, "num_hidden_layers": llm_layers,
            "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 4096, "tie_word_embeddings": False,
        },
        "mllmseg_decoder": {"width": vision_width, "num_heads": 4, "ffn_dim": decoder_ffn or vision_width,
                            "dropout": decoder_dropout},
    }


def save_checkpoint(model: MLLMSegModel, config_dict: dict, folder: Path) -> None:
    """config.json + model.safetensors (tokenizer files are written separately)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def random_checkpoint(folder: Path, corpus: Iterable[str], seed: int = 0, **sizes) -> Path:
    """A randomly initialised small model with its own tokenizer, in the official layout."""
    token_ids = build_tokenizer(folder, corpus)
    config_dict = small_config_dict(vocab_size=max(token_ids.values()) + 1, **sizes)
    tokens = SpecialTokens(token_ids["<IMG_CONTEXT>"], token_ids["[SEG]"], token_ids["[REJ]"], token_ids["<img>"], token_ids["</img>"])
    torch.manual_seed(seed)
    model = MLLMSegModel(MLLMSegConfig.from_dict(config_dict, tokens))
    save_checkpoint(model, config_dict, folder)
    return folder
