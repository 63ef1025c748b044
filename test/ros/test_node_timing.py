"""Which frame answers which command, with a slow model: fresh frames only, no answer to an old command, and
depth/camera_info subscriptions matched to their publishers' QoS."""
from __future__ import annotations

import time

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_harness import camera_info_msg, commanded, connected, depth_msg, rgb_msg, slow_down, stamp_ns_of, wait_for


def test_a_command_is_not_answered_with_an_old_frame(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, max_frame_age_s=0.5)
    driver = ros.driver()
    assert connected(node, driver)
    driver.image.publish(rgb_msg(stamp_ns=1))
    assert wait_for(lambda: node.counters()["received"] == 1)
    time.sleep(1.5)  # the frame is now older than max_frame_age_s
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    assert not wait_for(lambda: driver.arrays, timeout=1.5)
    assert node.counters()["stale"] == 1
    driver.image.publish(rgb_msg(stamp_ns=2))
    assert wait_for(lambda: driver.arrays)
    assert [stamp_ns_of(a) for a in driver.arrays] == [2]


def test_a_recent_frame_answers_a_new_command(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, max_frame_age_s=5.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.image.publish(rgb_msg(stamp_ns=7))
    assert wait_for(lambda: node.counters()["received"] == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: driver.arrays)
    assert stamp_ns_of(driver.arrays[0]) == 7


@pytest.mark.parametrize("commands", [["the blue bowl"], ["the blue bowl", "the green box"]])
def test_frames_after_a_command_are_answered_with_it(ros, make_node, seg_checkpoint, commands):
    node = make_node(seg_checkpoint)
    starts = slow_down(node, 0.3)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    for i in range(5):  # the model is busy with the red cup when the new command comes
        driver.image.publish(rgb_msg(stamp_ns=1 + i))
        time.sleep(0.05)
    assert wait_for(lambda: starts)
    for text in commands:
        driver.send_command(text)
    for i in range(16):  # all at once right after the command, as a camera's burst
        driver.image.publish(rgb_msg(stamp_ns=100 + i))
    assert wait_for(lambda: any(stamp_ns_of(a) >= 100 for a in driver.arrays))
    time.sleep(1.0)
    after = [a for a in driver.arrays if stamp_ns_of(a) >= 100]
    assert after and all(a.command == commands[-1] for a in after), [(stamp_ns_of(a), a.command) for a in after]


def test_stop_while_the_model_runs_publishes_nothing_more(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0)
    starts = slow_down(node, 1.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=1))
    assert wait_for(lambda: starts)  # the model is now working on the red cup
    driver.send_command("stop")
    assert wait_for(lambda: node.target.current is None)
    driver.image.publish(rgb_msg(stamp_ns=2))
    assert not wait_for(lambda: driver.arrays or driver.centroids, timeout=2.0)


def test_cleanup_forgets_the_command(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint)
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.trigger_configure()
    node.trigger_activate()
    assert connected(node, driver)
    driver.image.publish(rgb_msg(stamp_ns=3))
    assert wait_for(lambda: node.counters()["received"] == 1)
    assert not wait_for(lambda: driver.arrays, timeout=1.0)
    driver.send_command("the blue bowl")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=4))
    assert wait_for(lambda: driver.arrays)
    assert [a.command for a in driver.arrays] == ["the blue bowl"]


def test_deactivate_keeps_the_command(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint)
    node.trigger_deactivate()
    node.trigger_activate()
    assert connected(node, driver)
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=4)), bool(driver.arrays))[1], interval=0.2)
    assert driver.arrays[0].command == "the red cup"


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT])
def test_depth_and_camera_info_match_their_publishers(ros, make_node, seg_checkpoint, reliability):
    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    profile = QoSProfile(depth=5, reliability=reliability)
    driver.node.destroy_publisher(driver.depth)
    driver.node.destroy_publisher(driver.info)
    driver.depth = driver.node.create_publisher(type(depth_msg(1.0)), "/depth", profile)
    driver.info = driver.node.create_publisher(type(camera_info_msg()), "/camera_info", profile)
    assert connected(node, driver)
    sensors = {s.topic: s for s in node.streams[0].sensors}
    assert wait_for(lambda: all(sensors[t].qos is not None and sensors[t].qos.reliability == reliability for t in ("depth", "camera_info")), timeout=10)
    assert wait_for(lambda: driver.depth.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)

    def answered_in_3d() -> bool:
        driver.info.publish(camera_info_msg())
        driver.depth.publish(depth_msg(1.5, stamp_ns=50))
        driver.image.publish(rgb_msg(stamp_ns=50))
        return any(s.centroid_3d_valid for a in driver.arrays for s in a.segmentations)

    assert wait_for(answered_in_3d, interval=0.2)


def test_unusable_camera_info_is_named_not_missing(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    assert connected(node, driver)
    assert wait_for(lambda: driver.depth.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    info = camera_info_msg()
    info.k[0] = float("inf")
    driver.info.publish(info)
    driver.depth.publish(depth_msg(2.0, stamp_ns=60))
    assert wait_for(lambda: node.streams[0].camera_info is not None and len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=60))
    assert wait_for(lambda: driver.arrays)
    segmentation = driver.arrays[0].segmentations[0]
    assert segmentation.found and not segmentation.centroid_3d_valid
    assert "camera_info unusable" in segmentation.centroid_3d_status and "fx" in segmentation.centroid_3d_status
    assert not wait_for(lambda: driver.centroids, timeout=0.5)


def test_a_frames_own_depth_counts_when_it_comes_after_the_next_frame(ros, make_node, seg_checkpoint):
    """A loaded machine or a slow depth pipeline: frame 1's depth image arrives after frame 2 took the slot. Frame 1
    (tracked a little late) must still get its own depth, not the one that was nearest when it arrived."""
    node = make_node(seg_checkpoint)
    stream = node.streams[0]
    stream._on_camera_info(camera_info_msg())
    stream._on_depth(depth_msg(1.0, stamp_ns=1_000_000_000))
    stream._on_image(rgb_msg(stamp_ns=1_033_000_000))
    first = stream.latest
    stream._on_image(rgb_msg(stamp_ns=1_066_000_000))
    stream._on_depth(depth_msg(1.5, stamp_ns=1_033_000_000))
    depth, _, reason = stream.depth_for(first, node.settings)
    assert reason == "" and depth is not None
    assert float(depth[0, 0]) == pytest.approx(1.5)
