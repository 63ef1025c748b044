"""InternVL3.5-based checkpoints (Qwen3 LLM): the real configs, strict loading, transformers' Qwen3 against a
reference written from its definition, every inference path, and the InternVL3.5 prompt and tokenizer layout."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tiny_models import (
    NUM_IMAGE_TOKENS, QWEN3, TOKENS, pixel_values, prompt_ids, random_model, write_config, write_qwen3_checkpoint,
)

from mllmseg_ros.engine import Segmenter
from mllmseg_ros.engine.prompt import INTERNVL2_5_SYSTEM_MESSAGE, build_prompt_turns, load_chat_tokenizer
from mllmseg_ros.model import CheckpointError, MLLMSegConfig, MLLMSegModel, SpecialTokens
from mllmseg_ros.model.configuration import build_language_config
from mllmseg_ros.model.language import LanguageModel
from mllmseg_ros.model.quantization import quantize
from mllmseg_ros.training.checkpoint_builder import QWEN3_ADDED_TOKENS, random_checkpoint

# llm_config of OpenGVLab/InternVL3_5-8B's config.json, every key as published (Qwen3-8B).
INTERNVL3_5_8B_LLM = {
    "_name_or_path": "/root/codespace/checkpoints/Qwen3-8B", "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643, "debug": False, "eos_token_id": 151645,
    "ep_size": 1, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "micro_forward": False,
    "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "skip_checkpoint": False,
    "sliding_window": None, "torch_dtype": "bfloat16", "use_cache": False, "use_deepep": False,
    "use_sliding_window": False, "vocab_size": 151936,
}
# The smaller InternVL3.5 LLMs differ in these sizes only (from the Qwen3-0.6B / 1.7B / 4B configs).
QWEN3_SIZES = {
    "1B": {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16},
    "2B": {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16},
    "4B": {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32},
    "8B": {},
}
# "#Language Param" of each InternVL3.5 model in its model card, in billions.
PUBLISHED_LLM_BILLIONS = {"1B": 0.8, "2B": 2.0, "4B": 4.4, "8B": 8.2}
HEAD_DIM = QWEN3["head_dim"]
HEADS, KV_HEADS = QWEN3["num_attention_heads"], QWEN3["num_key_value_heads"]


@pytest.mark.parametrize("size", sorted(QWEN3_SIZES))
def test_real_internvl3_5_llm_configs_run_as_transformers_qwen3(size):
    family, config = build_language_config({**INTERNVL3_5_8B_LLM, **QWEN3_SIZES[size]})
    assert family == "qwen3" and type(config).__name__ == "Qwen3Config"
    assert config.head_dim == 128 and config.num_key_value_heads == 8
    assert set(config.layer_types) == {"full_attention"} and not config.use_sliding_window
    assert config.rope_parameters["rope_theta"] == 1000000 and config.rope_parameters["rope_type"] == "default"
    assert not config.tie_word_embeddings
    with torch.device("meta"):
        llm = LanguageModel(family, config)
    # head_dim 128 (not hidden / heads) and a separate output head are what make these counts come out right
    assert round(sum(p.numel() for p in llm.parameters()) / 1e9, 1) == PUBLISHED_LLM_BILLIONS[size]
    attention = llm.model.layers[0].self_attn
    assert attention.q_proj.out_features == config.num_attention_heads * 128
    assert attention.q_norm.weight.shape == attention.k_norm.weight.shape == (128,)


def test_internvl3_5_geometry_is_that_of_internvl2_5():
    """InternViT-300M at 448 px, pixel shuffle 0.5 (v2), last ViT layer: 256 image tokens of 4096 channels."""
    raw = {
        "force_image_size": 448, "downsample_ratio": 0.5, "ps_version": "v2", "select_layer": -1, "template": "internvl2_5",
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 448,
                          "patch_size": 14, "intermediate_size": 4096, "qkv_bias": True, "qk_normalization": False,
                          "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "hidden_act": "gelu"},
        "llm_config": INTERNVL3_5_8B_LLM,
    }
    config = MLLMSegConfig.from_dict(raw, SpecialTokens(img_context=151671, seg=151678, rej=151679))
    assert (config.llm_family, config.num_image_tokens, config.projector_in_features) == ("qwen3", 256, 4096)
    assert config.template == "internvl2_5" and config.decoder.width == 1024


def test_sliding_window_attention_is_refused():
    with pytest.raises(CheckpointError, match="use_sliding_window"):
        build_language_config({**INTERNVL3_5_8B_LLM, "use_sliding_window": True, "sliding_window": 4096})


# --- a tiny checkpoint in the official layout -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen3_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("qwen3")
    return folder, write_qwen3_checkpoint(folder)


def test_every_tensor_loads_exactly(qwen3_checkpoint):
    folder, state = qwen3_checkpoint
    model = MLLMSegModel.from_pretrained(folder)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert "language_model.model.layers.1.self_attn.k_norm.weight" in loaded
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("change, message", [
    ("drop", r"missing key.*layers\.0\.self_attn\.q_norm\.weight"),
    ("extra", r"unexpected key.*layers\.0\.self_attn\.q_proj\.bias"),
])
def test_a_missing_or_extra_tensor_is_named(qwen3_checkpoint, tmp_path, change, message):
    _, state = qwen3_checkpoint
    state = dict(state)
    if change == "drop":
        del state["language_model.model.layers.0.self_attn.q_norm.weight"]
    else:  # Qwen2 has q/k/v biases, Qwen3 has none
        state["language_model.model.layers.0.self_attn.q_proj.bias"] = torch.zeros(HEADS * HEAD_DIM)
    write_config(tmp_path, QWEN3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        MLLMSegModel.from_pretrained(tmp_path)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def reference_qwen3_attention(x: torch.Tensor, state: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Qwen3 attention from its definition: per-head RMSNorm of q and k (over head_dim) before RoPE, GQA, causal."""
    p = f"language_model.model.layers.{layer}.self_attn."
    batch, tokens, _ = x.shape
    eps = QWEN3["rms_norm_eps"]
    q = (x @ state[p + "q_proj.weight"].T).view(batch, tokens, HEADS, HEAD_DIM)
    k = (x @ state[p + "k_proj.weight"].T).view(batch, tokens, KV_HEADS, HEAD_DIM)
    v = (x @ state[p + "v_proj.weight"].T).view(batch, tokens, KV_HEADS, HEAD_DIM)
    q, k = _rms_norm(q, state[p + "q_norm.weight"], eps), _rms_norm(k, state[p + "k_norm.weight"], eps)
    inv_freq = 1.0 / (QWEN3["rope_theta"] ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    angles = torch.outer(torch.arange(tokens).float(), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    rope = lambda t: t * cos[None, :, None] + _rotate_half(t) * sin[None, :, None]  # noqa: E731
    q, k = rope(q), rope(k)
    k = k.repeat_interleave(HEADS // KV_HEADS, dim=2)
    v = v.repeat_interleave(HEADS // KV_HEADS, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / HEAD_DIM**0.5
    causal = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, tokens, HEADS * HEAD_DIM)
    return out @ state[p + "o_proj.weight"].T


def test_attention_equals_qwen3_attention_from_its_definition(qwen3_checkpoint):
    folder, state = qwen3_checkpoint
    backbone = MLLMSegModel.from_pretrained(folder).language_model.model
    x = torch.randn(1, 9, QWEN3["hidden_size"], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = backbone.layers[1].self_attn(
            hidden_states=x, position_embeddings=backbone.rotary_emb(x, torch.arange(9)[None]), attention_mask=None
        )[0]
    torch.testing.assert_close(ours, reference_qwen3_attention(x, state, 1), atol=1e-5, rtol=1e-5)


def test_llm_equals_transformers_qwen3_for_causal_lm(qwen3_checkpoint):
    """Our LLM (backbone + a head run at chosen positions) gives the logits of transformers' whole Qwen3ForCausalLM."""
    from transformers import Qwen3ForCausalLM

    folder, state = qwen3_checkpoint
    model = MLLMSegModel.from_pretrained(folder)
    library = Qwen3ForCausalLM(model.config.llm).eval()
    library.load_state_dict({k[len("language_model."):]: v for k, v in state.items() if k.startswith("language_model.")})
    embeds = torch.randn(2, 11, QWEN3["hidden_size"], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = library(inputs_embeds=embeds).logits
        ours = model.decision_logits_at(model.language_model(embeds))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_forward_ids_runs_on_the_qwen3_checkpoint(qwen3_checkpoint):
    model = MLLMSegModel.from_pretrained(qwen3_checkpoint[0])
    out = model.forward_ids(pixel_values(), prompt_ids(n_seg=2, n_rej=1))
    assert [m.shape for m in out.mask_probs] == [torch.Size([2, 56, 56])]
    assert torch.isfinite(out.mask_logits[0]).all() and len(out.decisions[0]) == 3
    assert out.image_states.shape == (1, NUM_IMAGE_TOKENS, QWEN3["hidden_size"])


def _assert_same_outputs(a, b, atol: float) -> None:
    assert a.decisions == b.decisions
    for x, y in zip(a.mask_logits + a.decision_logits, b.mask_logits + b.decision_logits):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


def test_reused_opening_and_kv_cache_continuation_give_the_full_pass(qwen3_checkpoint):
    model = MLLMSegModel.from_pretrained(qwen3_checkpoint[0])
    ids = prompt_ids(n_seg=2, n_rej=1)
    model.reuse_text_prefix = False
    full = model.forward_ids(pixel_values(), ids)
    model.reuse_text_prefix = True
    model.forward_ids(pixel_values(), ids)  # fills the opening's entry
    _assert_same_outputs(model.forward_ids(pixel_values(), ids), full, atol=1e-5)
    assert model.text_prefix.misses == 1
    # the engine's path: the prompt up to a point kept as a KV cache, the rest run as a continuation of it
    with torch.inference_mode():
        _, image_embeds = model.extract_image_features(pixel_values())
        split = int((ids[0] == TOKENS["</img>"]).nonzero()[0]) + 1
        hidden, cache = model.run_prompt(ids[:, :split], image_embeds, keep_cache=True)
        suffix = model.language_model.embed_tokens(ids[:, split:full.llm_hidden_states.shape[1]])
        continued = model.continue_prompt(suffix, cache)
        assert cache.get_seq_length() == split  # left ready for the next continuation
    torch.testing.assert_close(torch.cat([hidden, continued], 1), full.llm_hidden_states, atol=1e-5, rtol=0)


def test_bfloat16_agrees_with_float32(qwen3_checkpoint):
    reference = MLLMSegModel.from_pretrained(qwen3_checkpoint[0]).forward_ids(pixel_values(), prompt_ids(n_seg=2))
    model = MLLMSegModel.from_pretrained(qwen3_checkpoint[0], dtype=torch.bfloat16)
    assert model.language_model.model.layers[0].self_attn.q_norm.weight.dtype == torch.bfloat16
    out = model.forward_ids(pixel_values(), prompt_ids(n_seg=2))
    assert torch.isfinite(out.mask_probs[0]).all()
    assert (out.mask_probs[0] - reference.mask_probs[0]).abs().mean() < 0.02


def test_int8_quantization_keeps_the_masks(qwen3_checkpoint):
    reference = MLLMSegModel.from_pretrained(qwen3_checkpoint[0]).forward_ids(pixel_values(), prompt_ids())
    model = quantize(MLLMSegModel.from_pretrained(qwen3_checkpoint[0]), "int8")
    assert "Linear" in type(model.language_model.model.layers[0].self_attn.q_proj).__name__
    assert type(model.language_model.model.layers[0].self_attn.q_proj).__module__.startswith("torch.ao")
    out = model.forward_ids(pixel_values(), prompt_ids())
    assert torch.isfinite(out.mask_probs[0]).all()
    assert (out.mask_probs[0] - reference.mask_probs[0]).abs().mean() < 0.05


# --- the tokenizer, the prompt, the engine and the CLI ------------------------------------------------------------
CORPUS = ["the red cup", "the blue bowl", "the green box", "man in white shirt"]


@pytest.fixture(scope="module")
def qwen3_folder(tmp_path_factory) -> Path:
    """A small InternVL3.5-style checkpoint with its own tokenizer (Qwen3's added tokens, a small vocabulary)."""
    return random_checkpoint(tmp_path_factory.mktemp("qwen3_seg"), CORPUS, llm="qwen3", image_size=56, vision_width=32,
                             llm_width=32)


def test_tokenizer_has_the_internvl3_5_added_token_layout(qwen3_folder):
    tokenizer = load_chat_tokenizer(qwen3_folder)
    assert tokenizer.bos_token == ""  # Qwen tokenizers add no BOS; the system turn starts with <|im_start|>
    ids = {t: tokenizer.encode(t) for t in QWEN3_ADDED_TOKENS}
    assert all(len(v) == 1 for v in ids.values())
    # as in InternVL3.5's tokenizer: <|endoftext|> 151643 .. </think> 151668, then <img> 151669, <IMG_CONTEXT> 151671
    assert ids["<img>"][0] - ids["<|endoftext|>"][0] == 151669 - 151643
    assert ids["<IMG_CONTEXT>"][0] - ids["<|endoftext|>"][0] == 151671 - 151643
    assert ids["</think>"][0] + 1 == ids["<img>"][0]
    tokens = SpecialTokens.from_folder(qwen3_folder)
    assert (tokens.img_context, tokens.seg, tokens.rej) == (ids["<IMG_CONTEXT>"][0], ids["[SEG]"][0], ids["[REJ]"][0])


def test_prompt_is_the_internvl2_5_conversation_without_thinking_tokens(qwen3_folder):
    segmenter = Segmenter.from_pretrained(qwen3_folder)
    assert segmenter.config.template == "internvl2_5"
    ids = segmenter.prompt_ids(["the red cup", "the blue bowl"])[0].tolist()
    think = {segmenter.tokenizer.encode(t)[0] for t in ("<think>", "</think>")}
    assert not think & set(ids)
    text = segmenter.tokenizer.tokenizer.decode(ids, skip_special_tokens=False)
    image = "<img>" + "<IMG_CONTEXT>" * segmenter.config.num_image_tokens + "</img>"
    assert text == (
        f"<|im_start|>system\n{INTERNVL2_5_SYSTEM_MESSAGE}<|im_end|>\n"
        f"<|im_start|>user\n{image}\n What are the red cup, the blue bowlin this image? Please output segmentation masks."
        "<|im_end|>\n<|im_start|>assistant\nSure,the red cup:[SEG], the blue bowl:[SEG].<|im_end|>\n"
    )
    assert "".join(build_prompt_turns(["the red cup", "the blue bowl"], segmenter.config.num_image_tokens).as_list()) == text


def test_a_checkpoint_with_another_template_is_refused_at_load(qwen3_folder, tmp_path):
    folder = tmp_path / "other_template"
    folder.mkdir()
    for item in qwen3_folder.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["template"] = "internvl3_5_gpt_oss"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unsupported conversation template 'internvl3_5_gpt_oss'"):
        Segmenter.from_pretrained(folder)


def test_engine_paths_agree_on_the_qwen3_checkpoint(qwen3_folder):
    segmenter = Segmenter.from_pretrained(qwen3_folder)
    frame = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    expressions = ["the red cup", "the green box"]
    cached = segmenter.segment(frame, expressions)
    again = segmenter.segment(frame, ["the green box"])  # a second question on the kept frame
    uncached = segmenter.segment_uncached(frame, expressions)
    assert [r.expression for r in cached] == expressions
    for a, b in zip(cached, uncached):
        assert a.decision == b.decision and a.probability.shape == (48, 64)
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-5, rtol=0)
    alone = segmenter.segment_uncached(frame, ["the green box"])
    np.testing.assert_allclose(again[0].probability, alone[0].probability, atol=1e-5, rtol=0)


def test_cli_segments_with_the_qwen3_checkpoint(qwen3_folder, tmp_path, capsys):
    from mllmseg_ros.tools.cli import main

    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3))
    assert main(["segment", "--model", str(qwen3_folder), str(image), "the red cup", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["expression"] for r in report["results"]] == ["the red cup"]
