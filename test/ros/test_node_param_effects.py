"""Each node parameter that shapes what a robot receives, observed through the node's outputs (not through its
settings object): max_rate_hz, initial_command, use_depth, command_prefixes, stop_phrases. (depth_scale,
centroid_of_largest_component and the overlay topic: test_node_masks.py; threshold: test_node.py.) Every "did not
happen" check first sees the positive case in the same test."""
from __future__ import annotations

import time

import pytest

from ros_harness import camera_info_msg, connected, depth_msg, results_flow, rgb_msg, wait_for


def stream_frames(driver, seconds: float, start_ns: int) -> int:
    """A 30 fps camera for ``seconds``; the number of frames sent."""
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        driver.image.publish(rgb_msg(stamp_ns=start_ns + sent * 33_000_000))
        sent += 1
        time.sleep(max(0.0, started + sent / 30.0 - time.monotonic()))
    return sent


def test_max_rate_hz_caps_the_answers_and_lifting_it_lets_them_through(ros, make_node, seg_checkpoint):
    from rclpy.parameter import Parameter

    node = make_node(seg_checkpoint, threshold=0.0, tracking="off", max_rate_hz=1.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    assert results_flow(driver)  # the first answer
    capped_from = len(driver.model_answers)
    stream_frames(driver, 4.0, 10**9)
    capped = len(driver.model_answers) - capped_from
    assert 2 <= capped <= 6, capped  # 1 a second over 4 s (one may straddle each end)
    assert node.set_parameters([Parameter("max_rate_hz", value=0.0)])[0].successful
    time.sleep(0.5)
    free_from = len(driver.model_answers)
    stream_frames(driver, 4.0, 100 * 10**9)
    free = len(driver.model_answers) - free_from
    assert free > 2 * capped, (free, capped)  # the same stream, as fast as the model answers


def test_initial_command_is_answered_without_any_command(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0, tracking="off", initial_command="pick up the blue bowl")
    driver = ros.driver()
    assert connected(node, driver)
    assert results_flow(driver)
    array = driver.model_answers[0]
    assert [s.expression for s in array.segmentations] == ["the blue bowl"] and array.segmentations[0].found


@pytest.mark.parametrize("use_depth", [True, False])
def test_use_depth_false_gives_2d_answers_and_reads_no_depth(ros, make_node, seg_checkpoint, use_depth):
    """Depth and camera_info are published as a camera would; with use_depth false the node does not subscribe to
    them, and its answers (which do come) carry no 3D centroid. The same stream with use_depth true gives one."""
    node = make_node(seg_checkpoint, threshold=0.0, tracking="off", use_depth=use_depth)
    driver = ros.driver()
    assert connected(node, driver)
    assert wait_for(lambda: driver.depth.get_subscription_count() == driver.info.get_subscription_count()
                    == int(use_depth), timeout=5)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    stamp = 7 * 10**9

    def answered():
        nonlocal stamp
        stamp += 10**9
        driver.info.publish(camera_info_msg())
        driver.depth.publish(depth_msg(1.5, stamp_ns=stamp))
        time.sleep(0.02)
        driver.image.publish(rgb_msg(stamp_ns=stamp))
        return bool(driver.model_answers)

    assert wait_for(lambda: answered() and len(driver.model_answers) >= 2, interval=0.3)
    segmentation = driver.model_answers[0].segmentations[0]
    assert segmentation.found
    if use_depth:
        assert segmentation.centroid_3d_valid and abs(segmentation.centroid_3d.z - 1.5) < 1e-3
        assert wait_for(lambda: driver.centroids)
    else:
        assert not segmentation.centroid_3d_valid and segmentation.centroid_3d_status == "depth disabled"
        assert not driver.centroids  # no PointStamped either (two answers have come)


def test_command_prefixes_replace_the_built_in_list(ros, make_node, seg_checkpoint):
    """command_prefixes: ["yo bot"]: that prefix is taken off, and the built-in ones ("pick up") are not any more."""
    node = make_node(seg_checkpoint, threshold=0.0, tracking="off", command_prefixes=["yo bot"])
    driver = ros.driver()
    assert connected(node, driver)
    for command, expression in (("yo bot the blue bowl", "the blue bowl"), ("pick up the red cup", "pick up the red cup")):
        since = len(driver.arrays)
        driver.send_command(command)
        assert wait_for(lambda: node.target.current is not None and node.target.current.text == command)
        assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=len(driver.arrays) + 10**9 * since + 1)),
                                 any(a.segmentations[0].expression == expression for a in driver.arrays[since:]))[1],
                        interval=0.2), [a.segmentations[0].expression for a in driver.arrays]


def test_stop_phrases_replace_the_built_in_list(ros, make_node, seg_checkpoint):
    """stop_phrases: ["pineapple"] (a word no built-in list has): it ends the target, while answers flowed before."""
    node = make_node(seg_checkpoint, threshold=0.0, tracking="off", stop_phrases=["pineapple"])
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    assert results_flow(driver)
    driver.send_command("pineapple")
    assert wait_for(lambda: node.target.current is None)
    assert node.commands.last.command == "pineapple" and node.commands.last.name == "stopped"
