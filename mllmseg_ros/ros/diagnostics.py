"""The node's /diagnostics status: lifetime counters, and a level that reflects only the recent past.

A robot's monitoring turns WARN into an alarm; one bad frame an hour ago must not keep it raised. So the level comes
from the problems of the last ``window_s`` seconds, while the counters keep counting since start.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

# What counts against the level, and how the status message names it.
PROBLEM_KINDS = {"errors": "inference/publishing errors", "rejected": "rejected frames", "commands": "rejected commands"}


class RecentProblems:
    """Times and texts of problems, kept for ``window_s`` seconds (bounded: at most ``capacity`` per kind)."""

    def __init__(self, window_s: float, capacity: int = 1000) -> None:
        self.window_s = window_s
        self._events: dict[str, deque[tuple[float, str]]] = {kind: deque(maxlen=capacity) for kind in PROBLEM_KINDS}
        self._lock = threading.Lock()

    def add(self, kind: str, text: str, now: float | None = None) -> None:
        with self._lock:
            self._events[kind].append((time.monotonic() if now is None else now, text))

    def recent(self, now: float | None = None) -> dict[str, tuple[int, str]]:
        """{kind: (count in the window, latest text)} for the kinds that had a problem in the window."""
        now = time.monotonic() if now is None else now
        found = {}
        with self._lock:
            for kind, events in self._events.items():
                while events and now - events[0][0] > self.window_s:
                    events.popleft()
                if events:
                    found[kind] = (len(events), events[-1][1])
        return found

    def clear(self) -> None:
        with self._lock:
            for events in self._events.values():
                events.clear()


def segmentation_status(name: str, hardware_id: str, counters: dict[str, int], recent: dict[str, tuple[int, str]],
                        window_s: float, extra: dict[str, object]) -> DiagnosticStatus:
    """OK while frames flow and nothing went wrong in the last ``window_s`` s; WARN naming the recent problems, or
    while no frame has arrived yet."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if recent:
        status.level = DiagnosticStatus.WARN
        status.message = "; ".join(f"{count} {PROBLEM_KINDS[kind]} in the last {window_s:g} s (latest: {text})"
                                   for kind, (count, text) in recent.items())
    elif counters["received"]:
        status.level, status.message = DiagnosticStatus.OK, "running"
    else:
        status.level, status.message = DiagnosticStatus.WARN, "waiting for images"
    values = {f"frames_{k}" if k != "errors" else k: v for k, v in counters.items()} | extra
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return status
