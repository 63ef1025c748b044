"""QoS for the image subscription: match what the camera publishes.

A RELIABLE subscriber never connects to a BEST_EFFORT camera (the classic silent "no output"), while BEST_EFFORT
across processes drops most large frames that a RELIABLE publisher (e.g. a bag replay) would deliver. So by default
the subscription copies the publishers' reliability and durability, and is re-created if they change.
"""
from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

IMAGE_DEPTH = 1  # keep only the newest frame in the middleware too


def image_qos(reliability: ReliabilityPolicy, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=IMAGE_DEPTH, reliability=reliability, durability=durability)


def choose_image_qos(node: Node, topic: str, setting: str) -> tuple[QoSProfile, str]:
    """(profile, explanation) for ``setting`` in {"auto", "reliable", "best_effort"}."""
    if setting == "reliable":
        return image_qos(ReliabilityPolicy.RELIABLE), "reliable (parameter)"
    if setting == "best_effort":
        return image_qos(ReliabilityPolicy.BEST_EFFORT), "best_effort (parameter)"
    publishers = node.get_publishers_info_by_topic(topic)
    if not publishers:
        # Best effort connects to either kind of publisher; re-checked when one appears.
        return image_qos(ReliabilityPolicy.BEST_EFFORT), "best_effort (no publisher yet)"
    reliabilities = {p.qos_profile.reliability for p in publishers}
    reliability = ReliabilityPolicy.BEST_EFFORT if ReliabilityPolicy.BEST_EFFORT in reliabilities else ReliabilityPolicy.RELIABLE
    durabilities = {p.qos_profile.durability for p in publishers}
    durability = DurabilityPolicy.TRANSIENT_LOCAL if durabilities == {DurabilityPolicy.TRANSIENT_LOCAL} else DurabilityPolicy.VOLATILE
    return image_qos(reliability, durability), f"{reliability.name.lower()} (matched {len(publishers)} publisher(s))"


def same_profile(a: QoSProfile | None, b: QoSProfile) -> bool:
    return a is not None and a.reliability == b.reliability and a.durability == b.durability
