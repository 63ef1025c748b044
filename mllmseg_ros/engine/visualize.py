"""Debug overlay shared by the CLI and the ROS node: tinted masks, boxes, centroid crosses and labels."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# Distinct colours (RGB) for successive targets.
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230)]
MASK_ALPHA = 0.45


def draw_overlay(image_rgb: np.ndarray, results: Sequence) -> np.ndarray:
    """H x W x 3 uint8 RGB with every found target drawn; targets not found are listed in the top-left corner."""
    canvas = image_rgb.copy()
    scale = max(0.4, min(image_rgb.shape[:2]) / 800)
    thickness = max(1, int(round(2 * scale)))
    missing = []
    for index, result in enumerate(results):
        colour = PALETTE[index % len(PALETTE)]
        if not result.found:
            missing.append(f"{result.expression}: not found ({result.confidence:.2f})")
            continue
        tint = np.array(colour, dtype=np.float32)
        canvas[result.mask] = (canvas[result.mask] * (1 - MASK_ALPHA) + tint * MASK_ALPHA).astype(np.uint8)
        x, y, w, h = result.bbox
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        cx, cy = (int(round(c)) for c in result.centroid)
        cv2.drawMarker(canvas, (cx, cy), colour, cv2.MARKER_CROSS, int(20 * scale), thickness)
        label = f"{result.expression} {result.confidence:.2f}"
        cv2.putText(canvas, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, colour, thickness)
    for row, text in enumerate(missing):
        cv2.putText(canvas, text, (4, int(18 * scale) * (row + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), thickness)
    return canvas
