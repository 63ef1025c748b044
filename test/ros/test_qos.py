"""Matching a sensor topic's publishers (image_qos: auto), with several publishers of mixed QoS and latched ones: the
profile chosen must connect to every publisher and lose nothing they deliver, which is checked by receiving from each
of them (the expected profiles are written out here, not computed with the functions under test)."""
from __future__ import annotations

import itertools

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from mllmseg_ros.ros.qos import (IMAGE_DEPTH, choose_sensor_qos, matching_qos, output_qos, overridable, overridden,
                                 overriding_when_given, own_profile, same_profile, sensor_qos, sensor_setting)
from ros_harness import wait_for

R, BE = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
VOLATILE, LATCHED = DurabilityPolicy.VOLATILE, DurabilityPolicy.TRANSIENT_LOCAL
_topics = itertools.count()


@pytest.fixture()
def node(ros):
    from rclpy.node import Node

    return ros.add(Node(f"qos_test_{next(_topics)}"))


def publishers(node, *profiles):
    """Publishers of one new topic with ``profiles`` ((reliability, durability) pairs); (topic, publishers)."""
    topic = f"/qos_test_topic_{next(_topics)}"
    made = [node.create_publisher(String, topic, QoSProfile(depth=5, reliability=r, durability=d)) for r, d in profiles]
    assert wait_for(lambda: node.count_publishers(topic) == len(profiles))
    return topic, made


@pytest.mark.parametrize("offered, reliability, durability", [
    ([(R, VOLATILE)], R, VOLATILE),
    ([(BE, VOLATILE)], BE, VOLATILE),
    ([(R, LATCHED)], R, LATCHED),
    ([(R, VOLATILE), (R, VOLATILE)], R, VOLATILE),
    ([(R, VOLATILE), (BE, VOLATILE)], BE, VOLATILE),  # any best-effort publisher: best effort
    ([(BE, VOLATILE), (R, VOLATILE), (R, VOLATILE)], BE, VOLATILE),
    ([(R, LATCHED), (R, LATCHED)], R, LATCHED),  # latched only if every publisher is
    ([(R, LATCHED), (R, VOLATILE)], R, VOLATILE),
    ([(R, VOLATILE), (BE, LATCHED)], BE, VOLATILE),
    ([(BE, LATCHED), (R, LATCHED)], BE, LATCHED),
])
def test_the_profile_that_connects_to_every_publisher(node, offered, reliability, durability):
    topic, _ = publishers(node, *offered)
    profile = matching_qos(node, topic, depth=7)
    assert (profile.reliability, profile.durability, profile.history, profile.depth) == (reliability, durability,
                                                                                      HistoryPolicy.KEEP_LAST, 7)
    chosen, why = choose_sensor_qos(node, topic, "auto", depth=7)
    assert (chosen.reliability, chosen.durability, chosen.depth) == (reliability, durability, 7)
    assert why == f"{reliability.name.lower()} (matched {len(offered)} publisher(s))"


def test_nobody_publishing_yet_gives_best_effort(node):
    topic = f"/qos_test_topic_{next(_topics)}"
    assert matching_qos(node, topic, IMAGE_DEPTH) is None
    profile, why = choose_sensor_qos(node, topic, "auto")
    assert (profile.reliability, profile.durability, profile.depth, why) == (BE, VOLATILE, IMAGE_DEPTH,
                                                                             "best_effort (no publisher yet)")
    assert choose_sensor_qos(node, topic, "auto", depth=7)[0].depth == 7


@pytest.mark.parametrize("setting, reliability", [("reliable", R), ("best_effort", BE)])
def test_a_fixed_setting_ignores_the_publishers(node, setting, reliability):
    topic, _ = publishers(node, (BE if reliability == R else R, LATCHED))
    profile, why = choose_sensor_qos(node, topic, setting, depth=3)
    assert (profile.reliability, profile.durability, profile.depth, why) == (reliability, VOLATILE, 3,
                                                                             f"{setting} (parameter)")


