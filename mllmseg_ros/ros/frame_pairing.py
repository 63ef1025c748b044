"""What each colour frame of one camera is paired with, as the messages arrive: its depth image nearest in stamp and
the camera_info of its time, while it waits in the slot and while the model runs on it; the hand-over of the newest
frame to the inference thread; and the wait for a frame's own depth image.

No ROS here: the camera's callbacks (ros/camera_stream.py) convert the messages and pass them on with their stamps
in seconds, so the pairing is tested with plain values and a fake clock (test/ros/test_frame_pairing.py).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .buffers import Frame, LatestFrameSlot, StampMatcher

DEPTH_SILENT_S = 1.0  # a depth stream this far behind a frame's stamp has stopped; do not wait for it


class FramePairing:
    """One camera's newest frame, its depth and camera_info streams, and the frame the model is working on.

    ``clock`` gives the frames' arrival times (time.monotonic), ``sleep`` the wait's polls: tests pass a fake pair.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.clock, self.sleep = clock, sleep
        self.slot = LatestFrameSlot()
        self.depth = StampMatcher()
        self.camera_info: Any = None  # the newest camera_info
        self.latest: Frame | None = None  # last frame, for the service's "latest image"
        self.in_flight: Frame | None = None  # the frame the model is working on (still offered depth)
        self._lock = threading.Lock()  # a depth arriving as the worker takes a frame reaches it either way
        self._last_stamp: float | None = None  # of the previous colour frame: a repeat cannot pick a depth image

    def frame_arrived(self, rgb: Any, header: Any, stamp: float) -> Frame:
        """A converted colour frame stamped ``stamp`` (seconds): into the slot, with the nearest depth seen so far."""
        frame = Frame(rgb=rgb, header=header, received=self.clock(), stamp=stamp, camera_info=self.camera_info)
        frame.stamp_repeated, self._last_stamp = frame.stamp == self._last_stamp, frame.stamp
        with self._lock:
            self.slot.put(frame)
        # After the put: a depth image that came before is found here, one that comes later is offered to the slot.
        if (nearest := self.depth.nearest(frame.stamp)) is not None:
            frame.offer_depth(*nearest)
        self.latest = frame
        return frame

    def depth_arrived(self, stamp: float, depth: Any) -> None:
        """A (raw) depth image stamped ``stamp``: kept for later frames, offered to the waiting and in-flight ones."""
        self.depth.add(stamp, depth)
        for frame in self._waiting_frames():
            frame.offer_depth(stamp, depth)

    def camera_info_arrived(self, camera_info: Any) -> None:
        self.camera_info = camera_info
        for frame in self._waiting_frames():
            frame.offer_camera_info(camera_info)

    def _waiting_frames(self) -> list[Frame]:
        with self._lock:
            return [f for f in (self.slot.peek(), self.in_flight) if f is not None]

    # hand-over to the inference thread ---------------------------------------------------------------------------
    def take_frame(self) -> Frame | None:
        """The newest frame, now in flight: it keeps receiving depth offers until ``finish_frame``."""
        with self._lock:
            self.in_flight = self.slot.take()
            return self.in_flight

    def finish_frame(self) -> None:
        with self._lock:
            self.in_flight = None

    def wait_for_own_depth(self, frame: Frame, tolerance_s: float, poll_s: float = 0.002) -> None:
        """Block until no nearer depth image can still come for ``frame``: one stamped at or after it has arrived
        (stamps only grow), or ``tolerance_s`` has passed since the frame arrived. Not at all when the depth stream
        has stopped (its newest image more than DEPTH_SILENT_S older than the frame) or never started."""
        if self.depth.newest_stamp < frame.stamp - DEPTH_SILENT_S:
            return
        deadline = frame.received + tolerance_s
        while self.depth.newest_stamp < frame.stamp and self.clock() < deadline:
            self.sleep(poll_s)

    def clear(self) -> None:
        """Forget every frame, depth image and camera_info (the camera is unsubscribed)."""
        with self._lock:
            self.in_flight = None
        self.slot.clear()
        self.depth.clear()
        self.camera_info = self.latest = None
        self._last_stamp = None
