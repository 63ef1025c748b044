"""Reading an MLLMSeg checkpoint folder: safetensors (single or sharded), pickle only on request, strict keys.

The model is built on the ``meta`` device (no random initialisation, no second copy of the weights) and its
parameters are assigned from the checkpoint; any key missing, unexpected or of the wrong shape is an error that names
it, so nothing loads half-initialised.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .configuration import MLLMSegConfig
from .conversion import internlm2_to_llama, merge_lora
from .errors import CheckpointError

if TYPE_CHECKING:
    from .modeling_mllmseg import MLLMSegModel

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
# The official training wraps the LLM with peft LoRA using lora_alpha = 2 * r.
OFFICIAL_LORA_SCALING = 2.0


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors file (truncated or corrupt?): {exc}") from exc


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    try:
        # weights_only keeps even an explicitly allowed pickle from running arbitrary code.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for a bad pickle
        raise CheckpointError(f"{path}: cannot read pickle weights: {exc}") from exc


def _shard_files(folder: Path, index_name: str) -> list[Path]:
    index_path = folder / index_name
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{index_path}: not a valid shard index ({exc})") from exc
    return [folder / name for name in sorted(set(weight_map.values()))]


def read_state_dict(folder: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder, keyed as stored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    if (folder / SAFETENSORS_INDEX).is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in _shard_files(folder, SAFETENSORS_INDEX):
            state.update(_read_safetensors(shard))
        return state
    if (folder / SAFETENSORS_SINGLE).is_file():
        return _read_safetensors(folder / SAFETENSORS_SINGLE)
    pickles = [name for name in (PICKLE_INDEX, PICKLE_SINGLE) if (folder / name).is_file()]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{folder}: only pickle weights ({pickles[0]}) found. Pickle files can execute code when loaded; convert "
            f"them to safetensors, or pass allow_pickle=True (CLI: --allow-pickle) if you trust their source."
        )
    if pickles:
        if pickles[0] == PICKLE_INDEX:
            state = {}
            for shard in _shard_files(folder, PICKLE_INDEX):
                state.update(_read_pickle(shard))
            return state
        return _read_pickle(folder / PICKLE_SINGLE)
    raise CheckpointError(f"{folder}: no weights found (looked for {SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, {PICKLE_SINGLE})")


def _lora_scaling(folder: Path) -> float:
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        raw = json.loads(adapter_config.read_text(encoding="utf-8"))
        return float(raw["lora_alpha"]) / float(raw["r"])
    return OFFICIAL_LORA_SCALING


def convert_state_dict(state: dict[str, torch.Tensor], config: MLLMSegConfig, folder: Path) -> dict[str, torch.Tensor]:
    """Official checkpoint keys -> this implementation's keys (LoRA merged, InternLM2 as Llama)."""
    state = merge_lora(state, _lora_scaling(folder))
    if config.llm_family == "internlm2":
        state = internlm2_to_llama(state, config.llm.num_attention_heads, config.llm.num_key_value_heads)
    return state


def _check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], folder: Path) -> None:
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:5]}")
        raise CheckpointError(f"{folder}: checkpoint does not match config.json: " + "; ".join(parts))
    for key, target in expected.items():
        if tuple(state[key].shape) != tuple(target.shape):
            raise CheckpointError(
                f"{folder}: {key} has shape {tuple(state[key].shape)} in the checkpoint but "
                f"{tuple(target.shape)} from config.json"
            )


def _drop_unused_vision_layers(state: dict[str, torch.Tensor], used_layers: int) -> dict[str, torch.Tensor]:
    prefix = "vision_model.encoder.layers."

    def used(key: str) -> bool:
        return not key.startswith(prefix) or int(key[len(prefix):].split(".")[0]) < used_layers

    return {k: v for k, v in state.items() if used(k)}


def load_pretrained(
    model_class: type["MLLMSegModel"],
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
) -> "MLLMSegModel":
    folder = Path(path)
    config = MLLMSegConfig.from_pretrained(folder)
    state = convert_state_dict(read_state_dict(folder, allow_pickle), config, folder)
    if config.llm.tie_word_embeddings and "language_model.lm_head.weight" in state:
        # A head stored beside a config that says "tied" is the trained head: use it rather than the embedding.
        config.llm.tie_word_embeddings = False
    with torch.device("meta"):
        model = model_class(config)
    state = _drop_unused_vision_layers(state, len(model.vision_model.encoder.layers))
    expected = model.state_dict()
    if config.llm.tie_word_embeddings:
        expected.pop("language_model.lm_head.weight", None)
        state.pop("language_model.lm_head.weight", None)
    _check_keys(state, expected, folder)
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, strict=not config.llm.tie_word_embeddings, assign=True)
    if config.llm.tie_word_embeddings:
        model.language_model.lm_head.weight = model.language_model.embed_tokens.weight
    _materialise_computed_buffers(model)
    return model.to(device).eval()


def _materialise_computed_buffers(model: "MLLMSegModel") -> None:
    """Re-create buffers that are computed, not stored (rotary frequencies), which stay on ``meta`` after loading."""
    backbone = model.language_model.model
    if hasattr(backbone, "rotary_emb"):
        backbone.rotary_emb = type(backbone.rotary_emb)(config=backbone.config)
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise CheckpointError(f"tensors left uninitialised after loading: {leftovers[:5]}")