@pytest.mark.parametrize("offered", [
    [(R, VOLATILE), (BE, VOLATILE)],
    [(R, LATCHED), (R, VOLATILE)],
    [(R, LATCHED), (R, LATCHED)],
    [(BE, LATCHED), (R, VOLATILE)],
])
def test_a_subscription_with_the_chosen_profile_hears_every_publisher(node, offered):
    """Each publisher sends one message before the subscription exists (what a latched publisher keeps for late
    joiners) and one after: the subscription must hear every publisher's live message, and the early ones of latched
    publishers when all are latched."""
    topic, made = publishers(node, *offered)
    for index, publisher in enumerate(made):
        publisher.publish(String(data=f"early {index}"))
    profile, _ = choose_sensor_qos(node, topic, "auto", depth=10)
    heard: list[str] = []
    node.create_subscription(String, topic, lambda msg: heard.append(msg.data), profile)
    assert wait_for(lambda: all(p.get_subscription_count() == 1 for p in made))
    for index, publisher in enumerate(made):
        publisher.publish(String(data=f"live {index}"))
    assert wait_for(lambda: all(f"live {i}" in heard for i in range(len(made))), timeout=10), heard
    if all(durability == LATCHED for _, durability in offered):
        assert wait_for(lambda: all(f"early {i}" in heard for i in range(len(made))), timeout=10), heard


def test_same_profile_compares_reliability_and_durability():
    assert same_profile(sensor_qos(R), sensor_qos(R, depth=5))
    assert not same_profile(None, sensor_qos(R))
    assert not same_profile(sensor_qos(R), sensor_qos(BE))
    assert not same_profile(sensor_qos(R, LATCHED), sensor_qos(R, VOLATILE))


def test_qos_overrides_given_at_start_are_recognised(ros):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    node = ros.add(Node("qos_overrides_test", parameter_overrides=[
        Parameter("qos_overrides./image.subscription.reliability", value="reliable"),
        Parameter("qos_overrides./results.publisher.depth", value=3)]))
    assert overridden(node, "image") and overridden(node, "/image")
    assert not overridden(node, "depth") and not overridden(node, "image", "publisher")
    assert overridden(node, "results", "publisher") and not overridden(node, "results")
    kinds = {kind.name for kind in overridable().policy_kinds}
    assert kinds == {"HISTORY", "DEPTH", "RELIABILITY", "DURABILITY"}


def test_output_profiles():
    assert (output_qos("reliable").reliability, output_qos("reliable").depth) == (R, 10)
    assert (output_qos("best_effort", depth=3).reliability, output_qos("best_effort", depth=3).depth) == (BE, 3)


def test_a_remote_camera_on_auto_is_subscribed_best_effort():
    assert sensor_setting("auto", "remote") == "best_effort"
    assert sensor_setting("auto", "local") == "auto"
    assert sensor_setting("reliable", "remote") == "reliable"  # said by the user: kept


def test_each_endpoint_gets_its_own_profile():
    shared = sensor_qos(R, LATCHED, depth=4)
    mine = own_profile(shared)
    assert mine is not shared and (mine.reliability, mine.durability, mine.depth) == (R, LATCHED, 4)
    mine.depth = 9  # what rclpy does when an override applies
    assert shared.depth == 4


def test_overriding_options_only_where_an_override_was_given(ros):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    node = ros.add(Node("qos_overriding_test", parameter_overrides=[
        Parameter("qos_overrides./command.subscription.reliability", value="best_effort")]))
    options = overriding_when_given(node, "command", "subscription")
    assert options is not None and {kind.name for kind in options.policy_kinds} == {"HISTORY", "DEPTH", "RELIABILITY",
                                                                                   "DURABILITY"}
    assert overriding_when_given(node, "results", "subscription") is None
    assert overriding_when_given(node, "command", "publisher") is None
