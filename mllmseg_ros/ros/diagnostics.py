"""The node's /diagnostics status: lifetime counters, and a level that reflects only the recent past.

A robot's monitoring turns WARN into an alarm; one bad frame an hour ago must not keep it raised. So the level comes
from the problems of the last ``window_s`` seconds, while the counters keep counting since start. ERROR is kept for
a node that cannot do its job: not configured for a reason (no model, a wrong parameter), or no 3D answer although
depth arrives (unregistered depth, unusable camera_info, impossible depth values).
"""
from __future__ import annotations

import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from .params import start_value

# What counts against the level, and how the status message names it.
PROBLEM_KINDS = {"errors": "inference/publishing errors", "rejected": "rejected frames", "commands": "rejected commands",
                 "depth": "frames without 3D for a depth input problem"}
# 3D fails "for every answer" once this many found targets in a row had none (one bad frame is no setup problem)
MIN_3D_FAILURES = 3
# Reasons for no 3D that are no fault: the user runs without depth, or no depth stream is there at all (2D only)
NO_DEPTH_WANTED = ("depth disabled", "no depth image", "target not found")
HINT_PERIOD_S = 30.0  # how often a lasting ERROR is repeated in the log


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


class ThreeDOutcomes:
    """The 3D answers of found targets in the last ``window_s`` seconds: whether any was valid, and the latest
    reason why not."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._outcomes: deque[tuple[float, bool, str]] = deque(maxlen=1000)
        self._lock = threading.Lock()

    def record_3d(self, array) -> None:
        now = time.monotonic()
        with self._lock:
            for segmentation in array.segmentations:
                if segmentation.found:
                    self._outcomes.append((now, segmentation.centroid_3d_valid, segmentation.centroid_3d_status))

    def summary(self, now: float | None = None) -> tuple[int, int, str]:
        """(found targets, of them with a valid 3D centroid, latest reason for none) in the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._outcomes and now - self._outcomes[0][0] > self.window_s:
                self._outcomes.popleft()
            outcomes = list(self._outcomes)
        failures = [status for _, valid, status in outcomes if not valid]
        return len(outcomes), len(outcomes) - len(failures), failures[-1] if failures else ""

    def failing(self, now: float | None = None) -> str:
        """Why the recent 3D answers fail although depth is wanted and arrives ("" when they do not): the last
        MIN_3D_FAILURES or more found targets in the window all had no 3D centroid, for a reason that is a fault."""
        self.summary(now)  # drops what left the window
        with self._lock:
            outcomes = list(self._outcomes)
        run = 0
        for _, valid, _ in reversed(outcomes):
            if valid:
                break
            run += 1
        reason = outcomes[-1][2] if outcomes else ""
        if run >= MIN_3D_FAILURES and not reason.startswith(NO_DEPTH_WANTED):
            return f"no valid 3D centroid for the last {run} found targets: {reason}"
        return ""

    def clear(self) -> None:
        with self._lock:
            self._outcomes.clear()


def segmentation_status(name: str, hardware_id: str, counters: dict[str, int], recent: dict[str, tuple[int, str]],
                        window_s: float, extra: dict[str, object], errors: list[str] = (),
                        warnings: list[str] = ()) -> DiagnosticStatus:
    """ERROR naming ``errors`` (the node cannot do its job); WARN naming the recent problems and ``warnings``, or
    while no frame has arrived yet; OK while frames flow and nothing went wrong in the last ``window_s`` s."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    problems = [f"{count} {PROBLEM_KINDS[kind]} in the last {window_s:g} s (latest: {text})"
                for kind, (count, text) in recent.items()] + list(warnings)
    if errors:
        status.level, status.message = DiagnosticStatus.ERROR, "; ".join(list(errors) + problems)
    elif problems:
        status.level, status.message = DiagnosticStatus.WARN, "; ".join(problems)
    elif counters["received"]:
        status.level, status.message = DiagnosticStatus.OK, "running"
    else:
        status.level, status.message = DiagnosticStatus.WARN, "waiting for images"
    values = {f"frames_{k}" if k != "errors" else k: v for k, v in counters.items()} | extra
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return status


def idle_status(name: str, hardware_id: str, state: str, errors: list[str], warnings: list[str]) -> DiagnosticStatus:
    """The status of a node that is not active: ERROR while it cannot be configured (``errors``: why), WARN with
    ``warnings``, else OK ("unconfigured": waiting for a lifecycle manager, or "inactive")."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if errors:
        status.level, status.message = DiagnosticStatus.ERROR, f"{state}: " + "; ".join(list(errors) + list(warnings))
    elif warnings:
        status.level, status.message = DiagnosticStatus.WARN, f"{state}: " + "; ".join(warnings)
    else:
        waiting = "waiting for a lifecycle configure" if state == "unconfigured" else "waiting for a lifecycle activate"
        status.level, status.message = DiagnosticStatus.OK, f"{state}: {waiting}"
    status.values = [KeyValue(key="state", value=state)]
    return status


def node_errors(node) -> list[str]:
    """Why ``node`` (an MLLMSegNode) cannot do its job now (empty when it can): it cannot be configured, or it gives
    no 3D answer although depth arrives."""
    if node.settings is None:
        problems = node.argument_problems + list(node.parameter_problems.values())
        return problems or ([f"not configured: {node.not_configured}"] if node.not_configured else [])
    return [failing] if node.is_active and (failing := node.health.failing()) else []


def node_status(node) -> DiagnosticStatus:
    """``node``'s status: ``idle_status`` while it is not active, else ``segmentation_status`` with its counters."""
    name, settings, errors = f"{node.get_name()}: segmentation", node.settings, node_errors(node)
    if settings is None or not node.is_active:
        state = "inactive" if settings is not None else "unconfigured"
        device = settings.device if settings is not None else str(start_value(node, "device"))
        return idle_status(name, device, state, errors, node.unused_parameters)
    command = node.target.current
    found, valid, reason = node.health.summary()
    extra = {"state": "active", "last_latency_ms": round(node._last_latency_ms, 1),
             "command": command.text if command else "", **node.commands.diagnostics(),
             "answers_superseded": node._superseded, "tracked_published": node.tracking.published,
             "track_rate_hz": node.tracking.rate_hz(settings), "centroid_3d_valid": f"{valid} of {found}",
             "centroid_3d_status": reason or ("ok" if found else "")}
    return segmentation_status(name, settings.device, node.counters(), node.problems.recent(),
                               settings.diagnostics_window_s, extra, errors, node.unused_parameters)
