"""Every node parameter, declared in one place with its description, range and when it may change.

``declare_parameters`` registers them on a node; ``NodeSettings.from_node`` reads them into a frozen dataclass that
the rest of the node uses (no ``get_parameter`` calls scattered through the code). Values are taken as people type
them (ros/param_coercion.py): a wrong one is a reason in words, never an exception that ends the process.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from .param_coercion import coerce, expected, kind_of

MODES = ("continuous", "once")
QOS_CHOICES = ("auto", "reliable", "best_effort")
TRANSPORTS = ("raw", "compressed")  # image_transport's names; compressed = sensor_msgs/CompressedImage (JPEG/PNG)
DEPTH_REGISTERED = ("auto", "true", "false")
NETWORKS = ("local", "remote")
OUTPUT_QOS_CHOICES = ("reliable", "best_effort")
DEPTH_TRANSPORTS = ("raw", "compressedDepth")
MASK_FORMATS = ("image", "png", "none")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TRACKING_CHOICES = ("auto", "on", "off")
# track_rate_hz 0 while the model runs on the CPU: each millisecond of tracking there stalls inference (its threads
# wait for each other), and evenly spaced frames at this rate keep tracked masks nearly as good as every frame's
# (benchmarks/README.md has both)
TRACK_RATE_ON_CPU_HZ = 7.5


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    runtime: bool = False  # may change while the node is active
    choices: tuple[str, ...] = ()
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None


PARAMETERS: tuple[ParameterSpec, ...] = (
    # Model (read on configure)
    ParameterSpec("model_path", "", "MLLMSeg checkpoint folder (config.json, *.safetensors, tokenizer files)"),
    ParameterSpec("device", "cpu", "torch device: cpu, cuda, cuda:1 ..."),
    ParameterSpec("dtype", "auto", "weights dtype; auto = float32 on CPU, bfloat16 on CUDA", choices=DTYPES),
    ParameterSpec("threads", 0, "CPU threads for torch (0 = one fewer than the usable cores, at least 1: a busy "
                  "robot computer answers faster so)", int_range=(0, 256)),
    ParameterSpec("quantization", "none", "8/4-bit ViT and LLM weights: int8 (torch, CPU float32), bnb-int8 or "
                  "bnb-nf4 (bitsandbytes)", choices=("none", "int8", "bnb-int8", "bnb-nf4")),
    ParameterSpec("cuda_graphs", True, "on a GPU, replay the ViT's and LLM's passes as CUDA graphs (faster; the first "
                  "frame and each new command length capture one, well under a second)"),
    ParameterSpec("allow_pickle", False, "allow pytorch_model.bin (pickle) checkpoints"),
    # Behaviour (may change at run time)
    ParameterSpec("mode", "continuous", "continuous: segment every new frame with the last command; "
                  "once: answer the next frame after a command, then idle", runtime=True, choices=MODES),
    ParameterSpec("initial_command", "", "command active from start (e.g. for tracking); empty = wait for one"),
    ParameterSpec("threshold", 0.5, "mask threshold on the probability map", runtime=True, float_range=(0.0, 1.0)),
    ParameterSpec("max_rate_hz", 0.0, "at most this many results per second (0 = as fast as the model runs)",
                  runtime=True, float_range=(0.0, 1000.0)),
    ParameterSpec("command_prefixes", [""], "leading command phrases to strip ('pick up', 'go to' ...); "
                  "[''] = built-in list", runtime=True),
    ParameterSpec("stop_phrases", [""], "commands that end the current target like an empty one ('stop', 'cancel', "
                  "'never mind' ...); [''] = built-in list", runtime=True),
    ParameterSpec("max_command_chars", 1000, "longer commands are rejected in the callback, before any parsing",
                  runtime=True, int_range=(1, 1_000_000)),
    ParameterSpec("max_frame_age_s", 0.25, "a new command is answered with frames received after it, or at most this "
                  "long before it (never with an older one)", runtime=True, float_range=(0.0, 60.0)),
    ParameterSpec("centroid_of_largest_component", False, "centroid of the mask's largest connected part",
                  runtime=True),
    ParameterSpec("tracking", "auto", "carry the last model answer to each new camera frame between answers (optical "
                  "flow, sharpened by the target's colours; source = tracked); auto = while the model answers slower "
                  "than the camera sends frames",
                  runtime=True, choices=TRACKING_CHOICES),
    ParameterSpec("track_rate_hz", 0.0, "at most this many tracked results per second per camera, evenly spaced (0 = "
                  f"every frame while the model runs on a GPU, {TRACK_RATE_ON_CPU_HZ:g} while it runs on the CPU, "
                  "where every millisecond of tracking slows inference; a rate at or above the camera's tracks every "
                  "frame)", runtime=True, float_range=(0.0, 1000.0)),
    ParameterSpec("track_min_confidence", 0.5, "a track whose confidence (the flow's forward-backward consistency, or "
                  "the share of the target's colours within the carried mask) falls below this is dropped (found "
                  "false, track_status says why)", runtime=True, float_range=(0.0, 1.0)),
    # Inputs (read on configure)
    ParameterSpec("cameras", [""], "camera namespaces served by one model ([''] = one camera on relative topics "
                  "image, depth, camera_info); frames of several cameras are batched"),
    ParameterSpec("image_transport", "raw", "how images arrive, as image_transport names it: raw (sensor_msgs/Image "
                  "on image) or compressed (sensor_msgs/CompressedImage on <image>/compressed, after remapping)",
                  choices=TRANSPORTS),
    ParameterSpec("image_compressed", False, "deprecated: true is image_transport: compressed"),
    ParameterSpec("image_qos", "auto", "QoS of the image, depth and camera_info subscriptions; auto = match each "
                  "topic's publishers' reliability/durability", choices=QOS_CHOICES),
    ParameterSpec("use_depth", True, "subscribe to depth + camera_info for 3D centroids"),
    ParameterSpec("depth_registered", "auto", "whether depth is registered to the colour image (pixel for pixel, "
                  "e.g. RealSense aligned_depth_to_color): auto = when the depth image's frame_id is the colour "
                  "image's; true = trust it whatever the frame_id; false = never (2D only)", choices=DEPTH_REGISTERED),
    ParameterSpec("depth_transport", "raw", "how depth arrives, as image_transport names it: raw (sensor_msgs/Image on "
                  "depth) or compressedDepth (16UC1/32FC1 as PNG or RVL in a CompressedImage on <depth>/compressedDepth, "
                  "after remapping)", choices=DEPTH_TRANSPORTS),
    ParameterSpec("network", "local", "where the camera is: local (same machine or wired) or remote (over Wi-Fi or "
                  "another lossy link: image_qos auto subscribes best effort; docs/remote.md)",
                  choices=NETWORKS),
    ParameterSpec("depth_scale", 0.001, "metres per unit of 16UC1 depth", float_range=(1e-6, 10.0)),
    ParameterSpec("min_depth_m", 0.1, "depth values nearer than this are no measurement", runtime=True,
                  float_range=(0.0, 1000.0)),
    ParameterSpec("max_depth_m", 20.0, "depth values farther than this are no measurement (65.5 m from a 65535 "
                  "no-return code, millimetres read as metres)", runtime=True, float_range=(0.0, 1000.0)),
    ParameterSpec("depth_sync_tolerance_s", 0.05, "max stamp difference between a colour frame and its depth frame",
                  float_range=(0.0, 10.0)),
    ParameterSpec("no_image_warn_s", 5.0, "warn (once, with the likely reason) when no image arrives this long",
                  float_range=(0.0, 3600.0)),
    # Outputs
    ParameterSpec("mask_format", "image", "how each result carries its mask: image (full-size mono8 Image), png (only "
                  "the part inside bbox, as PNG in mask_png: about 1 kB instead of 300 kB at 640x480) or none (no mask); "
                  "mllmseg_ros.ros.compact.segmentation_mask decodes all three", runtime=True, choices=MASK_FORMATS),
    ParameterSpec("output_qos", "reliable", "reliability of the results topics (segmentations, detections, "
                  "detections_3d), centroid and markers: reliable, or best_effort for a lossy link (a lost result is not "
                  "sent again; the next one comes)",
                  choices=OUTPUT_QOS_CHOICES),
    ParameterSpec("publish_markers", False, "publish visualization_msgs/MarkerArray at 3D centroids"),
    ParameterSpec("diagnostics_period_s", 1.0, "period of /diagnostics updates (0 = off)", float_range=(0.0, 60.0)),
    ParameterSpec("diagnostics_window_s", 10.0, "/diagnostics is WARN while an error, a rejected frame or a rejected "
                  "command happened within this many seconds", float_range=(0.1, 3600.0)),
    # Lifecycle
    ParameterSpec("autostart", False, "configure and activate on start (plain node behaviour)"),
)
SPECS = {spec.name: spec for spec in PARAMETERS}


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else "")
    # dynamic_typing: rclpy takes whatever type YAML gave (`off`, `1`); coerce() decides what it means
    descriptor = ParameterDescriptor(description=text, read_only=False, dynamic_typing=True,
                                     additional_constraints=f"{kind_of(spec.default)}: {expected(spec)}")
    if spec.float_range:
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0], to_value=spec.float_range[1])]
    if spec.int_range:
        descriptor.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    return descriptor


def declare_parameters(node: Node) -> dict[str, str]:
    """Declare every parameter; each given value (override) is stored as the type it means (so `ros2 param get`
    shows what the node uses). Returns {name: reason} for the values that cannot be taken: those parameters keep
    their defaults, and the node refuses to configure until they are set right (``NodeSettings.from_node``)."""
    problems = {}
    for spec in PARAMETERS:
        try:
            value = node.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:  # rclpy's own range check
            problems[spec.name] = f"{spec.name}: {_given(node, spec.name)!r} is out of range; expected {expected(spec)}"
            node.get_logger().debug(str(exc))
            node.declare_parameter(spec.name, spec.default, _descriptor(spec), ignore_override=True)
            continue
        try:
            meant = coerce(spec, value)
        except ValueError as exc:
            problems[spec.name] = str(exc)
            continue
        if type(meant) is not type(value) or meant != value:
            node.set_parameters([Parameter(spec.name, value=meant)])
    return problems


def _given(node: Node, name: str) -> Any:
    override = getattr(node, "_parameter_overrides", {}).get(name)  # rclpy keeps the overrides it was started with
    return override.value if override is not None else None


def owned(name: str) -> bool:
    """Whether the node declared ``name`` itself (others, such as use_sim_time or qos_overrides.*, belong to rclpy)."""
    return name in SPECS


def validate(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is)."""
    try:
        coerce(SPECS[name], value)
    except ValueError as exc:
        return str(exc)
    return None


