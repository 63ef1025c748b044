"""Bounded hand-over between ROS callbacks and the inference thread.

Callbacks never block and memory never grows with the input rate: each camera keeps only its newest frame (a newer
one replaces it and counts as a drop), and depth frames are kept in a short ring for stamp matching.

A frame is paired with its depth image and camera_info while it waits and while the model runs on it (as
message_filters' ApproximateTime pairs a set when its messages arrive), so a slow model cannot push the frame's depth
out of the ring before the 3D centroid is computed.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    rgb: Any  # H x W x 3 uint8
    header: Any  # std_msgs/Header of the source image
    received: float  # time.monotonic() at receipt
    stamp: float = 0.0  # header stamp in seconds
    depth: Any = None  # the depth Image nearest in stamp seen so far
    depth_gap: float = math.inf  # |depth stamp - frame stamp| of ``depth``
    camera_info: Any = None  # the camera_info current when the frame arrived (or the first one after it)
    stamp_repeated: bool = False  # stamped as the camera's frame before it: its stamp names no single depth image
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def offer_depth(self, stamp: float, depth: Any) -> None:
        """Keep ``depth`` if its stamp is nearer the frame's than the one held."""
        gap = abs(stamp - self.stamp)
        with self._lock:
            if gap < self.depth_gap:
                self.depth, self.depth_gap = depth, gap

    def offer_camera_info(self, camera_info: Any) -> None:
        with self._lock:
            if self.camera_info is None:
                self.camera_info = camera_info

    def paired_depth(self, tolerance: float) -> tuple[Any, float]:
        """(depth Image or None when none is within ``tolerance``, gap of the nearest one seen)."""
        with self._lock:
            depth, gap = self.depth, self.depth_gap
        return (depth if gap <= tolerance else None), gap


class LatestFrameSlot:
    """Holds the newest frame of one camera; ``take`` empties it."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = 0  # frames replaced before the model got to them

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.received += 1

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame

    def peek(self) -> Frame | None:
        with self._lock:
            return self._frame

    def clear(self) -> None:
        with self._lock:
            self._frame = None


class StampMatcher:
    """Keeps the last ``capacity`` messages with their stamps; returns the one nearest a stamp.

    A small stand-in for message_filters' ApproximateTime, which is not installable everywhere.
    """

    def __init__(self, capacity: int = 30) -> None:
        self._items: deque[tuple[float, Any]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.newest_stamp = -math.inf  # of all messages added (stamps of one stream only grow)

    def add(self, stamp: float, item: Any) -> None:
        with self._lock:
            self._items.append((stamp, item))
            self.newest_stamp = max(self.newest_stamp, stamp)

    def nearest(self, stamp: float) -> tuple[float, Any] | None:
        """(stamp, item) nearest ``stamp``, or None when empty."""
        with self._lock:
            return min(self._items, key=lambda entry: abs(entry[0] - stamp), default=None)

    def count_at(self, stamp: float) -> int:
        """How many of the kept messages carry exactly ``stamp``."""
        with self._lock:
            return sum(1 for item_stamp, _ in self._items if item_stamp == stamp)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.newest_stamp = -math.inf

    def __len__(self) -> int:
        return len(self._items)
