"""``mllmseg_node``: camera frames + spoken commands in, masks, boxes and 2D/3D centroids out.

A managed (lifecycle) node: configure loads the model, activate subscribes and starts the inference thread,
deactivate stops it, cleanup frees the model (and GPU memory). ``autostart:=true`` goes straight to active.
Callbacks only convert and hand frames over (newest frame wins); one worker thread runs the model.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from ..engine.commands import DEFAULT_COMMAND_PREFIXES
from .buffers import Frame, LatestFrameSlot, StampMatcher
from .conversions import (
    compressed_to_rgb,
    depth_image_to_metres,
    image_to_rgb,
    intrinsics_from_camera_info,
    stamp_seconds,
)
from .params import SPECS, NodeSettings, declare_parameters, validate
from .publishing import ResultPublisher, build_array
from .qos import choose_image_qos, same_profile

RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _join(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


class CameraStream:
    """Inputs, buffers and outputs of one camera (relative topic names, so launch files can remap them)."""

    def __init__(self, node: "MLLMSegNode", namespace: str) -> None:
        self.node = node
        self.name = namespace.strip("/")
        self.image_topic = _join(namespace, "image")
        self.depth_topic = _join(namespace, "depth")
        self.info_topic = _join(namespace, "camera_info")
        self.slot = LatestFrameSlot()
        self.depth = StampMatcher()
        self.latest: Frame | None = None  # last good frame, for the service's "latest image"
        self.camera_info: CameraInfo | None = None
        self.image_sub = None
        self.image_qos: QoSProfile | None = None
        self.other_subs: list = []
        self.rejected = 0
        self.reject_reason = ""
        self.processed = 0
        self.warned = False
        self.last_frame_time = time.monotonic()
        self.publisher = ResultPublisher(node, "~" if not self.name else f"~/{self.name}")

    # subscriptions ------------------------------------------------------------------------------------------------
    def subscribe(self, settings: NodeSettings, group) -> None:
        self.resubscribe_image(settings, group)
        if settings.use_depth:
            self.other_subs = [
                self.node.create_subscription(Image, self.depth_topic, self._on_depth, rclpy.qos.qos_profile_sensor_data, callback_group=group),
                self.node.create_subscription(CameraInfo, self.info_topic, self._on_camera_info, rclpy.qos.qos_profile_sensor_data, callback_group=group),
            ]
        self.last_frame_time = time.monotonic()
        self.warned = False

    def resubscribe_image(self, settings: NodeSettings, group) -> None:
        topic = self.image_topic + ("/compressed" if settings.image_compressed else "")
        profile, why = choose_image_qos(self.node, topic, settings.image_qos)
        if same_profile(self.image_qos, profile):
            return
        if self.image_sub is not None:
            self.node.destroy_subscription(self.image_sub)
        message_type = CompressedImage if settings.image_compressed else Image
        self.image_sub = self.node.create_subscription(message_type, topic, self._on_image, profile, callback_group=group)
        self.image_qos = profile
        self.node.get_logger().info(f"subscribed to {self.node.resolve_topic_name(topic)} with QoS {why}")

    def unsubscribe(self) -> None:
        for sub in [self.image_sub, *self.other_subs]:
            if sub is not None:
                self.node.destroy_subscription(sub)
        self.image_sub, self.image_qos, self.other_subs = None, None, []
        self.slot.clear()

    # callbacks: convert, hand over, never block ----------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        try:
            rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        except ValueError as exc:
            self.rejected += 1
            self.reject_reason = str(exc)
            self.node.get_logger().warning(f"{self.image_topic}: frame rejected: {exc}", throttle_duration_sec=5.0)
            return
        frame = Frame(rgb=rgb, header=msg.header, received=time.monotonic())
        self.latest = frame
        self.last_frame_time = frame.received
        self.warned = False
        self.slot.put(frame)
        self.node.wake_worker()

    def _on_depth(self, msg: Image) -> None:
        self.depth.add(stamp_seconds(msg.header), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    # depth lookup for a frame --------------------------------------------------------------------------------------
    def depth_for(self, frame: Frame, settings: NodeSettings):
        """(depth in metres or None, intrinsics or None, reason text)."""
        if not settings.use_depth:
            return None, None, "depth disabled"
        intrinsics = intrinsics_from_camera_info(self.camera_info) if self.camera_info is not None else None
        msg = self.depth.nearest(stamp_seconds(frame.header), settings.depth_sync_tolerance_s)
        if msg is None:
            return None, intrinsics, "no depth image" if len(self.depth) == 0 else "no depth image within the stamp tolerance"
        try:
            return depth_image_to_metres(msg, settings.depth_scale), intrinsics, ""
        except ValueError as exc:
            self.node.get_logger().warning(f"{self.depth_topic}: {exc}", throttle_duration_sec=5.0)
            return None, intrinsics, f"bad depth image: {exc}"

    def why_no_images(self) -> str:
        topic = self.node.resolve_topic_name(self.image_topic)
        publishers = self.node.get_publishers_info_by_topic(self.image_sub.topic_name if self.image_sub else topic)
        if self.rejected:
            return f"{self.rejected} frame(s) on {topic} were rejected: {self.reject_reason}"
        if not publishers:
            return f"nobody publishes {topic} (check the topic name / remapping)"
        if self.image_qos is not None and self.image_qos.reliability == ReliabilityPolicy.RELIABLE and any(
            p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers
        ):
            return f"QoS mismatch on {topic}: the publisher is BEST_EFFORT, this node subscribes RELIABLE (set image_qos:=auto)"
        return f"{len(publishers)} publisher(s) on {topic} but no frame arrived (network or large-message fragmentation?)"


@dataclass
class ActiveCommand:
    text: str
    expressions: list[str]
    serial: int


class MLLMSegNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("mllmseg_node", **kwargs)
        declare_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.settings: NodeSettings | None = None
        self.segmenter = None
        self.streams: list[CameraStream] = []
        self._engine_lock = threading.Lock()  # the segmenter serves one caller at a time (worker or service)
        self._command: ActiveCommand | None = None
        self._command_lock = threading.Lock()
        self._command_serial = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._active = False
        self._last_result_time = 0.0
        self._last_latency_ms = 0.0
        self._service_finished = 0.0  # time.monotonic() at the end of the last ~/segment call
        self._errors = 0
        self._sensor_group = ReentrantCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._command_sub = None
        self._service = None
        self._timers: list = []
        self._diagnostics_pub = None

    # parameters ----------------------------------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            reason = validate(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            spec = SPECS.get(param.name)
            if self.settings is not None and spec is not None and not spec.runtime:
                return SetParametersResult(
                    successful=False, reason=f"{param.name} is read on configure; clean up and configure again to change it"
                )
        if self.settings is not None:
            self._apply_runtime_parameters({p.name: p.value for p in params})
        return SetParametersResult(successful=True)

    def _apply_runtime_parameters(self, changes: dict) -> None:
        """New values of run-time parameters (all validated) into the settings and the segmenter's options."""
        changes = {k: tuple(v for v in value if v != "") if isinstance(value, list) else value for k, value in changes.items()}
        self.settings = dataclasses.replace(self.settings, **changes)
        if self.segmenter is not None:
            options = self.segmenter.options
            options.threshold = self.settings.threshold
            options.centroid_of_largest_component = self.settings.centroid_of_largest_component
            options.command_prefixes = self.settings.command_prefixes or DEFAULT_COMMAND_PREFIXES

    # lifecycle -----------------------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        self.settings = settings = NodeSettings.from_node(self)
        if not settings.model_path:
            self.get_logger().error("model_path is empty: set it to an MLLMSeg checkpoint folder")
            self.settings = None
            return TransitionCallbackReturn.FAILURE
        try:
            self.segmenter = self._load_segmenter(settings)
        except Exception as exc:  # a missing/corrupt model must fail the transition, not kill the process
            self.get_logger().error(f"cannot load the model from {settings.model_path}: {exc}")
            self.settings = None
            return TransitionCallbackReturn.FAILURE
        self.streams = [CameraStream(self, namespace) for namespace in (settings.cameras or ("",))]
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE_10)
        self._service = self._create_segment_service()
        self.get_logger().info(f"model loaded from {settings.model_path} ({settings.device}, {self._dtype_name(settings)})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        for stream in self.streams:
            stream.subscribe(self.settings, self._sensor_group)
        self._command_sub = self.create_subscription(String, "command", self._on_command, RELIABLE_10, callback_group=self._sensor_group)
        if self.settings.initial_command.strip():
            self._set_command(self.settings.initial_command)
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="mllmseg_inference", daemon=True)
        self._worker.start()
        self._timers = [self.create_timer(1.0, self._watch_inputs, callback_group=self._timer_group)]
        if self.settings.diagnostics_period_s > 0:
            self._timers.append(self.create_timer(self.settings.diagnostics_period_s, self._publish_diagnostics, callback_group=self._timer_group))
        self._active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        for stream in self.streams:
            stream.unsubscribe()
        if self._command_sub is not None:
            self.destroy_subscription(self._command_sub)
            self._command_sub = None
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for stream in self.streams:
            stream.unsubscribe()
            stream.publisher.destroy()
        self.streams = []
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        with self._engine_lock:
            self.segmenter = None
        self.settings = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    @staticmethod
    def _dtype_name(settings: NodeSettings) -> str:
        if settings.dtype != "auto":
            return settings.dtype
        return "bfloat16" if settings.device.startswith("cuda") else "float32"

    def _load_segmenter(self, settings: NodeSettings):
        import torch

        from ..engine import Segmenter, SegmenterOptions

        options = SegmenterOptions(
            threshold=settings.threshold,
            centroid_of_largest_component=settings.centroid_of_largest_component,
            command_prefixes=settings.command_prefixes or DEFAULT_COMMAND_PREFIXES,
        )
        return Segmenter.from_pretrained(
            settings.model_path, device=settings.device, dtype=getattr(torch, self._dtype_name(settings)),
            threads=settings.threads or None, quantization=None if settings.quantization == "none" else settings.quantization,
            allow_pickle=settings.allow_pickle, options=options, cuda_graphs=settings.cuda_graphs,
        )

    # commands ------------------------------------------------------------------------------------------------------
    def _on_command(self, msg: String) -> None:
        self._set_command(msg.data)

    def _set_command(self, text: str) -> None:
        if not text.strip():
            with self._command_lock:
                self._command = None
            self.get_logger().info("command cleared")
            return
        try:
            expressions = self.segmenter.expressions_from_command(text)
            self.segmenter.prompt_ids(expressions)  # rejects prompts longer than the model's context
        except ValueError as exc:
            self.get_logger().warning(f"command ignored: {exc}", throttle_duration_sec=2.0)
            return
        with self._command_lock:
            self._command_serial += 1
            self._command = ActiveCommand(text, expressions, self._command_serial)
        if self.settings.mode == "once":
            for stream in self.streams:  # answer the NEXT frame, not one taken before the command
                stream.slot.clear()
        self.get_logger().info(f"command {text!r} -> {expressions}")
        self.wake_worker()

    # inference thread ----------------------------------------------------------------------------------------------
    def wake_worker(self) -> None:
        self._wake.set()

    def _stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            with self._command_lock:
                command = self._command
            if command is None or self._stop.is_set():
                continue
            settings = self.settings
            if settings.max_rate_hz > 0:
                wait = self._last_result_time + 1.0 / settings.max_rate_hz - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
            batch = [(stream, frame) for stream in self.streams if (frame := stream.slot.take()) is not None]
            if not batch:
                continue
            self._process(batch, command, settings)
            self._last_result_time = time.monotonic()
            if settings.mode == "once":
                with self._command_lock:
                    if self._command is not None and self._command.serial == command.serial:
                        self._command = None
            if any(stream.slot.peek() is not None for stream in self.streams):
                self._wake.set()

    def _process(self, batch, command: ActiveCommand, settings: NodeSettings) -> None:
        try:
            with self._engine_lock:
                if self.segmenter is None:
                    return
                results = self.segmenter.segment_batch([frame.rgb for _, frame in batch], [command.expressions] * len(batch))
                timings = dict(self.segmenter.last_timings)
        except Exception as exc:  # one bad frame (or CUDA OOM) must not stop the node
            self._errors += 1
            self._recover_from(exc)
            self.get_logger().error(f"inference failed on this frame: {exc}", throttle_duration_sec=5.0)
            return
        for (stream, frame), frame_results in zip(batch, results):
            try:
                started = time.perf_counter()
                depth, intrinsics, depth_reason = stream.depth_for(frame, settings)
                lookup = time.perf_counter() - started
                array = build_array(frame, command.text, frame_results, depth, intrinsics, depth_reason, timings, lookup)
                stream.publisher.publish(array, frame, frame_results, settings.publish_markers)
                stream.processed += 1
                self._last_latency_ms = array.total_ms
            except Exception as exc:
                self._errors += 1
                self.get_logger().error(f"publishing results failed: {exc}", throttle_duration_sec=5.0)

    @staticmethod
    def _recover_from(exc: Exception) -> None:
        try:
            import torch

            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # service -------------------------------------------------------------------------------------------------------
    def _create_segment_service(self):
        from ..srv import Segment

        return self.create_service(Segment, "~/segment", self._on_segment_request, callback_group=self._service_group)

    def _on_segment_request(self, request, response):
        try:
            return self._answer_segment_request(request, response)
        finally:
            self._service_finished = time.monotonic()

    def _answer_segment_request(self, request, response):
        response.success = False
        if not self._active or self.segmenter is None:
            response.message = "node is not active"
            return response
        try:
            expressions = [e for e in request.expressions if e.strip()]
            text = "; ".join(expressions) if expressions else request.command
            expressions = expressions or self.segmenter.expressions_from_command(request.command)
            stream = self.streams[0]
            if request.use_latest_image:
                frame = stream.latest
                if frame is None:
                    response.message = f"no image received yet on {self.resolve_topic_name(stream.image_topic)}"
                    return response
            else:
                frame = Frame(rgb=image_to_rgb(request.image), header=request.image.header, received=time.monotonic())
            with self._engine_lock:
                results = self.segmenter.segment(frame.rgb, expressions)
                timings = dict(self.segmenter.last_timings)
            started = time.perf_counter()
            depth, intrinsics, reason = stream.depth_for(frame, self.settings)
            lookup = time.perf_counter() - started
            response.result = build_array(frame, text, results, depth, intrinsics, reason, timings, lookup)
            response.success = True
            response.message = "ok"
        except Exception as exc:  # bad request or model failure: answer, do not crash
            self._recover_from(exc)
            response.message = str(exc)
        return response

    # watchdog and diagnostics --------------------------------------------------------------------------------------
    def _watch_inputs(self) -> None:
        settings = self.settings
        if not self._active or settings is None:
            return
        now = time.monotonic()
        for stream in self.streams:
            if settings.image_qos == "auto":
                stream.resubscribe_image(settings, self._sensor_group)
            # A service call on a single-threaded executor holds back the image callbacks meanwhile: not silence.
            silent = now - max(stream.last_frame_time, self._service_finished)
            if settings.no_image_warn_s > 0 and silent > settings.no_image_warn_s and not stream.warned:
                stream.warned = True
                self.get_logger().warning(f"no image for {silent:.0f} s: {stream.why_no_images()}")

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None:
            return
        status = DiagnosticStatus(name=f"{self.get_name()}: segmentation", hardware_id=self.settings.device if self.settings else "")
        counters = self.counters()
        status.level = DiagnosticStatus.OK if counters["received"] and not counters["errors"] else DiagnosticStatus.WARN
        status.message = "running" if counters["received"] else "waiting for images"
        with self._command_lock:
            command = self._command.text if self._command else ""
        values = {f"frames_{k}" if k != "errors" else k: v for k, v in counters.items()}
        values |= {"last_latency_ms": round(self._last_latency_ms, 1), "command": command}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        self._diagnostics_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    def counters(self) -> dict[str, int]:
        return {
            "received": sum(s.slot.received for s in self.streams),
            "processed": sum(s.processed for s in self.streams),
            "dropped": sum(s.slot.dropped for s in self.streams),
            "rejected": sum(s.rejected for s in self.streams),
            "errors": self._errors,
        }

    def shutdown_worker(self) -> None:
        self._active = False
        self._stop_worker()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = MLLMSegNode()
    # Single-threaded on purpose. The callbacks only hand work over (inference has its own thread), and rclpy's
    # MultiThreadedExecutor makes large messages slow: a 0.9 MB image's round trip between two nodes took 135 ms
    # (4 threads) to 514 ms (1 thread) against 6 ms single-threaded (benchmarks/README.md). The callback groups still
    # let a user who composes this node into a MultiThreadedExecutor run the service beside the camera callbacks.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if node.get_parameter("autostart").value:
        node.trigger_configure()
        if node.settings is not None:
            node.trigger_activate()
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
