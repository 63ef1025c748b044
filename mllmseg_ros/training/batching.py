"""From a training config to each step's batch: the dataset, the order of the samples, and the padded tensors.

A sample (``data.datasets.Sample``) is one image with its questions; its batch row is the official conversation
naming every question, with the answer's tokens as labels and one target mask per ``[SEG]`` answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..data.datasets import FolderDataset, ReferDataset, Sample, SyntheticDataset
from ..engine.preprocess import preprocess
from ..engine.prompt import REJ, SEG, build_prompt_turns
from ..model import MLLMSegConfig
from .config import TrainConfig

IGNORE = -100  # label of the tokens that get no cross-entropy (the prompt, padding)
PAD_ID = 0  # input id of padding (masked out by ``attention_mask``)


@dataclass
class TrainBatch:
    """One step's tensors: B samples, T tokens (the longest conversation; shorter ones padded at the end), S the
    model's image size."""

    input_ids: torch.Tensor  # B x T long
    labels: torch.Tensor  # B x T long: the answer's token ids ([SEG]/[REJ] included), IGNORE elsewhere
    attention_mask: torch.Tensor  # B x T bool, False on padding
    pixel_values: torch.Tensor  # B x 3 x S x S float32, preprocessed as at inference
    # Per sample n_i x S x S float32 in [0, 1]: one map per [SEG] answer (the present targets, in prompt order).
    target_masks: list[torch.Tensor]

    def to(self, device: torch.device | str) -> "TrainBatch":
        return TrainBatch(self.input_ids.to(device), self.labels.to(device), self.attention_mask.to(device),
                          self.pixel_values.to(device), [mask.to(device) for mask in self.target_masks])


class Batcher:
    """Samples -> a ``TrainBatch``. Picklable, so the data workers run it (the collate function)."""

    def __init__(self, tokenizer, config: MLLMSegConfig) -> None:
        self.tokenizer, self.config = tokenizer, config

    def encode(self, sample: Sample) -> tuple[list[int], list[int]]:
        """The official conversation naming every expression of ``sample``: its token ids and labels."""
        answers = [SEG if mask.any() else REJ for mask in sample.masks]
        turns = build_prompt_turns(sample.expressions, self.config.num_image_tokens, answers, bos=self.tokenizer.bos_token,
                                   template=self.config.template)
        ids, labels = [], []
        for turn in (turns.system, turns.user):
            part = self.tokenizer.encode(turn)
            ids += part
            labels += [IGNORE] * len(part)
        header, answer, tail = turns.assistant_parts()
        head_ids, body, tail_ids = (self.tokenizer.encode(part) for part in (header, answer, tail))
        ids += head_ids + body + tail_ids
        labels += [IGNORE] * len(head_ids) + body + [IGNORE] * len(tail_ids)
        return ids, labels

    def __call__(self, samples: list[Sample]) -> TrainBatch:
        encoded = [self.encode(sample) for sample in samples]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(samples), width), PAD_ID, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), width), dtype=torch.bool)
        for row, (ids, row_labels) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(row_labels)] = torch.tensor(row_labels)
            attention_mask[row, : len(ids)] = True
        size = self.config.image_size
        pixel_values = torch.cat([preprocess(sample.image, size) for sample in samples])
        target_masks = []
        for sample in samples:
            present = [resize_mask(mask, size) for mask in sample.masks if mask.any()]
            target_masks.append(torch.from_numpy(np.stack(present)) if present else torch.zeros(0, size, size))
        return TrainBatch(input_ids, labels, attention_mask, pixel_values, target_masks)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """H x W bool -> size x size float32 in [0, 1] (area averaging keeps thin parts)."""
    import cv2

    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def make_dataset(cfg: TrainConfig):
    """The dataset ``cfg.data`` names: synthetic scenes, a REFER train split or a user folder."""
    if cfg.data == "synthetic":
        return SyntheticDataset(cfg.synthetic)
    if cfg.data.startswith("refer:"):
        _, root, dataset = cfg.data.split(":", 2)
        return ReferDataset(root, dataset, "train")
    return FolderDataset(cfg.data)


def batch_indices(length: int, cfg: TrainConfig, step: int) -> Iterator[list[int]]:
    """The dataset indices of each step's batch from ``step`` on: uniform draws from a generator seeded with
    ``seed + step``, so a resumed run continues with fresh batches."""
    rng = np.random.default_rng(cfg.seed + step)
    for _ in range(step, cfg.steps):
        yield [int(i) for i in rng.integers(0, length, cfg.batch_size)]


def _as_list(samples: list) -> list:
    return samples


def sample_batches(dataset, cfg: TrainConfig, step: int = 0, collate: Callable[[list], object] = _as_list) -> Iterable:
    """Each remaining step's ``collate(list of samples)``, built in ``cfg.data_workers`` background processes when > 0.

    torch's DataLoader does the process handling; its batch sampler is the same index sequence as the serial path, and
    it delivers batches in order, so the samples do not depend on the number of workers. ``collate`` runs in the
    workers too, so the training loop gets ready tensors."""
    indices = batch_indices(len(dataset), cfg, step)
    if cfg.data_workers <= 0:
        return (collate([dataset[i] for i in batch]) for batch in indices)
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=list(indices), num_workers=cfg.data_workers, collate_fn=collate,
                      prefetch_factor=2, persistent_workers=False)
