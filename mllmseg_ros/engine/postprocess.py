"""From the model's square probability map to what a robot uses: mask, box, centroid and area at image resolution.

Pure numpy/OpenCV functions, no model and no ROS, so the node, the CLI and the tests share them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def resize_probability(probability: np.ndarray, height: int, width: int) -> np.ndarray:
    """S x S float32 -> height x width float32, bilinear with half-pixel centres (the official evaluation's
    ``F.interpolate(..., mode="bilinear", align_corners=False)``)."""
    if probability.shape == (height, width):
        return probability.astype(np.float32, copy=False)
    return cv2.resize(probability.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (the mask itself when empty)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:  # background + at most one component
        return mask
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


@dataclass(frozen=True)
class MaskGeometry:
    area: int  # pixels inside the mask
    bbox: tuple[int, int, int, int] | None  # (x, y, w, h) in pixels, None for an empty mask
    centroid: tuple[float, float] | None  # (x, y) in pixels (pixel centres at integer coordinates), None when empty


def mask_geometry(mask: np.ndarray, centroid_of_largest_component: bool = False) -> MaskGeometry:
    """Area, bounding box and centroid of a boolean H x W mask."""
    mask_u8 = np.ascontiguousarray(mask).view(np.uint8)
    area = int(cv2.countNonZero(mask_u8))
    if area == 0:
        return MaskGeometry(0, None, None)
    x, y, w, h = cv2.boundingRect(mask_u8)
    # Moments and components of the box alone: over a whole frame cv2.moments costs several times as much, and the
    # tracking thread publishes a mask every camera frame.
    box = mask[y:y + h, x:x + w]
    region = largest_component(box) if centroid_of_largest_component else box
    moments = cv2.moments(np.ascontiguousarray(region).view(np.uint8), binaryImage=True)
    centroid = (x + moments["m10"] / moments["m00"], y + moments["m01"] / moments["m00"])
    return MaskGeometry(area, (int(x), int(y), int(w), int(h)), (float(centroid[0]), float(centroid[1])))


def intersection_and_union(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Pixels in both and in either of two boolean masks of one size."""
    return int(np.logical_and(a, b).sum()), int(np.logical_or(a, b).sum())


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one size; 1.0 when both are empty (they agree)."""
    inter, union = intersection_and_union(predicted, truth)
    return inter / union if union else 1.0
