"""Training samples: synthetic scenes, a folder of the user's own images, or a REFER (RefCOCO) split.

A sample is one image with one or more targets; each target is a referring expression and its mask (all False when
the named object is not in the image, which teaches the model to answer [REJ]).

User folder format (``--data DIR``)::

    DIR/samples.jsonl        one JSON object per line:
        {"image": "images/0001.png",
         "targets": [{"expression": "the red cup", "mask": "masks/0001_cup.png"},   # mask: non-zero = object
                     {"expression": "the green box", "mask": null}]}              # null: not in the image
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..engine.prompt import clean_expression
from .refer import annotation_mask, load_split
from .scenes import Camera, make_scene


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8 RGB
    expressions: list[str]
    masks: list[np.ndarray]  # H x W bool per expression (all False: not present)


@dataclass
class SyntheticDataConfig:
    """What synthetic training data asks (``mllmseg-ros train --data synthetic``; ``synthetic:`` in a training config)."""

    seeds: tuple[int, int] = (0, 50_000)  # scenes make_scene(seed) for seeds in [start, stop)
    targets_per_sample: int = 3  # present objects asked per sample (fewer when the scene has fewer)
    absent_fraction: float = 0.2  # share of samples that also name an object not in the scene ([REJ])
    scene_size: tuple[int, int] = (320, 240)  # width, height of the images

    def __post_init__(self) -> None:
        self.seeds, self.scene_size = tuple(self.seeds), tuple(self.scene_size)  # YAML and JSON give lists
        if self.seeds[1] <= self.seeds[0]:
            raise ValueError(f"synthetic seeds must be [start, stop) with stop > start, got {list(self.seeds)}")


class SyntheticDataset:
    """Scenes ``make_scene(seed)`` for the configuration's seeds, each sample the official conversation of several
    questions about its scene: ``targets_per_sample`` present objects and, in ``absent_fraction`` of the samples, one
    absent one, in a random order."""

    def __init__(self, config: SyntheticDataConfig = SyntheticDataConfig()) -> None:
        self.config = config
        self.start, self.stop = config.seeds
        self.camera = Camera(*config.scene_size)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> Sample:
        seed = self.start + index % len(self)
        scene = make_scene(seed, self.camera)
        rng = np.random.default_rng(seed + 1_000_003)
        present = [e for e in scene.expressions if e.target is not None]
        absent = [e for e in scene.expressions if e.target is None]
        rng.shuffle(present)
        chosen = present[: min(self.config.targets_per_sample, len(present))]
        if absent and (not chosen or rng.random() < self.config.absent_fraction):
            chosen.append(absent[int(rng.integers(len(absent)))])
        rng.shuffle(chosen)
        return Sample(scene.image, [e.text for e in chosen], [scene.target_mask(e) for e in chosen])


class FolderDataset:
    """The user folder format described in the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / "samples.jsonl"
        if not index.is_file():
            raise ValueError(f"{index} not found (see the training data format in docs/training.md)")
        self.records = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
        if not self.records:
            raise ValueError(f"{index} has no samples")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        bgr = cv2.imread(str(self.root / record["image"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {self.root / record['image']}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        expressions, masks = [], []
        for target in record["targets"]:
            expressions.append(clean_expression(target["expression"]))
            if target.get("mask"):
                mask = cv2.imread(str(self.root / target["mask"]), cv2.IMREAD_GRAYSCALE)
                if mask is None or mask.shape != image.shape[:2]:
                    raise ValueError(f"mask {target['mask']} is missing or not the image's size")
                masks.append(mask > 0)
            else:
                masks.append(np.zeros(image.shape[:2], bool))
        return Sample(image, expressions, masks)


class ReferDataset:
    """A REFER split (RefCOCO/+/g), one sample per image with all its expressions (as the official training)."""

    def __init__(self, root: str | Path, dataset: str, split: str = "train") -> None:
        self.samples, self.annotations = load_split(root, dataset, split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        sample = self.samples[index]
        image = cv2.cvtColor(cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        masks = []
        for ann_ids in sample.ann_ids:
            mask = np.zeros((height, width), bool)
            for ann_id in ann_ids:
                mask |= annotation_mask(self.annotations[ann_id], height, width)
            masks.append(mask)
        return Sample(image, list(sample.expressions), masks)
