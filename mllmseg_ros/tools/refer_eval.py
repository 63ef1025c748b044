"""``mllmseg-ros eval``: the paper's RES metrics on RefCOCO / RefCOCO+ / RefCOCOg (and gRefCOCO) in the REFER layout.

Layout (as the REFER toolkit and the official MLLMSeg evaluation expect):
    REFER_ROOT/<dataset>/refs(unc).p   (refcocog: refs(umd).p; grefcoco: grefs(unc).json)
    REFER_ROOT/<dataset>/instances.json
    REFER_ROOT/images/mscoco/images/train2014/COCO_train2014_<id>.jpg
Metrics: cIoU = sum of intersections / sum of unions over all expressions; gIoU = mean per-expression IoU (and the
official RES script's per-image average); the [SEG]/[REJ] accuracy; and, for expressions with no target
(gRefCOCO), the no-target accuracy ([REJ] answered). By default all expressions of an image go into one conversation, as the official
evaluation does; ``per_expression`` asks one at a time (the frame is encoded once either way).
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import cv2
import numpy as np

from ..engine.prompt import clean_expression

REFS_FILES = {"refcoco": "refs(unc).p", "refcoco+": "refs(unc).p", "refcocog": "refs(umd).p", "grefcoco": "grefs(unc).json"}
IMAGE_DIR = Path("images") / "mscoco" / "images" / "train2014"


class MaskSource(Protocol):
    """What the evaluation needs from a segmenter (``mllmseg_ros.engine.Segmenter`` fits)."""

    def segment(self, image: np.ndarray, expressions: Sequence[str]) -> list: ...


class _PlainUnpickler(pickle.Unpickler):
    """refs(*).p files hold only dicts, lists, strings and numbers: refuse anything that would import code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a REFER refs file")


def load_refs(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with open(path, "rb") as handle:
        return _PlainUnpickler(handle, encoding="latin1").load()


@dataclass
class ReferSample:
    image_path: Path
    expressions: list[str]
    ann_ids: list[list[int]]  # annotations of each expression's target (empty: no target, gRefCOCO)


def load_split(root: str | Path, dataset: str, split: str) -> tuple[list[ReferSample], dict]:
    """Samples grouped by image (all expressions of one image together) and the COCO annotations by id."""
    root = Path(root)
    if dataset not in REFS_FILES:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(REFS_FILES)}")
    refs_path = root / dataset / REFS_FILES[dataset]
    instances_path = root / dataset / "instances.json"
    for path in (refs_path, instances_path):
        if not path.is_file():
            raise ValueError(f"{path} not found (expected the REFER layout, see `mllmseg-ros eval --help`)")
    refs = [r for r in load_refs(refs_path) if r["split"] == split]
    if not refs:
        raise ValueError(f"no refs with split {split!r} in {refs_path}")
    instances = json.loads(instances_path.read_text())
    annotations = {a["id"]: a for a in instances["annotations"]}
    files = {img["id"]: img["file_name"] for img in instances["images"]}
    by_image: dict[int, ReferSample] = {}
    for ref in refs:
        image_id = ref["image_id"]
        sample = by_image.setdefault(image_id, ReferSample(root / IMAGE_DIR / files[image_id], [], []))
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        ann_ids = [a for a in ann_ids if a in annotations]  # gRefCOCO marks "no target" with -1
        for sentence in ref["sentences"]:
            sample.expressions.append(clean_expression(sentence["sent"]))
            sample.ann_ids.append(ann_ids)
    return list(by_image.values()), annotations


def annotation_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    """Polygon or RLE COCO segmentation -> H x W bool, decoded by pycocotools."""
    from pycocotools import mask as coco_mask

    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):  # polygons
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return coco_mask.decode(rle).astype(bool)


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
        inter = float(np.logical_and(predicted, target).sum())
        union = float(np.logical_or(predicted, target).sum())
        return inter, union, inter / union, decision_ok, 0, 0

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