def settings_values(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values -> NodeSettings field values: coerced, lists as tuples without the '' placeholder."""
    meant = {}
    for name, value in values.items():
        value = coerce(SPECS[name], value)
        meant[name] = tuple(v for v in value if v != "") if isinstance(value, list) else value
    return meant


def check_changes(values: dict[str, Any], configured: bool, current) -> tuple[str | None, dict[str, Any]]:
    """(why the parameter ``values`` cannot be set, or None; the settings values they mean). ``configured``: only
    run-time parameters may change; ``current(name)``: the value a parameter not among ``values`` has now."""
    for name, value in values.items():
        if reason := validate(name, value):
            return reason, {}
        if configured and not SPECS[name].runtime:
            return f"{name} is read on configure; clean up and configure again to change it", {}
    changes = settings_values(values)
    if not {"min_depth_m", "max_depth_m"} & changes.keys():
        return None, changes
    limits = {name: changes.get(name, current(name)) for name in ("min_depth_m", "max_depth_m")}
    return depth_limits_problem(**limits), changes


def start_value(node: Node, name: str) -> Any:
    """A parameter needed before configure (or whatever the others hold): its value, or its default while the given
    one is wrong."""
    try:
        return coerce(SPECS[name], node.get_parameter(name).value)
    except ValueError:
        return SPECS[name].default


def depth_limits_problem(min_depth_m: float, max_depth_m: float) -> str | None:
    if min_depth_m >= max_depth_m:
        return f"min_depth_m ({min_depth_m:g}) must be below max_depth_m ({max_depth_m:g})"
    return None


@dataclass(frozen=True)
class NodeSettings:
    model_path: str
    device: str
    dtype: str
    threads: int
    quantization: str
    cuda_graphs: bool
    allow_pickle: bool
    mode: str
    initial_command: str
    threshold: float
    max_rate_hz: float
    command_prefixes: tuple[str, ...]
    stop_phrases: tuple[str, ...]
    max_command_chars: int
    max_frame_age_s: float
    centroid_of_largest_component: bool
    tracking: str
    track_rate_hz: float
    track_min_confidence: float
    cameras: tuple[str, ...]
    image_transport: str
    image_compressed: bool
    image_qos: str
    use_depth: bool
    depth_registered: str
    depth_transport: str
    network: str
    depth_scale: float
    min_depth_m: float
    max_depth_m: float
    depth_sync_tolerance_s: float
    no_image_warn_s: float
    mask_format: str
    output_qos: str
    publish_markers: bool
    diagnostics_period_s: float
    diagnostics_window_s: float
    autostart: bool

    @classmethod
    def from_node(cls, node: Node) -> "NodeSettings":
        """The settings of ``node``'s current parameter values; ValueError naming every value that is not usable."""
        values, problems = {}, []
        for f in fields(cls):
            try:
                values.update(settings_values({f.name: node.get_parameter(f.name).value}))
            except ValueError as exc:
                problems.append(str(exc))
        if not problems and (reason := depth_limits_problem(values["min_depth_m"], values["max_depth_m"])):
            problems.append(reason)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**values)

    @property
    def compressed(self) -> bool:
        """Images arrive as sensor_msgs/CompressedImage (image_transport: compressed, or the deprecated flag)."""
        return self.image_transport == "compressed" or self.image_compressed
