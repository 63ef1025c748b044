"""Tiny MLLMSeg checkpoints in the official layout, built in tests (random weights, milliseconds to run)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

# Added tokens at the end of a 96-token vocabulary.
TOKENS = {"<img>": 90, "</img>": 91, "<IMG_CONTEXT>": 92, "[SEG]": 93, "[REJ]": 94, "<|im_end|>": 95}
IMAGE_SIZE = 56  # 4 x 4 ViT patches of 14 px -> 2 x 2 = 4 image tokens in the LLM
NUM_IMAGE_TOKENS = 4

VISION = {
    "architectures": ["InternVisionModel"], "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "image_size": IMAGE_SIZE, "patch_size": 14, "qkv_bias": True,
    "qk_normalization": False, "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "hidden_act": "gelu",
}
QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 96, "hidden_size": 48,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
}
INTERNLM2 = {
    "architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "vocab_size": 96, "hidden_size": 48,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "bias": False,
    "max_position_embeddings": 256, "rope_scaling": {"type": "dynamic", "factor": 2.0},
}
# InternVL3.5's llm_config: every key of OpenGVLab/InternVL3_5-8B's (Qwen3-8B), sizes shrunk. head_dim is 16, not
# hidden / heads = 12: as in Qwen3-4B (32 x 128 = 4096 for a width of 2560) q_proj is wider than the model.
QWEN3 = {
    "_name_or_path": "Qwen3-8B", "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 96,
    "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000,
    "rope_scaling": None, "max_position_embeddings": 40960, "max_window_layers": 2, "use_sliding_window": False,
    "sliding_window": None, "attention_bias": False, "attention_dropout": 0.0, "tie_word_embeddings": False,
    "bos_token_id": None, "eos_token_id": TOKENS["<|im_end|>"], "initializer_range": 0.02, "torch_dtype": "bfloat16",
    "use_cache": False, "debug": False, "ep_size": 1, "micro_forward": False, "skip_checkpoint": False,
    "use_deepep": False,
}
DECODER = {"width": 32, "num_heads": 4, "ffn_dim": 32}


def config_dict(llm: dict) -> dict:
    return {
        "architectures": ["MLLMSeg"], "model_type": "internvl_chat", "downsample_ratio": 0.5, "force_image_size": IMAGE_SIZE,
        "ps_version": "v2", "select_layer": -1, "template": "internvl2_5", "dynamic_image_size": False,
        "vision_config": VISION, "llm_config": llm, "mllmseg_decoder": DECODER,
    }


def write_config(folder: Path, llm: dict = QWEN2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_dict(llm)))
    (folder / "added_tokens.json").write_text(json.dumps(TOKENS))


def random_model(llm: dict = QWEN2, seed: int = 0):
    """A randomly initialised model of the tiny configuration (BatchNorm statistics randomised too)."""
    from mllmseg_ros.model import MLLMSegConfig, MLLMSegModel, SpecialTokens

    torch.manual_seed(seed)
    tokens = SpecialTokens(TOKENS["<IMG_CONTEXT>"], TOKENS["[SEG]"], TOKENS["[REJ]"], TOKENS["<img>"], TOKENS["</img>"])
    model = MLLMSegModel(MLLMSegConfig.from_dict(config_dict(llm), tokens))
    bn = model.res_decoder.conv1[1]
    bn.running_mean.normal_(0, 0.3)
    bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def write_qwen2_checkpoint(folder: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny Qwen2-format checkpoint (our key layout is the official one); returns the saved tensors."""
    write_config(folder, QWEN2)
    state = {k: v.contiguous() for k, v in random_model(QWEN2, seed).state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return state


def write_qwen3_checkpoint(folder: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny InternVL3.5-shaped checkpoint (Qwen3 LLM, official key layout); returns the saved tensors. The LLM's
    RMSNorm weights (q_norm and k_norm included) are random, not ones, so a norm left out changes the results."""
    write_config(folder, QWEN3)
    state = {k: v.contiguous() for k, v in random_model(QWEN3, seed).state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    for key in [k for k in state if k.startswith("language_model.") and k.endswith("norm.weight")]:
        state[key] = 1 + 0.3 * torch.randn(state[key].shape, generator=g)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return state


def prompt_ids(n_seg: int = 1, n_rej: int = 0, seed: int = 0) -> torch.Tensor:
    """A short prompt in the official shape: text, <img>, image tokens, </img>, text, answer slots. 1 x T."""
    g = torch.Generator().manual_seed(seed)
    words = lambda n: torch.randint(0, 90, (n,), generator=g).tolist()  # noqa: E731
    ids = words(5) + [TOKENS["<img>"]] + [TOKENS["<IMG_CONTEXT>"]] * NUM_IMAGE_TOKENS + [TOKENS["</img>"]] + words(4)
    for slot in [TOKENS["[SEG]"]] * n_seg + [TOKENS["[REJ]"]] * n_rej:
        ids += words(3) + [slot]
    ids += words(1) + [TOKENS["<|im_end|>"]]
    return torch.tensor([ids])


def pixel_values(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))
