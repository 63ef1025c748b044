"""A camera stream without a node: CameraPorts of stand-ins that record what the stream logs and reports, a clock the
test sets, and no subscription or publisher (the unit tests call the stream's callbacks as the executor would)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from mllmseg_ros.ros.camera_stream import CameraPorts, CameraStream


class Logger:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, object]] = []
        self.infos: list[str] = []

    def warning(self, text: str, throttle_duration_sec=None) -> None:
        self.warnings.append((text, throttle_duration_sec))

    def info(self, text: str) -> None:
        self.infos.append(text)


class Clock:
    def __init__(self, now: float = 50.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def camera(namespace: str = "", publishers: list | None = None):
    """(stream, what it reported: rejections, frames announced, the logger, the clock)."""
    logger, clock, rejected, frames = Logger(), Clock(), [], []
    ports = CameraPorts(
        create_subscription=lambda *a, **k: pytest.fail("no subscription in these tests"),
        destroy_subscription=lambda s: None, resolve_topic_name=lambda topic: "/" + topic,
        publishers_info=lambda topic: list(publishers or []), choose_qos=lambda *a: pytest.fail("no QoS choice"),
        qos_overridden=lambda topic: False, logger=logger, outputs=lambda prefix, stream: ("outputs", prefix), clock=clock)
    stream = CameraStream(ports, namespace, on_rejected=lambda text, kind: rejected.append((text, kind)),
                          on_frame=lambda: frames.append(stream.slot.peek()))
    return stream, SimpleNamespace(rejected=rejected, frames=frames, logger=logger, clock=clock)
