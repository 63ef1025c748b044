"""The training loop: AdamW with linear warm-up and cosine decay, gradient clipping at 1.0, optional bf16 autocast,
a checkpoint every ``save_every`` steps and on hitting ``max_minutes``; a rerun with the same ``out`` resumes."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ..engine.prompt import load_chat_tokenizer
from ..model import MLLMSegModel
from .batching import Batcher, make_dataset, sample_batches
from .run_state import export_final, has_state, load_state, save_state
from .config import TrainConfig
from .losses import training_losses
from .model_setup import new_model, set_trainable

GRADIENT_CLIP = 1.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of ``step``: linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0."""
    warmup = max(1, int(cfg.warmup_ratio * cfg.steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _starting_model(cfg: TrainConfig, state_dir: Path, resume: bool) -> tuple[MLLMSegModel, dict, Path]:
    """(model, its config.json contents, its tokenizer's folder): the last checkpoint when resuming, else the base
    model, else a new one."""
    source = state_dir if resume else (Path(cfg.base_model) if cfg.base_model else None)
    if source is None:
        tokenizer_dir = Path(cfg.out) / "tokenizer"
        model, config_dict = new_model(cfg, tokenizer_dir)
        return model, config_dict, tokenizer_dir
    model = MLLMSegModel.from_pretrained(source, device="cpu")
    return model, json.loads((source / "config.json").read_text()), source


def train(cfg: TrainConfig, show_progress: bool = True) -> Path:
    """Train and return the folder of the final checkpoint (``<out>/model``)."""
    from tqdm import tqdm

    state_dir = Path(cfg.out) / "checkpoint-last"
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resume = cfg.resume and has_state(state_dir)
    model, config_dict, tokenizer_dir = _starting_model(cfg, state_dir, resume)
    model = set_trainable(model, cfg).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if resume:
        state = load_state(state_dir)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    batcher = Batcher(load_chat_tokenizer(tokenizer_dir), model.config)
    batches = iter(sample_batches(make_dataset(cfg), cfg, step, collate=batcher))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    bar = tqdm(total=cfg.steps, initial=step, disable=not show_progress, unit="step")
    running: dict[str, float] = {}
    started = time.monotonic()
    while step < cfg.steps:
        if cfg.max_minutes and time.monotonic() - started > 60 * cfg.max_minutes:
            save_state(model, config_dict, tokenizer_dir, state_dir, optimizer, step)
            break
        batch = next(batches).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast:
            loss, stats = training_losses(model, batch, cfg, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRADIENT_CLIP)
        optimizer.step()
        step += 1
        for key, value in stats.items():  # moving averages for the progress bar (a batch without masks has no IoU)
            if not math.isnan(value):
                running[key] = value if key not in running else 0.9 * running[key] + 0.1 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running.get('loss', 0):.3f}", iou=f"{running.get('iou', 0):.3f}",
                        ans=f"{running.get('answer_acc', 0):.2f}", seg_rej=f"{running.get('decision_acc', 0):.2f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_state(model, config_dict, tokenizer_dir, state_dir, optimizer, step)
    bar.close()
    return export_final(state_dir, Path(cfg.out) / "model", cfg)
