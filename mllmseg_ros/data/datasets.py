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


class SyntheticDataset:
    """Scenes ``make_scene(seed)`` for seeds in [start, stop), each sample asking several expressions about its scene
    (``_fixed`` or, with ``varied_questions``, ``_varied``)."""

    def __init__(self, start: int, stop: int, targets: int = 3, absent_fraction: float = 0.2, camera: Camera = Camera(),
                 varied_questions: bool = False, single_question_fraction: float = 0.0,
                 single_absent_fraction: float | None = None, absent_kinds: str = "colour",
                 kinds: tuple[str, ...] = ()) -> None:
        self.start, self.stop, self.targets, self.absent_fraction = start, stop, targets, absent_fraction
        self.camera, self.varied_questions = camera, varied_questions
        self.single_question_fraction = single_question_fraction
        self.absent_kinds = absent_kinds  # how absent objects are worded (make_scene)
        self.kinds = tuple(kinds)  # ask present targets only in these kinds (empty: every kind)
        # How often a lone question names an absent object (None: absent_fraction).
        self.single_absent_fraction = absent_fraction if single_absent_fraction is None else single_absent_fraction

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> Sample:
        seed = self.start + index % len(self)
        scene = make_scene(seed, self.camera, absent_kinds=self.absent_kinds)
        rng = np.random.default_rng(seed + 1_000_003)
        present = [e for e in scene.expressions if e.target is not None]
        if self.kinds:  # a scene without an expression of these kinds keeps all of its own
            present = [e for e in present if e.kind in self.kinds] or present
        absent = [e for e in scene.expressions if e.target is None]
        chosen = self._varied(rng, present, absent) if self.varied_questions else self._fixed(rng, present, absent)
        return Sample(scene.image, [e.text for e in chosen], [scene.target_mask(e) for e in chosen])

    def _fixed(self, rng: np.random.Generator, present: list, absent: list) -> list:
        """``targets`` present expressions, plus one absent one in ``absent_fraction`` of the samples; or, in
        ``single_question_fraction`` of the samples, one question alone (absent with probability
        ``single_absent_fraction``), as a robot asks. The extra draw comes last, so with 0 the samples are those of the earlier data exactly."""
        rng.shuffle(present)
        chosen = present[: min(self.targets, len(present))]
        if absent and (not chosen or rng.random() < self.absent_fraction):
            chosen.append(absent[int(rng.integers(len(absent)))])
        rng.shuffle(chosen)
        if self.single_question_fraction and rng.random() < self.single_question_fraction:
            pool = self._question_pool(rng, present, absent, self.single_absent_fraction)
            if pool:
                chosen = [pool[int(rng.integers(len(pool)))]]
        return chosen

    def _question_pool(self, rng: np.random.Generator, present: list, absent: list, absent_fraction: float) -> list:
        """Where the next question comes from: the absent names with probability ``absent_fraction`` (always when
        nothing is present), otherwise the present expressions."""
        use_absent = bool(absent) and (not present or rng.random() < absent_fraction)
        return absent if use_absent else present

    def _varied(self, rng: np.random.Generator, present: list, absent: list) -> list:
        """1..``targets`` expressions, each one absent with probability ``absent_fraction``: single questions and
        absent-only conversations, what a robot is asked most, are in the data too. (A model trained on ``_fixed``
        data never answers [REJ] when asked about one absent object alone.)"""
        chosen = []
        for _ in range(int(rng.integers(1, self.targets + 1))):
            pool = self._question_pool(rng, present, absent, self.absent_fraction)
            if not pool:
                break
            chosen.append(pool.pop(int(rng.integers(len(pool)))))
        return chosen


class FolderDataset:
    """The user folder format described in the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / "samples.jsonl"
        if not index.is_file():
            raise ValueError(f"{index} not found (see the training data format in the README)")
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
