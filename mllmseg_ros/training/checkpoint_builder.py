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
# An InternVL3.5 tokenizer's added tokens in id order: Qwen3's own 26 (151643 <|endoftext|> .. 151668 </think>), then
# InternVL's nine (151669 <img> ..) and MLLMSeg's [SEG], [REJ], which the MLLMSeg training script adds after them.
QWEN3_ADDED_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
    "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>", "[SEG]", "[REJ]",
]
# The pre-tokenizer split of Qwen2/Qwen3's tokenizer.json (then byte-level without its own regex).
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PROMPT_WORDS = [
    "system", "user", "assistant", INTERNVL2_5_SYSTEM_MESSAGE, "\n What are ", "in this image? Please output segmentation masks.",
    "Sure,", ":[SEG]", ", ", ".",
]


def build_tokenizer(folder: Path, corpus: Iterable[str], vocab_size: int = 512, llm: str = "qwen2") -> dict[str, int]:
    """Train a small byte-level BPE tokenizer (Qwen2-style) on ``corpus`` + the prompt's fixed words; save it as
    ``tokenizer.json`` for transformers' fast tokenizer. Returns the added tokens' ids.

    ``llm="qwen3"``: an InternVL3.5-style tokenizer: Qwen3's added tokens (``<think>`` included) in their order before
    InternVL's and MLLMSeg's, and Qwen's own pre-tokenizer split. Only the vocabulary is small."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    added = QWEN3_ADDED_TOKENS if llm == "qwen3" else ADDED_TOKENS
    tokenizer = Tokenizer(models.BPE())
    if llm == "qwen3":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(added), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(list(corpus) + PROMPT_WORDS, trainer)
    tokenizer.add_special_tokens(added)
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
    return {token: tokenizer.token_to_id(token) for token in added}


def small_config_dict(
    vocab_size: int,
    image_size: int = 224,
    vision_width: int = 64,
    vision_layers: int = 2,
    llm_width: int = 64,
    llm_layers: int = 2,
    decoder_ffn: int | None = None,
    decoder_dropout: float = 0.1,
    llm: str = "qwen2",
) -> dict:
    """An official-layout config.json for a small model (Qwen2 LLM, or ``llm="qwen3"``: InternVL3.5's Qwen3 LLM); the
    decoder width follows the ViT width."""
    config = {
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
    if llm == "qwen3":
        config["llm_config"] = qwen3_llm_config(vocab_size, llm_width, llm_layers)
    return config


def qwen3_llm_config(vocab_size: int, width: int, layers: int, heads: int = 4, kv_heads: int = 2) -> dict:
    """A small ``llm_config`` with every key of InternVL3.5's (OpenGVLab/InternVL3_5-8B config.json), sizes shrunk.

    As in Qwen3-4B (32 heads of 128 for a width of 2560), head_dim is set on its own, here twice width / heads, so
    the attention width differs from the model width."""
    return {
        "_name_or_path": "Qwen3", "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        # bos/eos: the real ids (151643, 151645) do not exist in a small vocabulary
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": None, "eos_token_id": None,
        "head_dim": 2 * width // heads, "hidden_act": "silu", "hidden_size": width, "initializer_range": 0.02,
        "intermediate_size": 2 * width, "max_position_embeddings": 40960, "max_window_layers": layers,
        "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
        "use_sliding_window": False, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": False,
        "vocab_size": vocab_size,
        # training-framework switches InternVL3.5 configs carry; they do not change the model
        "debug": False, "ep_size": 1, "micro_forward": False, "skip_checkpoint": False, "use_deepep": False,
    }


def save_checkpoint(model: MLLMSegModel, config_dict: dict, folder: Path) -> None:
    """config.json + model.safetensors (tokenizer files are written separately)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def random_checkpoint(folder: Path, corpus: Iterable[str], seed: int = 0, llm: str = "qwen2", **sizes) -> Path:
    """A randomly initialised small model with its own tokenizer, in the official layout (``llm``: "qwen2", or
    "qwen3" for an InternVL3.5-style model)."""
    token_ids = build_tokenizer(folder, corpus, llm=llm)
    config_dict = small_config_dict(vocab_size=max(token_ids.values()) + 1, llm=llm, **sizes)
    tokens = SpecialTokens(token_ids["<IMG_CONTEXT>"], token_ids["[SEG]"], token_ids["[REJ]"], token_ids["<img>"], token_ids["</img>"])
    torch.manual_seed(seed)
    model = MLLMSegModel(MLLMSegConfig.from_dict(config_dict, tokens))
    save_checkpoint(model, config_dict, folder)
    return folder
