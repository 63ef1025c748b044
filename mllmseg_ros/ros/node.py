"""``mllmseg_node``: camera frames + spoken commands in, masks, boxes and 2D/3D centroids out.

A managed (lifecycle) node: configure loads the model, activate subscribes and starts the inference thread,
deactivate stops it, cleanup frees the model (and GPU memory). ``autostart:=true`` goes straight to active.
Callbacks only convert and hand frames over (newest frame wins); one worker thread runs the model.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from functools import partial

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from std_msgs.msg import Header

from .buffers import Frame
from .camera_stream import CameraStream
from .commands import CommandHandler
from .diagnostics import RecentProblems, segmentation_status
from .engine_setup import apply_options, dtype_name, load_segmenter, release_gpu_memory
from .params import SPECS, NodeSettings, declare_parameters, owned, validate
from .publishing import build_array
from .qos import RELIABLE_10
from .segment_service import SegmentService
from .target import ActiveCommand, Target
from .tracking import TrackingWorker


class MLLMSegNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("mllmseg_node", **kwargs)
        declare_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.settings: NodeSettings | None = None
        self.segmenter = None
        self.streams: list[CameraStream] = []
        self.engine_lock = threading.Lock()  # the segmenter serves one caller at a time (worker or service)
        self.target = Target()
        self.tracking = TrackingWorker(self)  # results for the frames between model answers (ros/tracking.py)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.is_active = False
        self._last_result_time = 0.0
        self._last_latency_ms = 0.0
        self._errors = 0
        self._superseded = 0  # answers not published because the command changed while the model ran
        self.problems = RecentProblems(window_s=self.get_parameter("diagnostics_window_s").value)
        self._sensor_group = ReentrantCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.commands = CommandHandler(self)  # spoken commands on their own callback group (ros/commands.py)
        self._service: SegmentService | None = None
        self._timers: list = []
        self._diagnostics_pub = None

    # parameters ----------------------------------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        # Parameters rclpy owns (use_sim_time, qos_overrides.*) are rclpy's business: accept them untouched.
        params = [p for p in params if owned(p.name)]
        for param in params:
            reason = validate(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if self.settings is not None and not SPECS[param.name].runtime:
                return SetParametersResult(
                    successful=False, reason=f"{param.name} is read on configure; clean up and configure again to change it"
                )
        if self.settings is not None and params:
            self._apply_runtime_parameters({p.name: p.value for p in params})
        return SetParametersResult(successful=True)

    def _apply_runtime_parameters(self, changes: dict) -> None:
        """New values of run-time parameters (all validated) into the settings and the segmenter's options."""
        changes = {k: tuple(v for v in value if v != "") if isinstance(value, list) else value for k, value in changes.items()}
        self.settings = dataclasses.replace(self.settings, **changes)
        if self.segmenter is not None:
            apply_options(self.segmenter.options, self.settings)

    # lifecycle -----------------------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        self.settings = settings = NodeSettings.from_node(self)
        if not settings.model_path:
            self.get_logger().error("model_path is empty: set it to an MLLMSeg checkpoint folder")
            self.settings = None
            return TransitionCallbackReturn.FAILURE
        try:
            self.segmenter = load_segmenter(settings)
        except Exception as exc:  # a missing/corrupt model must fail the transition, not kill the process
            self.get_logger().error(f"cannot load the model from {settings.model_path}: {exc}")
            self.settings = None
            return TransitionCallbackReturn.FAILURE
        self.problems = RecentProblems(settings.diagnostics_window_s)
        self.streams = [CameraStream(self, namespace, self._on_frame_rejected) for namespace in (settings.cameras or ("",))]
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE_10)
        self._service = SegmentService(self, self._service_group)
        # Commands are heard from now on, also while inactive. Subscribed before the cameras: when a command and a
        # frame are ready together, the executor runs the callbacks in creation order, so a frame published after a
        # command is taken after it too.
        self.commands.create()
        self.get_logger().info(f"model loaded from {settings.model_path} ({settings.device}, {dtype_name(settings)})")
        if settings.initial_command.strip():
            self.commands.handle(settings.initial_command)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        for stream in self.streams:
            stream.subscribe(self.settings, self._sensor_group)
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="mllmseg_inference", daemon=True)
        self._worker.start()
        self.tracking.start()
        self._timers = [self.create_timer(1.0, self._watch_inputs, callback_group=self._timer_group)]
        if self.settings.diagnostics_period_s > 0:
            self._timers.append(self.create_timer(self.settings.diagnostics_period_s, self._publish_diagnostics, callback_group=self._timer_group))
        self.is_active = True
        self.commands.activated()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stops the cameras; the command stays, and commands received meanwhile apply on activate (a pause)."""
        self.is_active = False
        self._stop_worker()
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        for stream in self.streams:
            stream.unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.is_active = False
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Back to unconfigured: the model, the streams and the command are gone (configure starts afresh)."""
        self.target.clear("cleaned up")
        self.commands.destroy()
        for stream in self.streams:
            stream.unsubscribe()
            stream.publisher.destroy()
        self.streams = []
        if self._service is not None:
            self._service.destroy()
            self._service = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        with self.engine_lock:
            self.segmenter = None
        self.settings = None
        release_gpu_memory()

    # inference thread ----------------------------------------------------------------------------------------------
    def wake_worker(self) -> None:
        self._wake.set()
        self.tracking.wake()

    def _stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        self.tracking.stop()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            if self.target.current is None or self._stop.is_set():
                continue  # frames wait in their slots: a command may still take one that is recent enough
            settings = self.settings
            if settings.max_rate_hz > 0:
                wait = self._last_result_time + 1.0 / settings.max_rate_hz - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
            batch = self._take_frames()
            # Read after taking: a frame received after a command is answered with that command (or a newer one).
            command = self.target.current
            batch = self._fresh_for(command, batch, settings) if command is not None else []
            if batch:
                self._process(batch, command, settings)
                self._last_result_time = time.monotonic()
            for stream in self.streams:
                stream.finish_frame()
            if batch and settings.mode == "once":
                self.target.answered(command)
            if any(stream.slot.peek() is not None for stream in self.streams):
                self._wake.set()

    def _take_frames(self) -> list[tuple[CameraStream, Frame]]:
        return [(stream, frame) for stream in self.streams if (frame := stream.take_frame()) is not None]

    @staticmethod
    def _fresh_for(command: ActiveCommand, batch, settings: NodeSettings):
        """The frames recent enough to answer ``command``; the others are counted as stale."""
        oldest = command.received - settings.max_frame_age_s
        fresh = []
        for stream, frame in batch:
            if frame.received >= oldest:
                fresh.append((stream, frame))
            else:
                stream.stale += 1
        return fresh

    def _process(self, batch, command: ActiveCommand, settings: NodeSettings) -> None:
        try:
            with self.engine_lock:
                if self.segmenter is None:
                    return
                results = self.segmenter.segment_batch([frame.rgb for _, frame in batch], [command.expressions] * len(batch))
                timings = dict(self.segmenter.last_timings)
        except Exception as exc:  # one bad frame (or CUDA OOM) must not stop the node
            self._errors += 1
            self.problems.add("errors", f"inference: {exc}")
            release_gpu_memory(after=exc)
            self.get_logger().error(f"inference failed on this frame: {exc}", throttle_duration_sec=5.0)
            return
        if not self.target.is_current(command):
            # "stop" or a new target arrived while the model ran: an answer to the old one must not move the robot.
            self._superseded += len(batch)
            return
        for (stream, frame), frame_results in zip(batch, results):
            try:
                started = time.perf_counter()
                depth, intrinsics, depth_reason = stream.depth_for(frame, settings)
                lookup = time.perf_counter() - started
                array = build_array(frame, command.text, frame_results, depth, intrinsics, depth_reason, timings, lookup)
                publish = partial(stream.publisher.publish, array, frame, frame_results, settings.publish_markers)
                if not self.target.publish_if_current(command, publish):  # a stop came meanwhile: it wins
                    self._superseded += 1
                    continue
                self.tracking.model_answered(stream, frame, command, frame_results)
                stream.processed += 1
                self._last_latency_ms = array.total_ms
            except Exception as exc:
                self._errors += 1
                self.problems.add("errors", f"publishing: {exc}")
                self.get_logger().error(f"publishing results failed: {exc}", throttle_duration_sec=5.0)

    def _on_frame_rejected(self, reason: str) -> None:
        self.problems.add("rejected", reason)

    # watchdog and diagnostics --------------------------------------------------------------------------------------
    def _watch_inputs(self) -> None:
        settings = self.settings
        if not self.is_active or settings is None:
            return
        now = time.monotonic()
        for stream in self.streams:
            if settings.image_qos == "auto":
                stream.match_qos(settings, self._sensor_group)
            # Time in a ~/segment call is not silence (calls once held the executor; they now answer from a thread).
            silent = now - max(stream.last_frame_time, self._service.finished if self._service else 0.0)
            if settings.no_image_warn_s > 0 and silent > settings.no_image_warn_s and not stream.warned:
                stream.warned = True
                self.get_logger().warning(f"no image for {silent:.0f} s: {stream.why_no_images()}")

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None or self.settings is None:
            return
        command = self.target.current
        extra = {"last_latency_ms": round(self._last_latency_ms, 1), "command": command.text if command else "",
                 **self.commands.diagnostics(), "answers_superseded": self._superseded,
                 "tracked_published": self.tracking.published,
                 "track_rate_hz": self.tracking.rate_hz(self.settings)}
        status = segmentation_status(f"{self.get_name()}: segmentation", self.settings.device, self.counters(),
                                     self.problems.recent(), self.settings.diagnostics_window_s, extra)
        self._diagnostics_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    def counters(self) -> dict[str, int]:
        return {
            "received": sum(s.slot.received for s in self.streams),
            "processed": sum(s.processed for s in self.streams),
            "dropped": sum(s.slot.dropped for s in self.streams),
            "stale": sum(s.stale for s in self.streams),
            "rejected": sum(s.rejected for s in self.streams),
            "errors": self._errors,
        }

    def shutdown_worker(self) -> None:
        self.is_active = False
        self._stop_worker()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = MLLMSegNode()
    # Single-threaded on purpose. The callbacks only hand work over (inference has its own thread, ~/segment answers
    # from one of its own, so a command is never queued behind either), and rclpy's MultiThreadedExecutor is slow
    # with large messages (measured in the README's "Node overhead"). Composed into a MultiThreadedExecutor, the
    # node's callback groups (commands, cameras, service, timers) run side by side.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if node.get_parameter("autostart").value:
        node.trigger_configure()
        if node.settings is not None:
            node.trigger_activate()
    else:
        name = node.get_fully_qualified_name()
        node.get_logger().info(
            f"unconfigured: waiting for a lifecycle configure and activate "
            f"(ros2 lifecycle set {name} configure, then activate), or start with autostart:=true"
        )
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown_worker()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
