"""From the model's square probability map to what a robot uses: mask, box, centroid and area at image resolution.

numpy/OpenCV functions on the host, and ``masks_on_device``, the same in torch where the model runs (a GPU); no ROS,
so the node, the CLI and the tests share them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F


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


@dataclass
class SegmentationResult:
    """One target of one frame. Pixel coordinates are in the ORIGINAL image (x right, y down)."""

    expression: str  # the referring expression actually sent to the model
    found: bool  # decision [SEG] and a non-empty mask
    decision: str  # "SEG" or "REJ": the LLM's answer at the target's slot
    # P(target found), in [0, 1], for found and not-found alike: the smaller of seg_probability (the decision) and the
    # probability map's peak (whether any pixel is the target). At the default threshold 0.5, found <=> > 0.5.
    confidence: float
    # float32 sigmoid map: H x W, or the model's S x S map, brought to H x W when ``probability`` is first read (on a
    # GPU the mask is made on the device, and a full-size map would cross to the host for nothing: the node never
    # reads it)
    probability_map: np.ndarray
    mask: np.ndarray  # H x W bool, probability > threshold (all False when not found)
    bbox: tuple[int, int, int, int] | None  # (x, y, w, h) of the mask
    centroid: tuple[float, float] | None  # (x, y) of the mask (or of its largest component, if configured)
    area: int  # pixels in the mask
    seg_probability: float = 0.0  # P([SEG]) from a softmax over the [SEG] and [REJ] logits at the slot, in [0, 1]

    @cached_property
    def probability(self) -> np.ndarray:
        """H x W float32 sigmoid map (the mask is ``probability > threshold``)."""
        return resize_probability(self.probability_map, *self.mask.shape)


def found_confidence(seg_probability: float, peak: float, mask_empty: bool, threshold: float) -> float:
    """P(target found), estimated from its two parts: the LLM answers [SEG] (``seg_probability``) and some pixel is the
    target (``peak``, the probability map's highest value). The smaller of the two (the joint probability can be no
    higher than either): a [REJ] has it below 0.5, and so has a [SEG] whose mask came out empty at a 0.5 threshold.
    ``peak`` is the model's square map's; an image-sized map resized from it never exceeds it, and where its mask is
    empty it stayed at or below ``threshold`` everywhere, so the peak counts as at most that."""
    if mask_empty:
        peak = min(peak, threshold)
    return min(seg_probability, peak)


def masks_on_device(
    probabilities: torch.Tensor, sizes: Sequence[tuple[int, int]], threshold: float, keep: torch.Tensor
) -> list[tuple[np.ndarray, MaskGeometry]]:
    """n square probability maps (n x S x S, on any device) -> per map its mask at its image's size (height, width)
    and the mask's area, box and centroid, computed on that device: only the masks and a few integers cross to the
    host. Maps with ``keep`` False get an empty mask.

    The same as ``resize_probability`` + threshold + ``mask_geometry`` on the host: torch's bilinear resize with
    half-pixel centres is OpenCV's (values within float32 rounding, so a pixel within that of the threshold may
    differ), and the geometry comes from exact integer sums (the centroid is the moments' m10/m00, m01/m00).
    """
    results: list[tuple[np.ndarray, MaskGeometry] | None] = [None] * len(sizes)
    for height, width in dict.fromkeys(sizes):  # frames of one size together
        index = [k for k, size in enumerate(sizes) if size == (height, width)]
        selected = probabilities[index].float()[:, None]  # m x 1 x S x S
        if selected.shape[-2:] != (height, width):
            selected = F.interpolate(selected, size=(height, width), mode="bilinear", align_corners=False)
        masks = (selected[:, 0] > threshold) & keep[index, None, None]  # m x H x W
        rows, columns = masks.sum(2), masks.sum(1)  # m x H, m x W pixel counts
        area = rows.sum(1)
        first_row, first_column = (rows > 0).int().argmax(1), (columns > 0).int().argmax(1)
        last_row = height - 1 - (rows > 0).flip(1).int().argmax(1)
        last_column = width - 1 - (columns > 0).flip(1).int().argmax(1)
        m10 = (columns * torch.arange(width, device=masks.device)).sum(1)
        m01 = (rows * torch.arange(height, device=masks.device)).sum(1)
        numbers = torch.stack([area, first_column, first_row, last_column, last_row, m10, m01], 1).tolist()
        for k, mask, (pixels, x0, y0, x1, y1, x_sum, y_sum) in zip(index, masks.cpu().numpy(), numbers):
            geometry = (MaskGeometry(pixels, (x0, y0, x1 - x0 + 1, y1 - y0 + 1), (x_sum / pixels, y_sum / pixels))
                        if pixels else MaskGeometry(0, None, None))
            results[k] = (mask, geometry)
    return results


def intersection_and_union(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Pixels in both and in either of two boolean masks of one size."""
    return int(np.logical_and(a, b).sum()), int(np.logical_or(a, b).sum())


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one size; 1.0 when both are empty (they agree)."""
    inter, union = intersection_and_union(predicted, truth)
    return inter / union if union else 1.0
