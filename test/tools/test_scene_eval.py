"""The held-out scene metrics, on a stub segmenter whose answers are known."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mllmseg_ros.data.scenes import make_scene
from mllmseg_ros.tools.scene_eval import evaluate_scenes

START, SCENES = 5_000_000, 2


class TruthWithAStrayBlob:
    """Answers [SEG] for every expression, with the true mask plus a square of half its area in the image corner
    farthest from it."""

    def __init__(self) -> None:
        scenes = [make_scene(seed) for seed in range(START, START + SCENES)]
        self.scenes = {scene.image.tobytes(): scene for scene in scenes}

    def segment(self, image, expressions):
        scene = self.scenes[image.tobytes()]
        expression = next(e for e in scene.expressions if e.text == expressions[0])
        if expression.target is None:
            return [SimpleNamespace(decision="SEG", mask=np.zeros(image.shape[:2], bool), centroid=None)]
        mask = scene.target_mask(expression) | stray_square(scene.target_mask(expression))
        ys, xs = np.nonzero(mask)
        return [SimpleNamespace(decision="SEG", mask=mask, centroid=(xs.mean(), ys.mean()))]


def test_metrics_of_known_answers():
    stub = TruthWithAStrayBlob()
    summary = evaluate_scenes(stub, SCENES, START).summary()
    scenes = list(stub.scenes.values())
    present = [(s, e) for s in scenes for e in s.expressions if e.target is not None]
    absent = sum(e.target is None for s in scenes for e in s.expressions)
    assert summary["present_targets"] == len(present) and summary["all_targets"] == len(present) + absent
    assert summary["seg_rej_accuracy"] == pytest.approx(len(present) / (len(present) + absent))  # never [REJ]
    expected_iou = [s.target_mask(e).sum() / (s.target_mask(e) | stray_square(s.target_mask(e))).sum() for s, e in present]
    assert summary["mIoU"] == pytest.approx(np.mean(expected_iou))
    # The stray blob drags the whole mask's centroid away; the largest part is the object itself.
    assert summary["largest_part_centroid_within_10px"] == 1.0
    assert summary["centroid_within_10px"] == 0.0


def stray_square(truth: np.ndarray) -> np.ndarray:
    height, width = truth.shape
    ys, xs = np.nonzero(truth)
    side = int(np.sqrt(truth.sum() / 2))
    top = 0 if ys.mean() > height / 2 else height - side
    left = 0 if xs.mean() > width / 2 else width - side
    square = np.zeros_like(truth)
    square[top: top + side, left: left + side] = True
    assert not (square & truth).any()
    return square
