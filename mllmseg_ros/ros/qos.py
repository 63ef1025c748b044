"""QoS for subscriptions to sensor topics: match what the publishers offer.

A RELIABLE subscriber never connects to a BEST_EFFORT camera (the classic silent "no output"), while BEST_EFFORT
across processes drops most large frames that a RELIABLE publisher (a depth camera driver, a bag replay) would
deliver. So by default each subscription (image, depth, camera_info, and the bag recorder's) copies the publishers'
reliability and durability, and the node re-creates it if they change.

Over a lossy network (``network: remote``) a reliable subscription makes the camera resend lost fragments of frames
that are stale by the time they arrive, and a stalled frame holds back the next: there, ``auto`` subscribes best
effort, and the newest frame that arrives whole is the one used (docs/remote.md has the measurements).
"""
from __future__ import annotations

import copy

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

IMAGE_DEPTH = 1  # colour frames: keep only the newest in the middleware too
SENSOR_DEPTH = 5  # depth and camera_info: a few, so a burst does not replace a frame's depth before it is paired
# Commands, results, diagnostics: every message counts.
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def overridable() -> QoSOverridingOptions:
    """For every endpoint: `qos_overrides.<topic>.<publisher|subscription>.<policy>` parameters (a params file or
    -p) replace these policies of the profile the node chose."""
    return QoSOverridingOptions(policy_kinds=(QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
                                              QoSPolicyKind.DURABILITY))


def own_profile(profile: QoSProfile) -> QoSProfile:
    """A copy of ``profile`` for one endpoint: rclpy writes a topic's qos_overrides into the profile object it is given,
    so a shared one would carry that topic's override to every endpoint made with it afterwards."""
    return copy.copy(profile)


def overridden(node: Node, topic: str, kind: str = "subscription") -> bool:
    """Whether the node was started with a QoS override for ``topic``'s ``kind`` (publisher or subscription)."""
    prefix = f"qos_overrides.{node.resolve_topic_name(topic)}.{kind}."
    return any(name.startswith(prefix) for name in getattr(node, "_parameter_overrides", {}))


def overriding_when_given(node: Node, topic: str, kind: str) -> QoSOverridingOptions | None:
    """For an endpoint whose profile the node chooses anew (output_qos on configure, a command subscription latched
    or not): the overriding options only where the user gave an override for it. rclpy declares the override
    parameters once, read-only, with the first profile's values, and applies them to every later endpoint of the
    topic: declared without an override, they would hold the node to its first choice."""
    return overridable() if overridden(node, topic, kind) else None


def sensor_setting(image_qos: str, network: str) -> str:
    """The reliability setting the sensor subscriptions use: ``image_qos``, except that ``auto`` is best effort when the
    camera is across a network."""
    return "best_effort" if image_qos == "auto" and network == "remote" else image_qos


def output_qos(setting: str, depth: int = 10) -> QoSProfile:
    """Results, centroid and markers: reliable (every result, in order) or best effort (``output_qos: best_effort``)."""
    reliability = ReliabilityPolicy.BEST_EFFORT if setting == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=depth, reliability=reliability)


def sensor_qos(reliability: ReliabilityPolicy, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE,
               depth: int = IMAGE_DEPTH) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability)


def matching_qos(node: Node, topic: str, depth: int) -> QoSProfile | None:
    """The profile that connects to every publisher of ``topic`` and loses nothing they deliver; None when nobody
    publishes it. BEST_EFFORT if any publisher is; TRANSIENT_LOCAL only if all are (a latched topic)."""
    offered = [info.qos_profile for info in node.get_publishers_info_by_topic(topic)]
    if not offered:
        return None
    best_effort = any(q.reliability == ReliabilityPolicy.BEST_EFFORT for q in offered)
    latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return sensor_qos(
        ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        depth,
    )


def choose_sensor_qos(node: Node, topic: str, setting: str, depth: int = IMAGE_DEPTH) -> tuple[QoSProfile, str]:
    """(profile, explanation) for ``setting`` in {"auto", "reliable", "best_effort"}."""
    if setting == "reliable":
        return sensor_qos(ReliabilityPolicy.RELIABLE, depth=depth), "reliable (parameter)"
    if setting == "best_effort":
        return sensor_qos(ReliabilityPolicy.BEST_EFFORT, depth=depth), "best_effort (parameter)"
    profile = matching_qos(node, topic, depth)
    if profile is None:
        # Best effort connects to either kind of publisher; re-checked when one appears.
        return sensor_qos(ReliabilityPolicy.BEST_EFFORT, depth=depth), "best_effort (no publisher yet)"
    publishers = len(node.get_publishers_info_by_topic(topic))
    return profile, f"{profile.reliability.name.lower()} (matched {publishers} publisher(s))"


def same_profile(a: QoSProfile | None, b: QoSProfile) -> bool:
    return a is not None and a.reliability == b.reliability and a.durability == b.durability
