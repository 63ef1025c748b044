"""The ``command`` subscription: reliable, latched whenever the planner's publisher is, and each command taken once.

A command must not be lost when the node and the planner lose each other for a while (Wi-Fi out of range longer
than DDS's liveliness lease, a node restart): a planner that publishes its command latched (reliable, transient
local) has it delivered again on the next match, if the subscription is transient local too. But a transient-local
subscription never matches a volatile publisher (DDS calls them incompatible, and both sides log it), and most
publishers are volatile. So durability follows the publishers, as the sensor topics' QoS does (ros/qos.py): transient
local while every publisher of the topic is, volatile otherwise, re-checked by the node's watchdog (every second) and
kept as it is while nobody publishes (out of range).

When the subscription is re-made, or the link comes back, a latched publisher sends its last command again: each
publication (publisher gid and sequence number, from the message info) is handed to the node once.

A user's `qos_overrides.<command topic>.subscription.*` parameters win: the subscription is made with them and never
re-made to follow the publishers.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from .qos import overridden, overriding_when_given

if TYPE_CHECKING:
    from rclpy.node import Node

COMMAND_DEPTH = 10  # commands sent in a burst are all taken, in order
REMEMBERED = 256  # publications remembered to recognise a redelivery


def command_qos(latched: bool) -> QoSProfile:
    return QoSProfile(depth=COMMAND_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def publishers_latched(node: "Node", topic: str) -> bool | None:
    """Whether every publisher of ``topic`` is transient local (None when there is none)."""
    offered = [info.qos_profile.durability for info in node.get_publishers_info_by_topic(topic)]
    if not offered:
        return None
    return all(durability == DurabilityPolicy.TRANSIENT_LOCAL for durability in offered)


class CommandSubscription:
    """``create`` on configure, ``destroy`` on cleanup; the publications already taken are remembered across."""

    def __init__(self, node: "Node", topic: str, callback: Callable, group) -> None:
        self.node, self.topic, self.callback, self.group = node, topic, callback, group
        self.subscription = None
        self.latched = False
        self._taken: OrderedDict = OrderedDict()

    def create(self) -> None:
        self.latched = bool(publishers_latched(self.node, self.node.resolve_topic_name(self.topic)))
        self.subscription = self._subscribe()
        # what it has: a qos_overrides entry may have set the durability
        self.latched = self.subscription.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL

    def destroy(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
        self.subscription = None

    def _subscribe(self):
        return self.node.create_subscription(String, self.topic, self._on_message, command_qos(self.latched),
                                             callback_group=self.group,
                                             qos_overriding_options=overriding_when_given(self.node, self.topic, "subscription"))

    def match(self) -> None:
        """Re-make the subscription when the publishers' durability calls for the other one (not when the user fixed
        the topic's QoS)."""
        if self.subscription is None or overridden(self.node, self.topic, "subscription"):
            return
        latched = publishers_latched(self.node, self.node.resolve_topic_name(self.topic))
        if latched is None or latched == self.latched:
            return  # nobody publishes (out of range?): keep what matched them
        self.latched = latched
        old, self.subscription = self.subscription, self._subscribe()  # the new one first: no moment without
        self.node.destroy_subscription(old)
        self.node.get_logger().info(f"{self.node.resolve_topic_name(self.topic)}: subscribed "
                                    f"{'latched (transient local)' if latched else 'volatile'}, as its publishers")

    def _on_message(self, msg, info) -> None:
        gid = (info.get("publisher_gid") or {}).get("data")
        sequence = info.get("publication_sequence_number")
        if gid is not None and sequence is not None:
            key = (bytes(gid), sequence)
            if key in self._taken:
                return  # the same publication again (latched history after a re-match or a reconnection)
            self._taken[key] = None
            if len(self._taken) > REMEMBERED:
                self._taken.popitem(last=False)
        self.callback(msg)
