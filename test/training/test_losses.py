"""The loss terms: known values, one optimizer step lowers the loss, and decision_from_step's weighting."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tiny_training import tiny_config

from mllmseg_ros.data.datasets import SyntheticDataConfig, SyntheticDataset
from mllmseg_ros.engine.prompt import load_chat_tokenizer
from mllmseg_ros.training.batching import IGNORE, Batcher
from mllmseg_ros.training.losses import dice_loss, focal_loss, training_losses
from mllmseg_ros.training.model_setup import new_model


def test_focal_and_dice_known_values():
    logits = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0]]])
    # p = 0.5 everywhere: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 / 0.75
    assert focal_loss(logits, target, 0.25, 2.0).item() == pytest.approx(np.log(2) * 0.25 * (0.25 + 0.75) / 2)
    assert dice_loss(logits, target).item() == pytest.approx(1 - (2 * 0.5 + 1) / (1.0 + 1.0 + 1))
    perfect = torch.tensor([[[20.0, -20.0]]])
    assert focal_loss(perfect, target, 0.25, 2.0).item() < 1e-9 and dice_loss(perfect, target).item() < 1e-6


def _model_and_batch(tmp_path, samples, **options):
    cfg = tiny_config(**options)
    model, _ = new_model(cfg, tmp_path)
    return cfg, model, Batcher(load_chat_tokenizer(tmp_path), model.config)(samples)


def test_one_step_reduces_the_loss_on_a_fixed_batch(tmp_path):
    dataset = SyntheticDataset(SyntheticDataConfig(seeds=(0, 4)))
    cfg, model, batch = _model_and_batch(tmp_path, [dataset[i] for i in range(4)], lr=3e-3)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    torch.manual_seed(0)
    before, _ = training_losses(model, batch, cfg)
    before.backward()
    optimizer.step()
    optimizer.zero_grad()
    model.eval()  # compare without dropout noise
    with torch.no_grad():
        after_eval, _ = training_losses(model, batch, cfg)
    assert after_eval.item() < before.item()


def test_decision_tokens_get_no_cross_entropy_before_decision_from_step(tmp_path):
    dataset = SyntheticDataset(SyntheticDataConfig(seeds=(0, 4), absent_fraction=1.0))
    samples = [dataset[i] for i in range(2)]
    cfg, model, batch = _model_and_batch(tmp_path, samples, decision_from_step=10)
    model.eval()
    with torch.no_grad():
        _, early = training_losses(model, batch, cfg, step=9)
        _, late = training_losses(model, batch, cfg, step=10)
        _, unscheduled = training_losses(model, batch, cfg)  # no step: past every switch
        _, official = training_losses(model, batch, dataclasses.replace(cfg, decision_from_step=0), step=0)
        # Independent computation: per-token cross-entropy at every supervised position.
        _, image_embeds = model.extract_image_features(batch.pixel_values)
        hidden = model.run_language_model(model.embed_inputs(batch.input_ids, image_embeds), batch.attention_mask)
        rows, cols = (batch.labels[:, 1:] != IGNORE).nonzero(as_tuple=True)
        targets = batch.labels[rows, cols + 1]
        per_token = torch.nn.functional.cross_entropy(model.language_model.lm_head(hidden[rows, cols]).float(), targets, reduction="none")
    tokens = model.config.tokens
    is_decision = (targets == tokens.seg) | (targets == tokens.rej)
    assert is_decision.sum() == sum(len(sample.expressions) for sample in samples)  # one [SEG]/[REJ] per question
    assert early["ce"] == pytest.approx(per_token[~is_decision].mean().item(), rel=1e-5)
    for stats in (late, unscheduled, official):  # every answer token alike, as the official training
        assert stats["ce"] == pytest.approx(per_token.mean().item(), rel=1e-5)
    assert early["ce"] != pytest.approx(late["ce"], rel=1e-3)
    assert 0.0 <= late["decision_acc"] <= 1.0
