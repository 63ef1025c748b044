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
from typing import Callable, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from std_msgs.msg import Header

from ..engine.commands import ParsedCommand
from .buffers import Frame
from .camera_stream import CameraPorts, CameraStream
from .commands import CommandHandler, command_parser
from .diagnostics import HINT_PERIOD_S, RecentProblems, ThreeDOutcomes, node_errors, node_status
from .engine_setup import EngineHandle, apply_options, dtype_name, load_segmenter, release_gpu_memory
from .param_sources import ros_arguments, unused_parameters
from .params import NodeSettings, check_changes, declare_parameters, owned, start_value
from .publishing import OutputGate, ResultPublisher
from .qos import RELIABLE_10, overridable, own_profile
from .segment_service import SegmentService
from .target import ActiveCommand, Target
from .tracking import TrackingWorker

STOP_WAIT_S = 0.1  # deactivate/shutdown wait this long for an idle inference thread, never for a model step


class MLLMSegNode(LifecycleNode):
    def __init__(self, argv: Sequence[str] = (), startup_problems: Sequence[str] = (), **kwargs) -> None:
        """``argv``: the process arguments (its params files are checked for values this node does not use);
        ``startup_problems``: arguments rcl could not parse (left out; the node then refuses to configure)."""
        super().__init__("mllmseg_node", **kwargs)
        self.parameter_problems = declare_parameters(self)  # {name: why its given value was not taken}
        self.argument_problems = list(startup_problems)
        self.unused_parameters = unused_parameters(ros_arguments(argv), self.get_fully_qualified_name(),
                                                   lambda name: self.has_parameter(name) or name.startswith("qos_overrides."))
        for problem in self.argument_problems + list(self.parameter_problems.values()):
            self.get_logger().error(problem)
        for problem in self.unused_parameters:
            self.get_logger().warning(problem)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.settings: NodeSettings | None = None
        self.engine = EngineHandle()  # the segmenter and its lock (one caller at a time: worker or service)
        self.parse_command: Callable[[str], ParsedCommand] | None = None  # the command reader of the settings
        self.streams: list[CameraStream] = []
        self.target = Target()
        # results for the frames between model answers (ros/tracking.py)
        self.tracking = TrackingWorker(settings=lambda: self.settings, target=self.target, streams=lambda: self.streams,
                                       report=lambda problem: self.problems.add("errors", problem), logger=self.get_logger())
        self._wake = threading.Event()
        self._stop = threading.Event()  # of the current worker: each activation starts one with its own
        self._worker: threading.Thread | None = None
        self.output_gate = OutputGate()  # open only while active: nothing is published after deactivate
        self.is_active = False
        self.not_configured = ""  # why the last configure failed ("" when it did not)
        self._last_result_time = 0.0
        self._last_latency_ms = 0.0
        self._errors = 0
        self._superseded = 0  # answers not published because the command changed while the model ran
        window_s = start_value(self, "diagnostics_window_s")
        self.problems = RecentProblems(window_s)
        self.health = ThreeDOutcomes(window_s)  # the 3D answers, for /diagnostics
        self._sensor_group = ReentrantCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        # spoken commands on their own callback group (ros/commands.py)
        self.commands = CommandHandler(self, self.target, self.engine, settings=lambda: self.settings,
                                       parse=lambda text: self.parse_command(text), active=lambda: self.is_active,
                                       report=lambda problem: self.problems.add("commands", problem), wake=self.wake_worker)
        self._service: SegmentService | None = None
        self._last_hint = time.monotonic()  # a lasting ERROR is repeated after HINT_PERIOD_S
        # /diagnostics and the watchdog from the start, on the steady clock: an unconfigured node says why, and with
        # use_sim_time they run even before (or without) /clock
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", own_profile(RELIABLE_10),
                                                      qos_overriding_options=overridable())
        # not _timers: rclpy keeps the node's own list of timers under that name (the executor reads it)
        self._watch_timers = [self.create_timer(1.0, self._watch_inputs, callback_group=self._timer_group, clock=steady)]
        if (period := start_value(self, "diagnostics_period_s")) > 0:
            self._watch_timers.append(self.create_timer(period, self._publish_diagnostics, callback_group=self._timer_group,
                                                  clock=steady))

    @property
    def segmenter(self):
        return self.engine.segmenter

    @segmenter.setter
    def segmenter(self, segmenter) -> None:
        self.engine.segmenter = segmenter

    # parameters ----------------------------------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        # Parameters rclpy owns (use_sim_time, qos_overrides.*) are rclpy's business: accept them untouched.
        params = [p for p in params if owned(p.name)]
        reason, changes = check_changes({p.name: p.value for p in params}, self.settings is not None, lambda n: start_value(self, n))
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        for name in changes:  # set right now: no longer a reason to refuse configure
            self.parameter_problems.pop(name, None)
        if self.settings is not None and changes:
            self._apply_runtime_parameters(changes)
        return SetParametersResult(successful=True)

    def _apply_runtime_parameters(self, changes: dict) -> None:
        """New values of run-time parameters (validated, as settings values) into the settings and the segmenter's
        options."""
        self.settings = dataclasses.replace(self.settings, **changes)
        self.parse_command = command_parser(self.settings)
        if self.segmenter is not None:
            apply_options(self.segmenter.options, self.settings)

    # lifecycle -----------------------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        if self.argument_problems or self.parameter_problems:  # each was said in full at the start
            wrong = ", ".join([*self.parameter_problems, *(["arguments rcl could not parse"] if self.argument_problems else [])])
            return self._configure_failed(f"wrong values for {wrong} (see above); set them right and configure again")
        try:
            settings = NodeSettings.from_node(self)
        except ValueError as exc:
            return self._configure_failed(str(exc))
        if not settings.model_path:
            return self._configure_failed("model_path is empty: set it to an MLLMSeg checkpoint folder")
        try:
            self.segmenter = load_segmenter(settings, announce=self.get_logger().warning)
        except Exception as exc:  # a missing/corrupt model must fail the transition, not kill the process
            return self._configure_failed(f"cannot load the model from {settings.model_path}: {exc}")
        self.parse_command = command_parser(settings)  # first: a command is read once the settings are there
        self.settings, self.not_configured = settings, ""
        if settings.image_compressed:
            self.get_logger().warning("image_compressed is deprecated: use image_transport:=compressed")
        self.problems = RecentProblems(settings.diagnostics_window_s)
        self.health = ThreeDOutcomes(settings.diagnostics_window_s)
        outputs = partial(ResultPublisher, self, settings=lambda: self.settings, gate=self.output_gate,
                          monitor=self.health)
        self.streams = [CameraStream(CameraPorts.of(self, outputs), namespace, self._on_frame_rejected, self.wake_worker)
                        for namespace in (settings.cameras or ("",))]
        self._service = SegmentService(self, self._service_group, self.engine, streams=lambda: self.streams,
                                       settings=lambda: self.settings if self.is_active else None,
                                       parse=lambda text: self.parse_command(text))
        # Commands are heard from now on, also while inactive. Subscribed before the cameras: when a command and a
        # frame are ready together, the executor runs the callbacks in creation order, so a frame published after a
        # command is taken after it too.
        self.commands.create()
        self.get_logger().info(f"model loaded from {settings.model_path} ({settings.device}, {dtype_name(settings)})")
        if settings.initial_command.strip():
            self.commands.handle(settings.initial_command)
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        """The node stays up, unconfigured; the reason goes to the log now, to /diagnostics as ERROR until a
        configure succeeds, and to the log again every HINT_PERIOD_S."""
        self.settings, self.not_configured, self._last_hint = None, reason, time.monotonic()
        self.get_logger().error(f"not configured: {reason}")
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        for stream in self.streams:
            stream.subscribe(self.settings, self._sensor_group)
        self._stop = threading.Event()  # a worker of an earlier activation may still finish its step: not with this
        self._worker = threading.Thread(target=self._run_worker, args=(self._stop,), name="mllmseg_inference", daemon=True)
        self._worker.start()
        self.tracking.start()
        self.output_gate.open()
        self.is_active = True
        self.commands.activated()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stops the cameras and publishing at once; the command stays, and commands received meanwhile apply on
        activate (a pause). A model step under way is not waited for: its answer is dropped."""
        self.is_active = False
        self.output_gate.close()
        self._stop_worker()
        for stream in self.streams:
            stream.unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.shutdown_worker()
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
        # Not under the engine's lock: a model step under way keeps its own reference and ends unpublished (gate closed)
        self.segmenter = None
        self.settings = None
        release_gpu_memory()

    # inference thread ----------------------------------------------------------------------------------------------
    def wake_worker(self) -> None:
        self._wake.set()
        self.tracking.wake()

    def _stop_worker(self) -> bool:
        """Tell the inference and tracking threads to stop; wait for the inference thread at most STOP_WAIT_S (a
        model step cannot be interrupted; its answer is not published: the gate is closed and its stop event set).
        True when it is still in a model step."""
        self._stop.set()
        self._wake.set()
        self.tracking.stop()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=STOP_WAIT_S)
        return worker is not None and worker.is_alive()

    def _run_worker(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            if self.target.current is None or stop.is_set():
                continue  # frames wait in their slots: a command may still take one that is recent enough
            settings = self.settings
            if settings is None:
                continue
            if settings.max_rate_hz > 0:
                wait = self._last_result_time + 1.0 / settings.max_rate_hz - time.monotonic()
                if wait > 0:
                    stop.wait(wait)
            batch = self._take_frames()
            # Read after taking: a frame received after a command is answered with that command (or a newer one).
            command = self.target.current
            batch = self._fresh_for(command, batch, settings) if command is not None else []
            if batch:
                self._process(batch, command, settings, stop)
                self._last_result_time = time.monotonic()
            if stop.is_set():
                return  # the streams belong to the next activation now
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

    def _process(self, batch, command: ActiveCommand, settings: NodeSettings, stop: threading.Event) -> None:
        try:
            with self.engine.lock:
                segmenter = self.segmenter
                if segmenter is None or stop.is_set():
                    return
                results = segmenter.segment_batch([frame.rgb for _, frame in batch], [command.expressions] * len(batch))
                timings = dict(segmenter.last_timings)
        except Exception as exc:  # one bad frame (or CUDA OOM) must not stop the node
            self._errors += 1
            self.problems.add("errors", f"inference: {exc}")
            release_gpu_memory(after=exc)
            self.get_logger().error(f"inference failed on this frame: {exc}", throttle_duration_sec=5.0)
            return
        if stop.is_set():
            return  # deactivated or shutting down meanwhile: nothing goes out
        if not self.target.is_current(command):
            # "stop" or a new target arrived while the model ran: an answer to the old one must not move the robot.
            self._superseded += len(batch)
            return
        for (stream, frame), frame_results in zip(batch, results):
            try:
                array = stream.results_array(frame, command.text, frame_results, settings, timings)
                publish, sent = partial(stream.publisher.publish, array, frame, frame_results, settings.publish_markers), []
                if not self.target.publish_if_current(command, lambda: sent.append(publish())):
                    self._superseded += 1  # a stop came meanwhile: it wins
                    continue
                if not sent[0]:
                    return  # the output gate closed meanwhile (deactivate, shutdown)
                stream.processed += 1
                self._last_latency_ms = array.total_ms
            except Exception as exc:
                self._errors += 1
                self.problems.add("errors", f"publishing: {exc}")
                self.get_logger().error(f"publishing results failed: {exc}", throttle_duration_sec=5.0)
                continue
            try:
                self.tracking.model_answered(stream, frame, command, frame_results)
            except Exception as exc:  # tracking's trouble is not the answer's: it was published
                self._errors += 1
                self.problems.add("errors", f"tracking: {exc}")
                self.get_logger().error(f"tracking could not take this answer: {exc}", throttle_duration_sec=5.0)

    def _on_frame_rejected(self, reason: str, kind: str = "rejected") -> None:
        self.problems.add(kind, reason)

    # watchdog and diagnostics --------------------------------------------------------------------------------------
    def _watch_inputs(self) -> None:
        """Every second of the steady clock from the start: a lasting ERROR is repeated in the log now and then;
        while configured, the command subscription follows its publishers' durability (commands are heard while
        inactive too); while active, the sensor subscriptions follow their publishers' QoS and a silent camera is
        reported."""
        errors = node_errors(self)
        if errors and time.monotonic() - self._last_hint > HINT_PERIOD_S:
            self._last_hint = time.monotonic()
            self.get_logger().error(f"still not working: {'; '.join(errors)}")
        settings = self.settings
        if settings is not None:
            self.commands.match_publishers()  # latched or not, as the command's publishers
        if not self.is_active or settings is None:
            return
        now = time.monotonic()
        for stream in self.streams:
            if settings.image_qos == "auto":
                stream.match_qos(settings, self._sensor_group)
            # A service call on a single-threaded executor holds back the image callbacks meanwhile: not silence.
            silent = now - max(stream.last_frame_time, self._service.finished if self._service else 0.0)
            if settings.no_image_warn_s > 0 and silent > settings.no_image_warn_s and not stream.warned:
                stream.warned = True
                self.get_logger().warning(f"no image for {silent:.0f} s: {stream.why_no_images()}")

    def _publish_diagnostics(self) -> None:
        status = node_status(self)
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

    def shutdown_worker(self) -> bool:
        """For the process's end: nothing is published from here on, and no thread is waited for longer than
        STOP_WAIT_S. True when a model step is still running."""
        self.is_active = False
        self.output_gate.close()
        return self._stop_worker()


def main(args=None) -> None:
    from .startup import run

    run(MLLMSegNode, args)


if __name__ == "__main__":
    main()
