"""Small pure functions of the mask tracker (engine/tracking.py): motion fits, image-edge coverage, masked matching."""
from __future__ import annotations

import threading

import cv2
import numpy as np


def lower_this_thread_priority(niceness: int = 5) -> bool:
    """Give the calling thread a higher nice value (Linux threads are scheduled one by one), so that on a busy CPU the
    model's threads come first and tracking takes what is left. False where the OS does not allow it."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        return True
    except (AttributeError, OSError):
        return False


def count(mask: np.ndarray) -> int:
    """Set pixels of a 2-D bool mask; OpenCV's count is ~15x faster than numpy's sum on a 640 x 480 frame, and the
    tracker counts a dozen masks a frame."""
    return cv2.countNonZero(mask.view(np.uint8))


def centre(mask: np.ndarray) -> np.ndarray | None:
    """(x, y) mean of a 2-D bool mask's set pixels (image moments: no index arrays), None when empty."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))  # moments of the box alone: a small target in a large frame
    moments = cv2.moments(mask[y:y + h, x:x + w].view(np.uint8), binaryImage=True)
    return None if moments["m00"] == 0 else np.array([x + moments["m10"] / moments["m00"], y + moments["m01"] / moments["m00"]])


def coarse_positions(positions: np.ndarray, stride: int) -> np.ndarray:
    """``positions[::stride, ::stride] / stride`` for an h x w x 2 float32 map: every ``stride``-th pixel, in units of
    the coarse grid. Nearest-neighbour resizing by a whole factor picks exactly those pixels, several times faster than
    numpy's strided slice of a two-channel image (where the size divides and 1 / stride is exact; else the slice)."""
    height, width = positions.shape[:2]
    if height % stride or width % stride or stride & (stride - 1):
        return positions[::stride, ::stride] / np.float32(stride)
    picked = cv2.resize(positions, (width // stride, height // stride), interpolation=cv2.INTER_NEAREST)
    return cv2.multiply(picked, (1.0 / stride, 1.0 / stride, 0.0, 0.0))


def affine_fit(xs: np.ndarray, ys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """3 x K least-squares fit of ``values`` (N x K) as ``[x, y, 1] @ fit`` over N points. Solved from the 3 x 3
    normal equations around the points' mean (well conditioned there): a tenth of the cost of ``lstsq`` on N x 3."""
    x, y = xs.astype(np.float64), ys.astype(np.float64)
    mean_x, mean_y = x.mean(), y.mean()
    design = np.stack([x - mean_x, y - mean_y, np.ones_like(x)], axis=1)
    normal = design.T @ design
    rhs = design.T @ values.astype(np.float64)
    try:
        fit = np.linalg.solve(normal, rhs)
    except np.linalg.LinAlgError:  # the points lie on a line: the least-squares solution of least norm
        fit = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    fit[2] -= mean_x * fit[0] + mean_y * fit[1]  # back to uncentred coordinates
    return fit


def area_scale(xs: np.ndarray, ys: np.ndarray, dest_x: np.ndarray, dest_y: np.ndarray) -> float:
    """How much the target's area changed in one step: the determinant of the affine motion fitted to its pixels."""
    if len(xs) < 6:
        return 1.0
    solution = affine_fit(xs, ys, np.stack([dest_x, dest_y], axis=1))
    scale = float(abs(np.linalg.det(solution[:2, :2])))
    return scale if np.isfinite(scale) and 0.5 < scale < 2.0 else 1.0


def coverage(position: np.ndarray, size: int) -> np.ndarray:
    """How much of a one-pixel square centred at ``position`` lies inside [-0.5, size - 0.5] along one axis: counting
    whole pixels would say a mask leaves by 2 columns a step when it moves 1.5."""
    return np.clip(np.minimum(position + 0.5, size - 0.5) - np.maximum(position - 0.5, -0.5), 0.0, 1.0)


def match_shift(image: np.ndarray, mask: np.ndarray, target: np.ndarray, guess: np.ndarray, radius: int, tolerance: float):
    """Where the pixels of ``image`` under ``mask`` are in ``target``, searched within ``radius`` of ``guess`` (dx, dy).

    Returns (shift (2,), mean squared difference there, the same at ``guess``, the fraction of the pixels within
    ``tolerance`` grey levels there) or None when the search window does not fit. Masked template matching (OpenCV):
    the object's own pixels, not its surroundings, decide."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    height, width = target.shape
    gx, gy = int(round(x + guess[0])), int(round(y + guess[1]))
    x0, y0 = max(0, gx - radius), max(0, gy - radius)
    x1, y1 = min(width, gx + w + radius), min(height, gy + h + radius)
    if x1 - x0 < w + 2 or y1 - y0 < h + 2 or w < 3 or h < 3:
        return None
    template = image[y:y + h, x:x + w].astype(np.float32)
    weights = mask[y:y + h, x:x + w].astype(np.float32)
    costs = cv2.matchTemplate(target[y0:y1, x0:x1].astype(np.float32), template, cv2.TM_SQDIFF, mask=weights)
    costs /= max(1.0, float(weights.sum()))
    best, _, (bx, by), _ = cv2.minMaxLoc(costs)
    sub = np.zeros(2)
    for axis, (a, b, c) in enumerate(((costs[by, bx - 1], best, costs[by, bx + 1]) if 0 < bx < costs.shape[1] - 1 else (0, 0, 0),
                                      (costs[by - 1, bx], best, costs[by + 1, bx]) if 0 < by < costs.shape[0] - 1 else (0, 0, 0))):
        curvature = a - 2 * b + c
        if curvature > 1e-6:  # a parabola through the three costs around the best: sub-pixel shift
            sub[axis] = min(max(float(0.5 * (a - c) / curvature), -0.5), 0.5)
    gx_local, gy_local = min(max(gx - x0, 0), costs.shape[1] - 1), min(max(gy - y0, 0), costs.shape[0] - 1)
    on_edge = ((bx == 0 and x0 > 0) or (bx == costs.shape[1] - 1 and x1 < width)
               or (by == 0 and y0 > 0) or (by == costs.shape[0] - 1 and y1 < height))
    if on_edge:  # the best place is on the search window's edge (not the image's): no optimum inside it, stay put
        bx, by, sub = gx_local, gy_local, np.zeros(2)
        best = float(costs[by, bx])
    shift = np.array([x0 + bx + sub[0] - x, y0 + by + sub[1] - y])
    there = target[y0 + by:y0 + by + h, x0 + bx:x0 + bx + w].astype(np.float32)
    alike = float(((np.abs(there - template) <= tolerance) & (weights > 0)).sum() / max(1.0, float(weights.sum())))
    return shift, float(best), float(costs[gy_local, gx_local]), alike

