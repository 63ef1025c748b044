"""Pixel boxes: widening one and clamping it to the image, the one place the tracker's windows are cut from."""
from __future__ import annotations

Box = tuple[int, int, int, int]


def widened_box(box: Box, margin: int | tuple[int, int], shape: tuple[int, ...]) -> Box:
    """``box`` (x, y, w, h in pixels, as ``cv2.boundingRect`` gives it) widened by ``margin`` pixels on every side, or
    by (mx, my) across and down, and clamped to an image of ``shape`` (height, width, ...): (x0, y0, x1, y1) with the
    ends exclusive, ready for ``image[y0:y1, x0:x1]``."""
    x, y, w, h = box
    mx, my = (margin, margin) if isinstance(margin, int) else margin
    height, width = shape[:2]
    return max(0, x - mx), max(0, y - my), min(width, x + w + mx), min(height, y + h + my)

