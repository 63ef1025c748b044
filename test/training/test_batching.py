"""Batches: labels cover the answer only, TrainBatch shapes, and the data workers change nothing."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from tiny_training import tiny_config

from mllmseg_ros.data.datasets import SyntheticDataConfig, SyntheticDataset
from mllmseg_ros.engine.prompt import load_chat_tokenizer
from mllmseg_ros.training import TrainConfig
from mllmseg_ros.training.batching import IGNORE, Batcher, sample_batches
from mllmseg_ros.training.model_setup import new_model

SMALL_SCENES = SyntheticDataConfig(seeds=(0, 1000), scene_size=(96, 72))


def _batcher(folder) -> Batcher:
    model, _ = new_model(tiny_config(), folder)
    return Batcher(load_chat_tokenizer(folder), model.config)


def test_labels_cover_the_answer_only(tmp_path):
    batcher = _batcher(tmp_path)
    sample = SyntheticDataset(SyntheticDataConfig(seeds=(0, 10), absent_fraction=1.0))[0]
    ids, labels = batcher.encode(sample)
    supervised = [i for i, label in zip(ids, labels) if label != IGNORE]
    tokens = batcher.config.tokens
    assert supervised.count(tokens.seg) + supervised.count(tokens.rej) == len(sample.expressions)
    assert ids.count(tokens.img_context) == batcher.config.num_image_tokens
    answer = batcher.tokenizer.tokenizer.decode(supervised)
    assert answer.startswith("Sure,") and answer.endswith("<|im_end|>")


def test_batch_shapes_padding_and_target_masks(tmp_path):
    batcher = _batcher(tmp_path)
    dataset = SyntheticDataset(dataclasses.replace(SMALL_SCENES, absent_fraction=1.0))
    samples = [dataset[i] for i in range(3)]
    batch = batcher(samples)
    lengths = [len(batcher.encode(sample)[0]) for sample in samples]
    size = batcher.config.image_size
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape == (3, max(lengths))
    assert batch.attention_mask.sum(1).tolist() == lengths
    assert bool((batch.labels[~batch.attention_mask] == IGNORE).all())
    assert batch.pixel_values.shape == (3, 3, size, size)
    for sample, masks, row in zip(samples, batch.target_masks, batch.input_ids):
        present = sum(bool(mask.any()) for mask in sample.masks)
        assert present < len(sample.masks)  # absent_fraction 1.0: an absent question in every sample
        assert masks.shape == (present, size, size) and int((row == batcher.config.tokens.seg).sum()) == present
        assert 0.0 <= float(masks.min()) and float(masks.max()) <= 1.0


def test_data_workers_give_the_same_batches_in_the_same_order():
    dataset = SyntheticDataset(SMALL_SCENES)
    cfg = TrainConfig(steps=5, batch_size=3, seed=7)
    serial = list(sample_batches(dataset, cfg, step=2))
    parallel = list(sample_batches(dataset, dataclasses.replace(cfg, data_workers=2), step=2))
    assert len(serial) == len(parallel) == 3  # the steps left after step 2
    for ours, theirs in zip(serial, parallel):
        assert [s.expressions for s in ours] == [s.expressions for s in theirs]
        for a, b in zip(ours, theirs):
            assert np.array_equal(a.image, b.image) and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    # A resumed run draws its batches from the generator reseeded at its step, whatever the workers.
    assert [s.expressions for s in serial[0]] != [s.expressions for s in next(iter(sample_batches(dataset, cfg, 0)))]


def test_workers_build_the_same_tensors_as_the_training_process(tmp_path):
    """The training loop has the workers run the Batcher too; its tensors must not depend on where it ran."""
    collate = _batcher(tmp_path)
    dataset = SyntheticDataset(SMALL_SCENES)
    cfg = TrainConfig(steps=3, batch_size=2, seed=3)
    serial = list(sample_batches(dataset, cfg, collate=collate))
    parallel = list(sample_batches(dataset, dataclasses.replace(cfg, data_workers=2), collate=collate))
    assert len(serial) == len(parallel) == 3
    for ours, theirs in zip(serial, parallel):
        for name in ("input_ids", "labels", "attention_mask", "pixel_values"):
            assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
        assert len(ours.target_masks) == len(theirs.target_masks) > 0
        assert all(torch.equal(a, b) for a, b in zip(ours.target_masks, theirs.target_masks))


def test_the_answer_turn_splits_at_the_prompts_own_marker():
    """Training labels the answer between the assistant header and the turn's tail, both from engine/prompt.py."""
    from mllmseg_ros.engine.prompt import build_prompt_turns

    turns = build_prompt_turns(["the cup", "the dog"], 4, answers=["[SEG]", "[REJ]"])
    header, answer, tail = turns.assistant_parts()
    assert header + answer + tail == turns.assistant
    assert answer == "Sure,the cup:[SEG], the dog:[REJ].<|im_end|>"
    assert header == "<|im_start|>assistant\n" and tail == "\n"
