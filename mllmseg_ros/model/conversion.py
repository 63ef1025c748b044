"""Checkpoint key conversions applied at load time: LoRA merging and InternLM2 -> Llama layout."""
from __future__ import annotations

import re

import torch

from .errors import CheckpointError

_LORA_WRAPPER = "base_model.model."


def merge_lora(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """Merge a peft LoRA checkpoint (``base_layer`` / ``lora_A`` / ``lora_B`` keys) into plain weights.

    W = W_base + scaling * B @ A, with scaling = lora_alpha / r (the official training uses alpha = 2 r -> 2.0).
    The peft wrapper prefix ``base_model.model.`` is removed so keys match a merged checkpoint.
    """
    if not any(".lora_A." in k or ".base_layer." in k for k in state):
        return state
    merged: dict[str, torch.Tensor] = {}
    lora_a: dict[str, torch.Tensor] = {}
    lora_b: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        key = key.replace(_LORA_WRAPPER, "")
        match = re.match(r"(.*)\.lora_([AB])\.[^.]+\.weight$", key)
        if match:
            (lora_a if match.group(2) == "A" else lora_b)[match.group(1)] = tensor
        else:
            merged[key.replace(".base_layer.", ".")] = tensor
    if lora_a.keys() != lora_b.keys():
        raise CheckpointError(f"LoRA checkpoint has unpaired lora_A/lora_B for {sorted(lora_a.keys() ^ lora_b.keys())[:5]}")
    for module, a in lora_a.items():
        weight_key = module + ".weight"
        if weight_key not in merged:
            raise CheckpointError(f"LoRA adapter {module} has no base_layer weight")
        base = merged[weight_key]
        delta = (lora_b[module].float() @ a.float()) * scaling
        merged[weight_key] = (base.float() + delta).to(base.dtype)
    return merged


_INTERNLM2_RENAMES = [
    (r"\.model\.tok_embeddings\.", ".model.embed_tokens."),
    (r"\.attention\.wo\.", ".self_attn.o_proj."),
    (r"\.feed_forward\.w1\.", ".mlp.gate_proj."),
    (r"\.feed_forward\.w3\.", ".mlp.up_proj."),
    (r"\.feed_forward\.w2\.", ".mlp.down_proj."),
    (r"\.attention_norm\.", ".input_layernorm."),
    (r"\.ffn_norm\.", ".post_attention_layernorm."),
    (r"^language_model\.output\.", "language_model.lm_head."),
]


def split_internlm2_wqkv(wqkv: torch.Tensor, num_heads: int, num_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """Split InternLM2's fused ``wqkv`` (weight or bias) into Llama's q, k, v.

    Rows are grouped per KV head: for each of the ``num_kv_heads`` groups, its ``num_heads / num_kv_heads`` query
    heads, then one key head, then one value head. Query head h * q_per_kv + i belongs to KV head h, which is the
    grouping Llama's GQA assumes.
    """
    q_per_kv = num_heads // num_kv_heads
    rows = wqkv.shape[0]
    head_dim = rows // (num_kv_heads * (q_per_kv + 2))
    grouped = wqkv.reshape(num_kv_heads, q_per_kv + 2, head_dim, *wqkv.shape[1:])
    q = grouped[:, :q_per_kv].reshape(num_heads * head_dim, *wqkv.shape[1:])
    k = grouped[:, q_per_kv].reshape(num_kv_heads * head_dim, *wqkv.shape[1:])
    v = grouped[:, q_per_kv + 1].reshape(num_kv_heads * head_dim, *wqkv.shape[1:])
    return q.contiguous(), k.contiguous(), v.contiguous()


def internlm2_to_llama(state: dict[str, torch.Tensor], num_heads: int, num_kv_heads: int) -> dict[str, torch.Tensor]:
    """Rename InternLM2 LLM keys to the Llama layout and split the fused attention projection."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if not key.startswith("language_model."):
            converted[key] = tensor
            continue
        match = re.match(r"(.*)\.attention\.wqkv\.(weight|bias)$", key)
        if match:
            q, k, v = split_internlm2_wqkv(tensor, num_heads, num_kv_heads)
            for name, part in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                converted[f"{match.group(1)}.self_attn.{name}.{match.group(2)}"] = part
            continue
        for pattern, replacement in _INTERNLM2_RENAMES:
            key = re.sub(pattern, replacement, key)
        converted[key] = tensor
    return converted
