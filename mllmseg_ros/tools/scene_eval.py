"""Quality of a model on held-out synthetic scenes: mIoU on present targets, [SEG]/[REJ] accuracy, centroid error.

Used by ``benchmarks/bench_demo_model.py`` and by the test that checks the shipped demo model.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..data.scenes import make_scene
from ..engine.postprocess import mask_geometry, mask_iou

HELD_OUT_START = 5_000_000  # training uses seeds below 1,000,000
CENTROID_TOLERANCE_PX = 10.0


@dataclass
class SceneScores:
    ious: list[float] = field(default_factory=list)  # present targets
    decisions: list[bool] = field(default_factory=list)  # all targets: [SEG] iff present
    centroid_errors: list[float] = field(default_factory=list)  # present targets, px (inf when nothing found)
    # The same, for the centroid of the mask's largest connected part (the node's centroid_of_largest_component):
    # a few stray pixels far from the object move the whole mask's centroid but not this one.
    largest_part_errors: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def summary(self) -> dict:
        errors = np.array(self.centroid_errors)
        largest = np.array(self.largest_part_errors)
        return {
            "present_targets": len(self.ious),
            "all_targets": len(self.decisions),
            "mIoU": float(np.mean(self.ious)) if self.ious else 0.0,
            "seg_rej_accuracy": float(np.mean(self.decisions)) if self.decisions else 0.0,
            "centroid_within_10px": float(np.mean(errors <= CENTROID_TOLERANCE_PX)) if len(errors) else 0.0,
            "largest_part_centroid_within_10px": float(np.mean(largest <= CENTROID_TOLERANCE_PX)) if len(largest) else 0.0,
            "mIoU_by_kind": {k: float(np.mean(v)) for k, v in sorted(self.by_kind.items())},
        }


def evaluate_scenes(segmenter, scenes: int, start: int = HELD_OUT_START, per_scene: int | None = None) -> SceneScores:
    """Every expression (or the first ``per_scene``) of scenes ``start .. start + scenes``, one at a time; each
    frame is encoded once and then asked each question."""
    scores = SceneScores()
    for seed in range(start, start + scenes):
        scene = make_scene(seed)
        for expression in scene.expressions[:per_scene]:
            result = segmenter.segment(scene.image, [expression.text])[0]
            present = expression.target is not None
            scores.decisions.append((result.decision == "SEG") == present)
            if not present:
                continue
            truth = scene.target_mask(expression)
            predicted = result.mask
            iou = mask_iou(predicted, truth)
            scores.ious.append(iou)
            scores.by_kind[expression.kind].append(iou)
            centre = np.array(mask_geometry(truth).centroid)
            if result.centroid is None:
                scores.centroid_errors.append(float("inf"))
                scores.largest_part_errors.append(float("inf"))
            else:
                scores.centroid_errors.append(float(np.linalg.norm(np.array(result.centroid) - centre)))
                part_centre = np.array(mask_geometry(predicted, centroid_of_largest_component=True).centroid)
                scores.largest_part_errors.append(float(np.linalg.norm(part_centre - centre)))
    return scores
