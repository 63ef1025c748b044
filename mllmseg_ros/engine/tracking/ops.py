"""Small pure functions of the mask tracker: mask counts and centres, homographies at two resolutions, the thread's
priority."""
from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from ..boxes import widened_box


def lower_this_thread_priority(niceness: int = 5) -> bool:
    """Give the calling thread a higher nice value (Linux threads are scheduled one by one), so that on a busy CPU the
    model's threads come first and tracking takes what is left. False where the OS does not allow it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        return True
    except (AttributeError, OSError):
        return False


def count(mask: np.ndarray) -> int:
    """Set pixels of a 2-D bool mask; OpenCV's count is ~15x faster than numpy's sum on a 640 x 480 frame."""
    return cv2.countNonZero(mask.view(np.uint8))


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) around a 2-D bool mask's set pixels; w == 0 when it is empty."""
    return cv2.boundingRect(mask.view(np.uint8))


def coarse_positions(positions: np.ndarray, stride: int) -> np.ndarray:
    """``positions[::stride, ::stride] / stride`` for an h x w x 2 float32 map: every ``stride``-th pixel, in units of
    the coarse grid. Nearest-neighbour resizing by a whole factor picks exactly those pixels, several times faster than
    numpy's strided slice of a two-channel image (where the size divides and 1 / stride is exact; else the slice)."""
    height, width = positions.shape[:2]
    if height % stride or width % stride or stride & (stride - 1):
        return positions[::stride, ::stride] / np.float32(stride)
    picked = cv2.resize(positions, (width // stride, height // stride), interpolation=cv2.INTER_NEAREST)
    return cv2.multiply(picked, (1.0 / stride, 1.0 / stride, 0.0, 0.0))


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def resolution_change(scale_x: float, scale_y: float) -> np.ndarray:
    """3 x 3 map from one image's pixels to another's ``scale`` times larger (pixel centres stay pixel centres)."""
    return np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5], [0.0, scale_y, 0.5 * scale_y - 0.5], [0.0, 0.0, 1.0]])


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """N x 2 points through a 3 x 3 homography."""
    if len(points) == 0:
        return points.reshape(0, 2).astype(np.float32)
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography)[:, 0].astype(np.float32)


def warp_into(source: np.ndarray, homography: np.ndarray, region: tuple[int, int, int, int],
              interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``source`` seen through ``homography`` (source pixels -> target pixels), only inside ``region`` of the target
    image (x0, y0, x1, y1): what lies there, with zeros outside the source."""
    x0, y0, x1, y1 = region
    inverse = np.linalg.inv(homography) @ translation(x0, y0)  # region pixel -> source pixel
    return cv2.warpPerspective(source, inverse, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def bounds(homography: np.ndarray, box_xywh: tuple[int, int, int, int], size: tuple[int, int], margin: int = 0
           ) -> tuple[int, int, int, int] | None:
    """The part of an image of ``size`` (w, h) that a source box, through ``homography``, covers (widened by
    ``margin``), as (x0, y0, x1, y1); None where it lies outside the image."""
    x, y, w, h = box_xywh
    corners = project(homography, np.float32([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
    if not np.isfinite(corners).all():
        return None
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = widened_box((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), margin, (size[1], size[0]))
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None
