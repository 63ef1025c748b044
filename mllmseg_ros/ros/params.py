"""Every node parameter, declared in one place with its description, range and when it may change.

``declare_parameters`` registers them on a node; ``NodeSettings.from_node`` reads them into a frozen dataclass that
the rest of the node uses (no ``get_parameter`` calls scattered through the code).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

MODES = ("continuous", "once")
QOS_CHOICES = ("auto", "reliable", "best_effort")
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
    ParameterSpec("threads", 0, "CPU threads for torch (0 = torch default)", int_range=(0, 256)),
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
    ParameterSpec("image_compressed", False, "subscribe to sensor_msgs/CompressedImage on <image>/compressed"),
    ParameterSpec("image_qos", "auto", "QoS of the image, depth and camera_info subscriptions; auto = match each "
                  "topic's publishers' reliability/durability", choices=QOS_CHOICES),
    ParameterSpec("use_depth", True, "subscribe to depth + camera_info for 3D centroids"),
    ParameterSpec("depth_scale", 0.001, "metres per unit of 16UC1 depth", float_range=(1e-6, 10.0)),
    ParameterSpec("depth_sync_tolerance_s", 0.05, "max stamp difference between a colour frame and its depth frame",
                  float_range=(0.0, 10.0)),
    ParameterSpec("no_image_warn_s", 5.0, "warn (once, with the likely reason) when no image arrives this long",
                  float_range=(0.0, 3600.0)),
    # Outputs
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
    descriptor = ParameterDescriptor(description=text, read_only=False)
    if spec.float_range:
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0], to_value=spec.float_range[1])]
    if spec.int_range:
        descriptor.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    return descriptor


def declare_parameters(node: Node) -> None:
    for spec in PARAMETERS:
        node.declare_parameter(spec.name, spec.default, _descriptor(spec))


def owned(name: str) -> bool:
    """Whether the node declared ``name`` itself (others, such as use_sim_time or qos_overrides.*, belong to rclpy)."""
    return name in SPECS


def validate(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is). Ranges are enforced by rclpy itself."""
    spec = SPECS.get(name)
    if spec is not None and spec.choices and value not in spec.choices:
        return f"{name} must be one of {spec.choices}, got {value!r}"
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
    image_compressed: bool
    image_qos: str
    use_depth: bool
    depth_scale: float
    depth_sync_tolerance_s: float
    no_image_warn_s: float
    publish_markers: bool
    diagnostics_period_s: float
    diagnostics_window_s: float
    autostart: bool

    @classmethod
    def from_node(cls, node: Node) -> "NodeSettings":
        values = {}
        for f in fields(cls):
            value = node.get_parameter(f.name).value
            if isinstance(value, list):
                value = tuple(v for v in value if v != "")
            values[f.name] = value
        return cls(**values)
