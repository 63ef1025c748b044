"""MLLMSeg's training objective: cross-entropy on the answer tokens plus focal and dice losses on the masks.

Loss = ce_weight * cross-entropy on the answer tokens ([SEG]/[REJ] included) + focal_weight * focal + dice_weight *
dice on the masks of the [SEG] targets (official weights 1/1/1). The focal loss is computed from the decoder's LOGITS
(the official code feeds it probabilities and so applies the sigmoid twice; we do not copy that).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import MLLMSegModel
from .batching import IGNORE, TrainBatch
from .config import TrainConfig


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss of n x S x S mask logits against targets in [0, 1]: mean over pixels, then over masks."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = logits.sigmoid()
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** gamma).flatten(1).mean(1).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft dice of n x S x S mask logits against targets in [0, 1], mean over masks."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def training_losses(
    model: MLLMSegModel, batch: TrainBatch, cfg: TrainConfig, step: int | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its statistics (loss, ce, focal, dice, mask IoU, answer-token and [SEG]/[REJ]-token
    accuracy). ``step``: the training step, for ``decision_from_step`` (None: past it)."""
    tokens = model.config.tokens
    vit_features, image_embeds = model.extract_image_features(batch.pixel_values)
    hidden = model.run_language_model(model.embed_inputs(batch.input_ids, image_embeds), batch.attention_mask)  # B x T x H
    # Cross-entropy only where an answer token is predicted: position p predicts labels[p + 1].
    labels = batch.labels
    rows, cols = (labels[:, 1:] != IGNORE).nonzero(as_tuple=True)
    logits = model.language_model.lm_head(hidden[rows, cols]).float()  # N x V
    targets = labels[rows, cols + 1]
    decisions = (targets == tokens.seg) | (targets == tokens.rej)
    decisions_count = step is None or step >= cfg.decision_from_step
    weights = torch.where(decisions, 1.0 if decisions_count else 0.0, 1.0)  # all 1.0: the plain mean, as official
    ce = (F.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum()
    # Masks for the [SEG] answers, from the hidden state before each [SEG].
    seg_rows, seg_cols = (batch.input_ids == tokens.seg).nonzero(as_tuple=True)
    context = model.res_decoder.encode_image(vit_features, model.image_states_from_hidden(batch.input_ids, hidden))
    mask_logits = model.res_decoder.decode_queries(context, seg_rows, hidden[seg_rows, seg_cols - 1]).float()  # n x S x S
    target = torch.cat(batch.target_masks)
    focal = focal_loss(mask_logits, target, cfg.focal_alpha, cfg.focal_gamma) if len(target) else ce * 0
    dice = dice_loss(mask_logits, target) if len(target) else ce * 0
    loss = cfg.ce_weight * ce + cfg.focal_weight * focal + cfg.dice_weight * dice
    with torch.no_grad():
        predicted, truth = mask_logits > 0, target > 0.5
        inter = (predicted & truth).flatten(1).sum(1).float()
        union = (predicted | truth).flatten(1).sum(1).float().clamp(min=1)
        correct = logits.argmax(-1) == targets
        stats = {
            "loss": loss.detach().item(), "ce": ce.detach().item(), "focal": focal.detach().item(),
            "dice": dice.detach().item(),
            "iou": (inter / union).mean().item() if len(target) else float("nan"),
            "answer_acc": correct.float().mean().item(),
            # The [SEG]/[REJ] tokens alone: the answer accuracy above is dominated by the echoed expressions.
            "decision_acc": correct[decisions].float().mean().item() if decisions.any() else float("nan"),
        }
    return loss, stats
