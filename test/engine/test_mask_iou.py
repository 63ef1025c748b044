"""The one IoU of the evaluations (bag, scene, RefCOCO): intersection and union of boolean masks."""
from __future__ import annotations

import numpy as np

from mllmseg_ros.engine.postprocess import intersection_and_union, mask_iou


def test_iou_of_overlapping_masks():
    a = np.zeros((4, 6), bool)
    b = np.zeros((4, 6), bool)
    a[:, :3] = True  # 12 pixels
    b[:, 2:4] = True  # 8 pixels, 4 of them in a
    assert intersection_and_union(a, b) == (4, 16)
    assert mask_iou(a, b) == 0.25
    assert mask_iou(a, a) == 1.0 and mask_iou(a, ~a) == 0.0


def test_two_empty_masks_agree():
    empty = np.zeros((3, 3), bool)
    assert intersection_and_union(empty, empty) == (0, 0)
    assert mask_iou(empty, empty) == 1.0
