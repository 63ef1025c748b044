"""``mllmseg-ros eval``: the paper's RES metrics on RefCOCO / RefCOCO+ / RefCOCOg (and gRefCOCO) in the REFER layout
(read by ``mllmseg_ros.data.refer``, which describes it).

Metrics: cIoU = sum of intersections / sum of unions over all expressions; gIoU = mean per-expression IoU (and the
official RES script's per-image average); the [SEG]/[REJ] accuracy; and, for expressions with no target
(gRefCOCO), the no-target accuracy ([REJ] answered). By default all expressions of an image go into one conversation, as the official
evaluation does; ``per_expression`` asks one at a time (the frame is encoded once either way).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import cv2
import numpy as np

from ..data.refer import ReferSample, annotation_mask
from ..engine.postprocess import intersection_and_union


class MaskSource(Protocol):
    """What the evaluation needs from a segmenter (``mllmseg_ros.engine.Segmenter`` fits)."""

    def segment(self, image: np.ndarray, expressions: Sequence[str]) -> list: ...


MASK_THRESHOLD = 0.5  # the official evaluation: probability >= 0.5 after bilinear resizing to the image


@dataclass
class Metrics:
    """Accumulates the official metrics. Masks count whatever the [SEG]/[REJ] answer (the official RES evaluation
    does so); for an expression with no target (gRefCOCO) a [REJ] answer scores IoU 1, a [SEG] answer IoU 0 and adds
    its predicted area to the union, as the official GRES evaluation does."""

    intersection: float = 0.0
    union: float = 0.0
    ious: list[float] = field(default_factory=list)
    image_mean_ious: list[float] = field(default_factory=list)
    decisions_correct: int = 0
    no_target_total: int = 0
    no_target_correct: int = 0

    def add_image(self, rows: list[tuple[float, float, float, int, int, int]]) -> None:
        """rows: (intersection, union, iou, decision correct, no-target, no-target correct) per expression."""
        for inter, union, iou, decision_ok, no_target, no_target_ok in rows:
            self.intersection += inter
            self.union += union
            self.ious.append(iou)
            self.decisions_correct += decision_ok
            self.no_target_total += no_target
            self.no_target_correct += no_target_ok
        if rows:
            self.image_mean_ious.append(float(np.mean([row[2] for row in rows])))

    @staticmethod
    def score(predicted: np.ndarray, target: np.ndarray, decision: str) -> tuple[float, float, float, int, int, int]:
        has_target = bool(target.any())
        decision_ok = int((decision == "SEG") == has_target)
        if not has_target:
            if decision == "REJ":
                return 0.0, 0.0, 1.0, decision_ok, 1, 1
            return 0.0, float(predicted.sum()), 0.0, decision_ok, 1, 0
        inter, union = intersection_and_union(predicted, target)
        return float(inter), float(union), inter / union, decision_ok, 0, 0

    def summary(self) -> dict:
        n = len(self.ious)
        return {
            "expressions": n,
            "images": len(self.image_mean_ious),
            "cIoU": self.intersection / self.union if self.union else 0.0,
            "gIoU": float(np.mean(self.ious)) if n else 0.0,
            # the official RES script averages per image first, then over images
            "gIoU_image_mean": float(np.mean(self.image_mean_ious)) if self.image_mean_ious else 0.0,
            "seg_rej_accuracy": self.decisions_correct / n if n else 0.0,
            "no_target_accuracy": self.no_target_correct / self.no_target_total if self.no_target_total else None,
        }


def evaluate(
    source: MaskSource,
    samples: Iterable[ReferSample],
    annotations: dict,
    per_expression: bool = False,
    progress_file: Path | None = None,
    show_progress: bool = True,
) -> Metrics:
    """Run ``source`` on every sample; with ``progress_file`` (JSON lines), finished images are skipped on a rerun."""
    from tqdm import tqdm

    metrics = Metrics()
    done: set[str] = set()
    if progress_file is not None and progress_file.is_file():
        for line in progress_file.read_text().splitlines():
            record = json.loads(line)
            done.add(record["image"])
            metrics.add_image([tuple(row) for row in record["rows"]])
    bar = tqdm(list(samples), disable=not show_progress, unit="image")
    for sample in bar:
        if str(sample.image_path) in done:
            continue
        bgr = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {sample.image_path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        if per_expression:
            results = [source.segment(rgb, [expression])[0] for expression in sample.expressions]
        else:
            results = source.segment(rgb, sample.expressions)
        rows = []
        for result, ann_ids in zip(results, sample.ann_ids):
            target = np.zeros((height, width), bool)
            for ann_id in ann_ids:
                target |= annotation_mask(annotations[ann_id], height, width)
            rows.append(Metrics.score(result.probability >= MASK_THRESHOLD, target, result.decision))
        metrics.add_image(rows)
        if progress_file is not None:
            with open(progress_file, "a") as handle:
                handle.write(json.dumps({"image": str(sample.image_path), "rows": rows}) + "\n")
        bar.set_postfix(cIoU=f"{metrics.summary()['cIoU']:.4f}")
    return metrics
