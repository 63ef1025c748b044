"""Checkpoint loading: layouts that must load, and broken folders that must fail with an error naming the culprit."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tiny_models import QWEN2, pixel_values, prompt_ids, write_config, write_qwen2_checkpoint

from mllmseg_ros.model import CheckpointError, MLLMSegModel


@pytest.fixture()
def checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path / "ckpt"
    return folder, write_qwen2_checkpoint(folder)


def masks(model: MLLMSegModel) -> torch.Tensor:
    return model.forward_ids(pixel_values(), prompt_ids(n_seg=1)).mask_logits[0]


def test_loads_every_tensor_exactly(checkpoint):
    folder, state = checkpoint
    model = MLLMSegModel.from_pretrained(folder)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not model.training


def test_dtype_and_device_arguments(checkpoint):
    model = MLLMSegModel.from_pretrained(checkpoint[0], dtype=torch.bfloat16, device="cpu")
    assert model.dtype == torch.bfloat16
    assert model.res_decoder.conv1[1].num_batches_tracked.dtype == torch.int64


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        MLLMSegModel.from_pretrained(tmp_path / "nowhere")


def test_missing_config(checkpoint):
    folder, _ = checkpoint
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        MLLMSegModel.from_pretrained(folder)


def test_missing_weights(checkpoint):
    folder, _ = checkpoint
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        MLLMSegModel.from_pretrained(folder)


def test_truncated_safetensors(checkpoint):
    folder, _ = checkpoint
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated or corrupt"):
        MLLMSegModel.from_pretrained(folder)


def test_wrong_shape_names_the_key(checkpoint):
    folder, state = checkpoint
    state["res_decoder.text_down.weight"] = torch.zeros(3, 3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"res_decoder\.text_down\.weight has shape \(3, 3\)"):
        MLLMSegModel.from_pretrained(folder)


def test_missing_key_is_named(checkpoint):
    folder, state = checkpoint
    del state["res_decoder.conv2.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 missing key.*res_decoder\.conv2\.weight"):
        MLLMSegModel.from_pretrained(folder)


def test_unexpected_key_is_named(checkpoint):
    folder, state = checkpoint
    state["res_decoder.extra_head.weight"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected key.*res_decoder\.extra_head\.weight"):
        MLLMSegModel.from_pretrained(folder)


def test_config_that_does_not_match_the_weights(checkpoint):
    folder, _ = checkpoint
    config = json.loads((folder / "config.json").read_text())
    config["llm_config"]["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing key.*layers\.2\."):
        MLLMSegModel.from_pretrained(folder)


def test_tokenizer_files_without_seg_token(checkpoint):
    folder, _ = checkpoint
    tokens = json.loads((folder / "added_tokens.json").read_text())
    del tokens["[SEG]"]
    (folder / "added_tokens.json").write_text(json.dumps(tokens))
    with pytest.raises(CheckpointError, match=r"\[SEG\]"):
        MLLMSegModel.from_pretrained(folder)


def test_pickle_needs_explicit_opt_in(checkpoint):
    folder, state = checkpoint
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        MLLMSegModel.from_pretrained(folder)
    model = MLLMSegModel.from_pretrained(folder, allow_pickle=True)
    assert torch.equal(model.state_dict()["mlp1.1.weight"], state["mlp1.1.weight"])


def test_sharded_safetensors(checkpoint):
    folder, state = checkpoint
    (folder / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, shard_keys in shards.items():
        save_file({k: state[k] for k in shard_keys}, str(folder / name))
    weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    model = MLLMSegModel.from_pretrained(folder)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors: weight file not found"):
        MLLMSegModel.from_pretrained(folder)


def test_lora_checkpoint_is_merged_at_load_time(checkpoint, tmp_path):
    """peft layout: language_model.base_model.model.<module>.{base_layer,lora_A.default,lora_B.default}.weight."""
    folder, state = checkpoint
    g = torch.Generator().manual_seed(1)
    rank, scaling = 4, 2.0  # the official training uses lora_alpha = 2 * r
    lora_state, merged = {}, dict(state)
    for key, tensor in state.items():
        wrapped = key.replace("language_model.", "language_model.base_model.model.", 1) if key.startswith("language_model.") else key
        is_adapted = key.startswith("language_model.model.layers.") and key.endswith("proj.weight")
        if not is_adapted:
            lora_state[wrapped] = tensor
            continue
        module = wrapped[: -len(".weight")]
        a = torch.randn(rank, tensor.shape[1], generator=g) * 0.1
        b = torch.randn(tensor.shape[0], rank, generator=g) * 0.1
        lora_state |= {module + ".base_layer.weight": tensor, module + ".lora_A.default.weight": a, module + ".lora_B.default.weight": b}
        merged[key] = tensor + scaling * b @ a
    lora_folder = tmp_path / "lora"
    shutil.copytree(folder, lora_folder)
    save_file(lora_state, str(lora_folder / "model.safetensors"))
    model = MLLMSegModel.from_pretrained(lora_folder)
    loaded = model.state_dict()
    assert loaded.keys() == merged.keys()
    for key in merged:
        torch.testing.assert_close(loaded[key], merged[key], atol=1e-6, rtol=1e-6)
    # ... and the adapters change the output, so the merge is not a no-op
    plain = MLLMSegModel.from_pretrained(folder)
    assert not torch.allclose(masks(model), masks(plain))


def test_config_values_drive_the_geometry(tmp_path):
    """Sizes come from config.json: a 56 px model with 14 px patches gives 56 x 56 masks from 4 image tokens."""
    write_config(tmp_path, QWEN2)
    from mllmseg_ros.model import MLLMSegConfig

    config = MLLMSegConfig.from_pretrained(tmp_path)
    assert (config.vision.grid_size, config.llm_grid_size, config.num_image_tokens, config.upsample_factor) == (4, 2, 4, 2)
    assert config.projector_in_features == 4 * config.vision.hidden_size


def test_wrong_number_of_image_tokens_is_a_clear_error(checkpoint):
    model = MLLMSegModel.from_pretrained(checkpoint[0])
    ids = prompt_ids()
    ids = ids[:, torch.arange(ids.shape[1]) != 7]  # drop one <IMG_CONTEXT>
    with pytest.raises(ValueError, match=r"4 <IMG_CONTEXT> tokens.*got \[3\]"):
        model.forward_ids(pixel_values(), ids)


@pytest.mark.parametrize("llm_hidden, expected_millions", [(896, 27.8), (2048, 30.2), (4096, 34.4)])
def test_decoder_size_matches_the_paper(llm_hidden, expected_millions):
    """~34M parameters for the 8B model (LLM width 4096), against SAM ViT-H's 632M; only the two input projections
    depend on the LLM width (1B: 896, 2B/4B: 2048)."""
    from mllmseg_ros.model import MLLMSegConfig, SpecialTokens, VisionConfig, build_language_config
    from mllmseg_ros.model.mask_decoder import MaskDecoder

    _, llm = build_language_config({"architectures": ["Qwen2ForCausalLM"], "hidden_size": llm_hidden,
                                    "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 16})
    config = MLLMSegConfig(vision=VisionConfig(), llm=llm, tokens=SpecialTokens(1, 2, 3))
    with torch.device("meta"):
        decoder = MaskDecoder(config)
    assert sum(p.numel() for p in decoder.parameters()) / 1e6 == pytest.approx(expected_millions, abs=0.05)


def _tied_config(folder: Path) -> None:
    raw = json.loads((folder / "config.json").read_text())
    raw["llm_config"]["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(raw))


def test_stored_head_is_used_even_when_the_config_says_tied(checkpoint):
    """A checkpoint whose llm_config says tie_word_embeddings=true but stores language_model.lm_head.weight: the
    stored (trained) head answers the [SEG]/[REJ] decision, not the embedding matrix."""
    folder, state = checkpoint
    _tied_config(folder)
    assert not torch.equal(state["language_model.lm_head.weight"], state["language_model.model.embed_tokens.weight"])
    model = MLLMSegModel.from_pretrained(folder)
    assert torch.equal(model.language_model.lm_head.weight, state["language_model.lm_head.weight"])
    assert torch.equal(model.language_model.embed_tokens.weight, state["language_model.model.embed_tokens.weight"])


def test_tied_config_without_a_stored_head_uses_the_embedding(checkpoint):
    folder, state = checkpoint
    _tied_config(folder)
    del state["language_model.lm_head.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model = MLLMSegModel.from_pretrained(folder)
    assert model.language_model.lm_head.weight is model.language_model.embed_tokens.weight
    assert torch.equal(model.language_model.lm_head.weight, state["language_model.model.embed_tokens.weight"])


def test_config_without_ps_version_reads_as_v1_like_the_official_config_class(tmp_path):
    """OpenGVLab's InternVLChatConfig defaults ps_version to 'v1'; a config.json that leaves it out means v1."""
    from mllmseg_ros.model import MLLMSegConfig

    write_config(tmp_path, QWEN2)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert MLLMSegConfig.from_pretrained(tmp_path).ps_version == "v2"
    del raw["ps_version"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert MLLMSegConfig.from_pretrained(tmp_path).ps_version == "v1"
