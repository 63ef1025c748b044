"""Bounded hand-over between ROS callbacks and the inference thread.

Callbacks never block and memory never grows with the input rate: each camera keeps only its newest frame (a newer
one replaces it and counts as a drop), and depth frames are kept in a short ring for stamp matching.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    rgb: Any  # H x W x 3 uint8
    header: Any  # std_msgs/Header of the source image
    received: float  # time.monotonic() at receipt


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
    """Keeps the last ``capacity`` messages with their stamps; returns the one nearest a stamp within a tolerance.

    A small stand-in for message_filters' ApproximateTime, which is not installable everywhere.
    """

    def __init__(self, capacity: int = 30) -> None:
        self._items: deque[tuple[float, Any]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, stamp: float, item: Any) -> None:
        with self._lock:
            self._items.append((stamp, item))

    def nearest(self, stamp: float, tolerance: float) -> Any | None:
        with self._lock:
            best = min(self._items, key=lambda entry: abs(entry[0] - stamp), default=None)
        if best is None or abs(best[0] - stamp) > tolerance:
            return None
        return best[1]

    def __len__(self) -> int:
        return len(self._items)
