"""An InternLM2-format checkpoint (2B/8B family) loads without remote code, converted to the Llama layout."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tiny_models import INTERNLM2, NUM_IMAGE_TOKENS, TOKENS, pixel_values, prompt_ids, random_model, write_config

from mllmseg_ros.model import MLLMSegModel
from mllmseg_ros.model.conversion import split_internlm2_wqkv

HIDDEN = INTERNLM2["hidden_size"]
HEADS = INTERNLM2["num_attention_heads"]
KV_HEADS = INTERNLM2["num_key_value_heads"]
HEAD_DIM = HIDDEN // HEADS


def internlm2_llm_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random LLM weights under InternLM2's own key names (as the official checkpoints store them)."""
    g = torch.Generator().manual_seed(seed)
    vocab, inter = INTERNLM2["vocab_size"], INTERNLM2["intermediate_size"]
    rand = lambda *shape: torch.randn(*shape, generator=g) * 0.1  # noqa: E731
    state = {
        "language_model.model.tok_embeddings.weight": rand(vocab, HIDDEN),
        "language_model.model.norm.weight": 1 + rand(HIDDEN),
        "language_model.output.weight": rand(vocab, HIDDEN),
    }
    for i in range(INTERNLM2["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        state |= {
            p + "attention.wqkv.weight": rand((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN),
            p + "attention.wo.weight": rand(HIDDEN, HEADS * HEAD_DIM),
            p + "feed_forward.w1.weight": rand(inter, HIDDEN),
            p + "feed_forward.w3.weight": rand(inter, HIDDEN),
            p + "feed_forward.w2.weight": rand(HIDDEN, inter),
            p + "attention_norm.weight": 1 + rand(HIDDEN),
            p + "ffn_norm.weight": 1 + rand(HIDDEN),
        }
    return state


@pytest.fixture(scope="module")
def internlm2_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("internlm2")
    write_config(folder, INTERNLM2)
    other_parts = {k: v for k, v in random_model(INTERNLM2).state_dict().items() if not k.startswith("language_model.")}
    llm = internlm2_llm_state()
    save_file({**other_parts, **llm}, str(folder / "model.safetensors"))
    return folder, llm


def test_internlm2_checkpoint_loads_and_runs(internlm2_checkpoint):
    folder, _ = internlm2_checkpoint
    assert "InternLM2" in json.loads((folder / "config.json").read_text())["llm_config"]["architectures"][0]
    model = MLLMSegModel.from_pretrained(folder)
    out = model.forward_ids(pixel_values(), prompt_ids(n_seg=2, n_rej=1))
    assert [m.shape for m in out.mask_probs] == [torch.Size([2, 56, 56])]
    assert torch.isfinite(out.mask_probs[0]).all()
    assert len(out.decisions[0]) == 3
    assert out.image_states.shape == (1, NUM_IMAGE_TOKENS, HIDDEN)


def test_output_head_and_embeddings_are_the_internlm2_tensors(internlm2_checkpoint):
    folder, llm = internlm2_checkpoint
    model = MLLMSegModel.from_pretrained(folder)
    assert torch.equal(model.language_model.lm_head.weight, llm["language_model.output.weight"])
    assert torch.equal(model.language_model.embed_tokens.weight, llm["language_model.model.tok_embeddings.weight"])
    gate = model.language_model.model.layers[1].mlp.gate_proj.weight
    assert torch.equal(gate, llm["language_model.model.layers.1.feed_forward.w1.weight"])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def reference_internlm2_attention(x: torch.Tensor, wqkv: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """InternLM2 attention written from its definition: fused projection viewed as (kv_head, group + 2, head_dim)."""
    batch, tokens, _ = x.shape
    group = HEADS // KV_HEADS
    qkv = (x @ wqkv.T).view(batch, tokens, KV_HEADS, group + 2, HEAD_DIM)
    q = qkv[..., :group, :].reshape(batch, tokens, HEADS, HEAD_DIM)
    k = qkv[..., -2, :]
    v = qkv[..., -1, :]
    inv_freq = 1.0 / (INTERNLM2["rope_theta"] ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    angles = torch.outer(torch.arange(tokens).float(), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    rope = lambda t: t * cos[None, :, None] + _rotate_half(t) * sin[None, :, None]  # noqa: E731
    q, k = rope(q), rope(k)
    k = k.repeat_interleave(group, dim=2)  # query head h*group+i reads kv head h
    v = v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / HEAD_DIM**0.5
    causal = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, tokens, HEADS * HEAD_DIM)
    return out @ wo.T


def test_converted_attention_equals_internlm2_attention(internlm2_checkpoint):
    folder, llm = internlm2_checkpoint
    model = MLLMSegModel.from_pretrained(folder)
    backbone = model.language_model.model
    x = torch.randn(1, 9, HIDDEN, generator=torch.Generator().manual_seed(3))
    positions = torch.arange(9)[None]
    with torch.no_grad():
        ours = backbone.layers[0].self_attn(
            hidden_states=x, position_embeddings=backbone.rotary_emb(x, positions), attention_mask=None
        )[0]
    expected = reference_internlm2_attention(
        x, llm["language_model.model.layers.0.attention.wqkv.weight"], llm["language_model.model.layers.0.attention.wo.weight"]
    )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_wqkv_split_also_handles_biases():
    rows = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    bias = torch.arange(rows, dtype=torch.float32)
    q, k, v = split_internlm2_wqkv(bias, HEADS, KV_HEADS)
    group_rows = (HEADS // KV_HEADS + 2) * HEAD_DIM
    # kv head 1's key rows come after kv head 0's whole group and kv head 1's query rows
    first_key_row_of_head1 = group_rows + (HEADS // KV_HEADS) * HEAD_DIM
    assert k[HEAD_DIM] == first_key_row_of_head1
    assert q.shape == (HEADS * HEAD_DIM,) and k.shape == v.shape == (KV_HEADS * HEAD_DIM,)
    assert sorted(torch.cat([q, k, v]).tolist()) == bias.tolist()


def test_internlm2_special_tokens_are_read_from_the_tokenizer_files(internlm2_checkpoint):
    model = MLLMSegModel.from_pretrained(internlm2_checkpoint[0])
    assert (model.config.tokens.seg, model.config.tokens.rej) == (TOKENS["[SEG]"], TOKENS["[REJ]"])


def _rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """InternLM2RMSNorm: x / sqrt(mean(x^2) + eps) * weight."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + INTERNLM2["rms_norm_eps"]) * weight


def reference_internlm2_logits(llm: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """The InternLM2 language model written from its definition (modeling_internlm2.py, InternLM2ForCausalLM), over
    the checkpoint's own keys: tok_embeddings; per layer x + attention(attention_norm(x)), then
    x + w2(silu(w1(h)) * w3(h)) with h = ffn_norm(x); the final norm; the output head. Not our conversion's code."""
    weight = lambda name: llm[f"language_model.{name}.weight"]  # noqa: E731
    x = weight("model.tok_embeddings")[ids]
    for i in range(INTERNLM2["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms_norm(x, weight(p + "attention_norm"))
        x = x + reference_internlm2_attention(h, weight(p + "attention.wqkv"), weight(p + "attention.wo"))
        h = _rms_norm(x, weight(p + "ffn_norm"))
        gate, up = h @ weight(p + "feed_forward.w1").T, h @ weight(p + "feed_forward.w3").T
        x = x + (torch.nn.functional.silu(gate) * up) @ weight(p + "feed_forward.w2").T
    return _rms_norm(x, weight("model.norm")) @ weight("output").T


def test_converted_language_model_equals_internlm2_by_value(internlm2_checkpoint):
    """Every converted tensor in its place: the whole LLM's logits against the InternLM2 definition. A swapped pair
    (the two norms, w1 and w3, the head and the embeddings) changes the logits far beyond the tolerance."""
    folder, llm = internlm2_checkpoint
    language_model = MLLMSegModel.from_pretrained(folder).language_model
    ids = torch.tensor([[3, 17, 42, 8, 77, 5, 60, 11, 29]])
    with torch.no_grad():
        ours = language_model.lm_head(language_model(language_model.embed_tokens(ids)))
    expected = reference_internlm2_logits(llm, ids)
    assert ours.shape == (1, 9, INTERNLM2["vocab_size"])
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_every_internlm2_tensor_is_used_once():
    """The conversion renames every LLM key (none left in InternLM2's names) and leaves the rest alone."""
    from mllmseg_ros.model.conversion import internlm2_to_llama

    llm = internlm2_llm_state()
    other = {"vision_model.embeddings.patch_embedding.weight": torch.zeros(1), "mlp1.0.weight": torch.ones(2)}
    converted = internlm2_to_llama({**llm, **other}, HEADS, KV_HEADS)
    old_names = ("tok_embeddings", "attention.", "feed_forward", "attention_norm", "ffn_norm", "language_model.output.")
    assert not [k for k in converted if any(name in k for name in old_names)]
    assert all(converted[k] is v for k, v in other.items())
    layers = INTERNLM2["num_hidden_layers"]
    assert len(converted) == len(other) + 3 + layers * 9  # wqkv became three tensors
    p = "language_model.model.layers.0."
    assert torch.equal(converted[p + "input_layernorm.weight"], llm[p + "attention_norm.weight"])
    assert torch.equal(converted[p + "post_attention_layernorm.weight"], llm[p + "ffn_norm.weight"])
    assert torch.equal(converted[p + "mlp.up_proj.weight"], llm[p + "feed_forward.w3.weight"])
    assert torch.equal(converted[p + "mlp.down_proj.weight"], llm[p + "feed_forward.w2.weight"])
    assert torch.equal(converted[p + "self_attn.o_proj.weight"], llm[p + "attention.wo.weight"])
