"""The model a run trains: a new small one (with its own tokenizer) or a checkpoint to fine-tune, and which of its
parts train (the decoder always; the ViT, projector and LLM by option, the LLM also through LoRA, as the official
recipe)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.scenes import CLASSES, COLOURS, COMMAND_PREFIXES
from ..model import MLLMSegConfig, MLLMSegModel, SpecialTokens
from .checkpoint_builder import build_tokenizer, small_config_dict
from .config import TrainConfig

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # as the official scripts


def scene_corpus() -> list[str]:
    """Words of the synthetic scenes' expressions, for a small tokenizer of a new model."""
    spatial = ["on the left", "on the right", "closest to the camera", "next to the", "the largest", "the smallest"]
    return [f"the {c} {k}" for c in COLOURS for k in CLASSES] + spatial + list(COMMAND_PREFIXES)


def new_model(cfg: TrainConfig, folder: Path) -> tuple[MLLMSegModel, dict]:
    """A randomly initialised model of ``cfg.new_model``'s sizes (seeded by ``cfg.seed``) and its config.json
    contents; its tokenizer is written to ``folder``."""
    sizes = cfg.new_model
    token_ids = build_tokenizer(folder, scene_corpus() * 3, vocab_size=sizes.vocab_size)
    config_dict = small_config_dict(
        vocab_size=max(token_ids.values()) + 1, image_size=sizes.image_size, vision_width=sizes.vision_width,
        vision_layers=sizes.vision_layers, llm_width=sizes.llm_width, llm_layers=sizes.llm_layers,
        decoder_ffn=sizes.decoder_ffn or None, decoder_dropout=sizes.decoder_dropout,
    )
    tokens = SpecialTokens(token_ids["<IMG_CONTEXT>"], token_ids["[SEG]"], token_ids["[REJ]"], token_ids["<img>"], token_ids["</img>"])
    torch.manual_seed(cfg.seed)
    return MLLMSegModel(MLLMSegConfig.from_dict(config_dict, tokens)), config_dict


def set_trainable(model: MLLMSegModel, cfg: TrainConfig) -> MLLMSegModel:
    """Freeze or unfreeze the parts as ``cfg`` says; with ``llm: lora`` the LLM's layers get LoRA adapters (peft)."""
    model.vision_model.requires_grad_(not cfg.freeze_vit)
    model.mlp1.requires_grad_(not cfg.freeze_projector)
    model.res_decoder.requires_grad_(True)
    language = model.language_model
    if cfg.llm == "full":
        language.requires_grad_(True)
    else:
        language.requires_grad_(False)
        # As the official recipe: the embedding, output head and final norm train even when the LLM is frozen/LoRA.
        for module in (language.embed_tokens, language.lm_head, language.model.norm):
            module.requires_grad_(True)
        if cfg.llm == "lora":
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=LORA_TARGETS)
            language.model = get_peft_model(language.model, lora)
    if cfg.gradient_checkpointing:
        language.model.gradient_checkpointing_enable()
    return model
