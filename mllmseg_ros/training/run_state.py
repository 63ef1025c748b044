"""A run's checkpoints: ``<out>/checkpoint-last`` (the model in the official layout plus the optimizer state, rewritten
atomically every ``save_every`` steps, what a rerun resumes from) and, at the end, ``<out>/model`` (the same without
the optimizer state, plus the run's options), which ``MLLMSegModel.from_pretrained`` loads."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from ..model import MLLMSegModel
from ..model.model_card import SYNTHETIC_SCENES, write_model_card
from .checkpoint_builder import save_checkpoint
from .config import TrainConfig

STATE_FILE = "training_state.pt"  # optimizer state and step, beside the weights
CONFIG_FILE = "training_config.json"
_NOT_TOKENIZER = {"config.json", "model.safetensors", STATE_FILE, CONFIG_FILE}


def merged_for_saving(model: MLLMSegModel) -> MLLMSegModel:
    """The model with any LoRA adapters merged into the LLM's weights (a plain checkpoint)."""
    backbone = model.language_model.model
    if hasattr(backbone, "merge_and_unload"):
        model.language_model.model = backbone.merge_and_unload()
    return model


def save_state(model: MLLMSegModel, config_dict: dict, tokenizer_dir: Path, state_dir: Path,
               optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write ``state_dir``: weights, config.json, the tokenizer files and the optimizer state at ``step``."""
    tmp = state_dir.with_name(state_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    plain = merged_for_saving(copy.deepcopy(model)).eval()
    save_checkpoint(plain, config_dict, tmp)
    for item in tokenizer_dir.iterdir():
        if item.is_file() and item.name not in _NOT_TOKENIZER:
            shutil.copy(item, tmp / item.name)
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / STATE_FILE)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    tmp.rename(state_dir)  # a crash mid-save leaves the previous checkpoint intact


def load_state(state_dir: Path) -> dict:
    """The optimizer state and step saved by ``save_state`` (tensors only: never unpickles code)."""
    return torch.load(state_dir / STATE_FILE, map_location="cpu", weights_only=True)


def has_state(state_dir: Path) -> bool:
    return (state_dir / STATE_FILE).is_file()


def export_final(state_dir: Path, final: Path, cfg: TrainConfig) -> Path:
    """Copy the last checkpoint to ``final`` without its optimizer state, with the run's options (and, for a run on
    synthetic scenes only, the model card that says so)."""
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(state_dir, final, ignore=shutil.ignore_patterns(STATE_FILE))
    (final / CONFIG_FILE).write_text(json.dumps(cfg.as_dict(), indent=2))
    if cfg.data == "synthetic":
        write_model_card(final, SYNTHETIC_SCENES)
    return final
