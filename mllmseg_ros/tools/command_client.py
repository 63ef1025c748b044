"""A client for spoken-command tests against a node in its own process: a camera in a thread, commands, the latched
``~/command_status``, ``~/segment`` calls, lifecycle transitions, and every result with the time it arrived.

``stop_trial`` measures one stop as a robot stack meets it: the model mid-inference on the target, a ``~/segment`` call
waiting for the model, tracked results flowing; then "stop", and how long after it anything about the old target
still arrives. Used by test/ros/test_node_commands_process.py and benchmarks/bench_stop_latency.py.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .node_driver import Driver, is_model_answer, rgb_msg, wait_for


class CommandClient(Driver):
    def __init__(self, width: int = 64, height: int = 48) -> None:
        super().__init__()
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from ..msg import CommandStatus
        from ..srv import Segment

        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.width, self.height = width, height
        self.arrays_at: list[tuple[float, object]] = []  # (time.monotonic() at receipt, SegmentationArray)
        self.centroids_at: list[float] = []
        self.statuses: list = []  # CommandStatus, in arrival order
        self.status_times: list[float] = []  # time.monotonic() at the arrival of each
        self.superseded = 0  # answers_superseded from the latest /diagnostics
        self.node.create_subscription(CommandStatus, "/mllmseg_node/command_status", self._on_status, latched)
        self.node.create_subscription(PointStamped, "/mllmseg_node/centroid", self._on_centroid, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.segment = self.node.create_client(Segment, "/mllmseg_node/segment")
        self._camera: threading.Thread | None = None
        self._camera_stop = threading.Event()
        self.frames_sent = 0

    # recording -------------------------------------------------------------------------------------------------------
    def _on_array(self, msg) -> None:
        super()._on_array(msg)
        with self._lock:
            self.arrays_at.append((time.monotonic(), msg))

    def _on_centroid(self, msg) -> None:
        with self._lock:
            self.centroids_at.append(time.monotonic())

    def _on_status(self, msg) -> None:
        with self._lock:
            self.statuses.append(msg)
            self.status_times.append(time.monotonic())

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "answers_superseded" in values:
                self.superseded = int(values["answers_superseded"])

    def status_for(self, text: str, after: int = 0):
        """The first status about ``text`` among the statuses from index ``after`` on, or None."""
        with self._lock:
            return next((s for s in self.statuses[after:] if s.command == text), None)

    def model_answers_since(self, since: float, command: str | None = None) -> list:
        with self._lock:
            return [a for t, a in self.arrays_at if t >= since and is_model_answer(a) and command in (None, a.command)]

    # camera ------------------------------------------------------------------------------------------------------------
    def start_camera(self, hz: float) -> None:
        self._camera_stop.clear()
        self._camera = threading.Thread(target=self._stream, args=(hz,), daemon=True)
        self._camera.start()

    def _stream(self, hz: float) -> None:
        started = time.monotonic()
        while not self._camera_stop.is_set():
            self.frames_sent += 1
            self.image.publish(rgb_msg(self.height, self.width, stamp_ns=1_000_000_000 + self.frames_sent * 1_000_000))
            time.sleep(max(0.0, started + self.frames_sent / hz - time.monotonic()))

    def stop_camera(self) -> None:
        self._camera_stop.set()
        if self._camera is not None:
            self._camera.join(timeout=5)

    # node services -------------------------------------------------------------------------------------------------------
    def change_state(self, transition: str, timeout: float = 30.0) -> bool:
        """``ros2 lifecycle set /mllmseg_node <transition>`` (activate, deactivate ...)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        client = self.node.create_client(ChangeState, "/mllmseg_node/change_state")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return False
            request = ChangeState.Request()
            request.transition.id = getattr(Transition, f"TRANSITION_{transition.upper()}")
            future = client.call_async(request)
            return wait_for(future.done, timeout) and future.result().success
        finally:
            self.node.destroy_client(client)


def stop_trial(client: CommandClient, text: str, delay_s: float, rng: np.random.Generator, settle_s: float = 1.0) -> dict:
    """One stop with the model mid-inference on ``text`` and a ``~/segment`` call waiting for the model. Returns the
    worst delay from sending "stop" to the arrival of anything about ``text`` (results, centroids; 0 if nothing came
    after the stop), how many such messages came after it, and checks of the conditions."""
    from ..srv import Segment

    sent = time.monotonic()
    client.send_command(text)
    if not wait_for(lambda: client.model_answers_since(sent, text), timeout=30 + 4 * delay_s):
        raise RuntimeError(f"no model answer to {text!r}")
    # The model starts on the newest frame as soon as it has answered: it is mid-inference from now on.
    time.sleep(rng.uniform(0.2, 0.6) * delay_s)
    superseded_before = client.superseded
    call = client.segment.call_async(Segment.Request(command="the green box", use_latest_image=True))
    time.sleep(0.05)
    stopped = time.monotonic()
    service_running = not call.done()
    statuses = len(client.statuses)
    client.send_command("stop")
    time.sleep(delay_s + settle_s)  # the answer in flight comes back meanwhile (and must not be published)
    with client._lock:
        after = [t for t, array in client.arrays_at if t > stopped] + [t for t in client.centroids_at if t > stopped]
        before = [t for t, array in client.arrays_at if stopped - 1.0 < t <= stopped]
        applied = next((t for s, t in zip(client.statuses[statuses:], client.status_times[statuses:])
                        if s.command == "stop"), None)
    wait_for(call.done, timeout=30 + 2 * delay_s)
    return {
        "worst_delay_ms": (max(after) - stopped) * 1e3 if after else 0.0,
        "messages_after_stop": len(after),
        "results_in_the_second_before": len(before),  # they were flowing: a result could have come after the stop
        "stop_status_ms": (applied - stopped) * 1e3 if applied is not None else None,  # the node had applied it
        "service_running_at_stop": service_running,
        "service_answered": call.done() and call.result().success,
        "answer_in_flight_dropped": client.superseded > superseded_before,
    }
