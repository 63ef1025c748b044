"""The node's options for a camera and a planner across a network: compact masks, compressed images out, compressed
depth in, QoS for a lossy link, and a latched command taken once (ros/compact.py, ros/command_subscription.py)."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String

from mllmseg_ros.ros.compact import segmentation_mask
from mllmseg_ros.ros.compressed_depth import encode_compressed_depth
from mllmseg_ros.ros.publishing import IMAGES_QOS
from ros_harness import camera_info_msg, commanded, connected, rgb_msg, wait_for

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def answer(driver, stamp_ns: int):
    """Publish one frame and return the model's answer to it."""
    driver.image.publish(rgb_msg(stamp_ns=stamp_ns))
    assert wait_for(lambda: any(a.header.stamp.sec * 10**9 + a.header.stamp.nanosec == stamp_ns for a in driver.model_answers))
    return next(a for a in driver.model_answers if a.header.stamp.sec * 10**9 + a.header.stamp.nanosec == stamp_ns)


def test_png_masks_decode_to_the_full_size_masks_of_the_default(ros, make_node, seg_checkpoint):
    # threshold 0.5 on a random model: a mask of its own irregular shape, not the whole image
    node, driver = commanded(ros, make_node, seg_checkpoint, "the red cup; the blue bowl", tracking="off")
    full = answer(driver, 1_000_000_000)
    assert full.segmentations[0].mask.width == 64 and len(full.segmentations[0].mask_png.data) == 0
    assert (full.segmentations[0].image_width, full.segmentations[0].image_height) == (64, 48)
    assert node.set_parameters([Parameter("mask_format", value="png")])[0].successful  # at run time
    compact = answer(driver, 2_000_000_000)
    for before, after in zip(full.segmentations, compact.segmentations):
        assert len(after.mask.data) == 0 and after.mask.header.frame_id == "camera_optical"
        assert (segmentation_mask(after) == segmentation_mask(before)).all()
        assert (after.bbox, after.area, after.found) == (before.bbox, before.area, before.found)
        assert len(after.mask_png.data) < len(before.mask.data) / 4 or not after.found  # a noisy mask here
    assert node.set_parameters([Parameter("mask_format", value="none")])[0].successful
    bare = answer(driver, 3_000_000_000)
    assert all(len(s.mask.data) == 0 and len(s.mask_png.data) == 0 for s in bare.segmentations)
    assert [s.bbox for s in bare.segmentations] == [s.bbox for s in full.segmentations]
    assert not node.set_parameters([Parameter("mask_format", value="jpeg")])[0].successful


def test_compressed_overlay_and_mask_are_published_when_subscribed(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, threshold=0.0, tracking="off")
    received = {"overlay": [], "mask": []}
    listener = ros.add(Node("compressed_listener"))
    for name in received:
        listener.create_subscription(CompressedImage, f"/mllmseg_node/{name}/compressed", received[name].append, RELIABLE)
    assert wait_for(lambda: node.streams[0].publisher.overlay_compressed.get_subscription_count() > 0
                    and node.streams[0].publisher.mask_compressed.get_subscription_count() > 0)
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=5)), received["overlay"] and received["mask"])[1], interval=0.2)
    overlay, mask = received["overlay"][0], received["mask"][0]
    assert overlay.format == "rgb8; jpeg compressed bgr8" and overlay.header.frame_id == "camera_optical"
    assert cv2.imdecode(np.frombuffer(bytes(overlay.data), np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    decoded = cv2.imdecode(np.frombuffer(bytes(mask.data), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.format.startswith("mono8; png") and decoded.shape == (48, 64) and (decoded == 255).all()  # threshold 0


@pytest.mark.parametrize("encoding, codec", [("16UC1", "png"), ("16UC1", "rvl"), ("32FC1", "png"), ("32FC1", "rvl")])
def test_compressed_depth_gives_3d_centroids(ros, make_node, seg_checkpoint, encoding, codec):
    node = make_node(seg_checkpoint, threshold=0.0, depth_transport="compressedDepth", tracking="off")
    driver = ros.driver()
    depth_pub = driver.node.create_publisher(CompressedImage, "/depth/compressedDepth", RELIABLE)
    assert connected(node, driver)
    assert wait_for(lambda: depth_pub.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    stamp = 5_000_000_000
    depth = np.full((24, 32), 2000, np.uint16) if encoding == "16UC1" else np.full((24, 32), 2.0, np.float32)
    message = encode_compressed_depth(depth, encoding, codec=codec)
    message.header.stamp.sec, message.header.frame_id = 5, "camera_optical"
    depth_pub.publish(message)
    assert wait_for(lambda: node.streams[0].camera_info is not None and len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    segmentation = answer(driver, stamp).segmentations[0]
    assert segmentation.centroid_3d_valid, segmentation.centroid_3d_status
    assert segmentation.centroid_3d.z == pytest.approx(2.0, abs=1e-3)  # 32FC1: within the quantisation step


def compressed_depth(depth: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "camera_optical", **publisher):
    """``depth`` as a compressedDepth message (``publisher``: the sender's depth_max ...)."""
    message = encode_compressed_depth(depth, encoding, **publisher)
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    message.header.frame_id = frame_id
    return message


def test_compressed_depth_is_checked_like_raw_depth(ros, make_node, seg_checkpoint):
    """Registration, impossible values and shared stamps (ros/depth_pairing.py) give 2D answers and the reason for
    compressedDepth as for raw depth: the decoded image is raw depth from then on."""
    node = make_node(seg_checkpoint, threshold=0.0, depth_transport="compressedDepth", tracking="off")
    driver = ros.driver()
    depth_pub = driver.node.create_publisher(CompressedImage, "/depth/compressedDepth", RELIABLE)
    assert connected(node, driver)
    assert wait_for(lambda: depth_pub.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    assert wait_for(lambda: node.streams[0].camera_info is not None)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)

    def status(stamp_ns: int, *depths) -> str:
        for depth in depths:
            depth_pub.publish(depth)
        assert wait_for(lambda: node.streams[0].depth.count_at(stamp_ns / 1e9) == len(depths))
        segmentation = answer(driver, stamp_ns).segmentations[0]
        assert segmentation.found
        return segmentation.centroid_3d_status if not segmentation.centroid_3d_valid else "ok"

    metres = np.full((24, 32), 2000, np.uint16)
    assert status(1_000_000_000, compressed_depth(metres, "16UC1", 1_000_000_000)) == "ok"
    unregistered = compressed_depth(metres, "16UC1", 2_000_000_000, frame_id="camera_depth_optical_frame")
    assert status(2_000_000_000, unregistered).startswith("depth is not registered to the colour camera")
    # a sender whose depth_max keeps them: 32FC1 in millimetres, and the 16-bit no-return code
    millimetres = compressed_depth(np.full((24, 32), 700.0, np.float32), "32FC1", 3_000_000_000, depth_max=1000.0)
    assert "looks like millimetres" in status(3_000_000_000, millimetres)
    no_return = compressed_depth(np.full((24, 32), 65535, np.uint16), "16UC1", 4_000_000_000, depth_max=70.0)
    assert status(4_000_000_000, no_return) == "no valid depth inside the mask"
    shared = [compressed_depth(np.full((24, 32), value, np.uint16), "16UC1", 5_000_000_000) for value in (1000, 2000, 3000)]
    assert "3 depth images share the stamp" in status(5_000_000_000, *shared)


def test_compressed_depth_comes_from_the_remapped_depth_topic(ros, seg_checkpoint):
    """image_transport's naming, as for colour: <remapped depth topic>/compressedDepth."""
    from mllmseg_ros.ros.node import MLLMSegNode

    aligned = "/camera/aligned_depth_to_color/image_raw"
    node = ros.add(MLLMSegNode(parameter_overrides=[Parameter("model_path", value=str(seg_checkpoint)),
                                                    Parameter("depth_transport", value="compressedDepth")],
                               cli_args=["--ros-args", "-r", f"depth:={aligned}"]))
    node.trigger_configure()
    node.trigger_activate()
    listener = ros.add(Node("graph_listener"))
    assert wait_for(lambda: listener.get_subscriptions_info_by_topic(f"{aligned}/compressedDepth"))
    assert listener.get_subscriptions_info_by_topic(f"{aligned}/compressedDepth")[0].topic_type == "sensor_msgs/msg/CompressedImage"
    assert not listener.get_subscriptions_info_by_topic("/depth/compressedDepth")
    assert not listener.get_subscriptions_info_by_topic(aligned)


def test_a_bad_compressed_depth_image_is_rejected_and_2d_answers_go_on(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, depth_transport="compressedDepth", tracking="off")
    driver = ros.driver()
    depth_pub = driver.node.create_publisher(CompressedImage, "/depth/compressedDepth", RELIABLE)
    assert connected(node, driver) and wait_for(lambda: depth_pub.get_subscription_count() > 0)
    depth_pub.publish(CompressedImage(format="16UC1; compressedDepth png", data=b"\0" * 12 + b"garbage"))
    assert wait_for(lambda: "depth: cannot read the image size" in node.problems.recent().get("depth", (0, ""))[1])
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    segmentation = answer(driver, 7_000_000_000).segmentations[0]
    assert not segmentation.centroid_3d_valid and segmentation.centroid_3d_status == "no depth image"


def test_remote_network_subscribes_best_effort_even_to_a_reliable_camera(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, network="remote")
    driver = ros.driver()  # a reliable camera: with network local, image_qos auto would subscribe reliable
    assert wait_for(lambda: driver.image.get_subscription_count() > 0)
    assert all(s.qos.reliability == ReliabilityPolicy.BEST_EFFORT for s in node.streams[0].sensors)
    assert node.streams[0].image_qos.depth == 1
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=3)), driver.arrays)[1], interval=0.2)


@pytest.mark.parametrize("setting, reliability", [("reliable", ReliabilityPolicy.RELIABLE), ("best_effort", ReliabilityPolicy.BEST_EFFORT)])
def test_output_qos_sets_the_results_reliability(ros, make_node, seg_checkpoint, setting, reliability):
    node = make_node(seg_checkpoint, output_qos=setting)
    publisher = node.streams[0].publisher
    assert {publisher.segmentations.qos_profile.reliability, publisher.centroid.qos_profile.reliability,
            publisher.markers.qos_profile.reliability} == {reliability}


def test_output_qos_is_read_again_on_each_configure_and_a_qos_override_wins(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    assert node.streams[0].publisher.segmentations.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert node.set_parameters([Parameter("output_qos", value="best_effort")])[0].successful
    node.trigger_configure()
    assert node.streams[0].publisher.segmentations.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    # an override applies to its topic alone (rclpy writes it into the profile it is given: not a shared one)
    overridden = make_node(seg_checkpoint, output_qos="best_effort",
                           **{"qos_overrides./mllmseg_node/centroid.publisher.reliability": "reliable",
                              "qos_overrides./mllmseg_node/mask.publisher.reliability": "best_effort"})
    publisher = overridden.streams[0].publisher
    assert publisher.centroid.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert {publisher.segmentations.qos_profile.reliability, publisher.markers.qos_profile.reliability} == {ReliabilityPolicy.BEST_EFFORT}
    assert publisher.mask.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert {publisher.overlay.qos_profile.reliability, publisher.mask_compressed.qos_profile.reliability,
            publisher.overlay_compressed.qos_profile.reliability} == {ReliabilityPolicy.RELIABLE}
    assert IMAGES_QOS.reliability == ReliabilityPolicy.RELIABLE


def applied_commands(node) -> list[str]:
    """Record every command the node's subscription hands over (after its redelivery check)."""
    applied = []
    handler = node.commands.subscription.callback
    node.commands.subscription.callback = lambda msg: (applied.append(msg.data), handler(msg))
    return applied


def test_a_latched_command_published_before_the_node_started_is_taken_once(ros, make_node, seg_checkpoint):
    planner = ros.add(Node("planner"))
    command = planner.create_publisher(String, "/command", LATCHED)
    command.publish(String(data="the blue bowl"))  # the node is not there yet (restarting, out of range)
    node = make_node(seg_checkpoint, activate=False)
    applied = applied_commands(node)  # the subscription is made on configure
    node.trigger_configure()
    node.trigger_activate()
    assert wait_for(lambda: node.target.current is not None)
    assert node.target.current.expressions == ["the blue bowl"] and node.commands.subscription.latched
    time.sleep(1.0)  # several re-checks of the publishers' QoS
    assert applied == ["the blue bowl"]


def test_the_subscription_turns_latched_for_a_latched_planner_without_taking_its_command_twice(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    applied = applied_commands(node)
    assert not node.commands.subscription.latched  # nobody publishes yet: volatile, which matches any reliable publisher
    planner = ros.add(Node("planner"))
    command = planner.create_publisher(String, "/command", LATCHED)
    assert wait_for(lambda: command.get_subscription_count() > 0)
    command.publish(String(data="the green box"))  # arrives on the volatile subscription...
    assert wait_for(lambda: node.commands.subscription.latched)  # ...which is then re-made latched and gets it again
    time.sleep(1.0)
    assert applied == ["the green box"]
    command.publish(String(data="stop"))
    assert wait_for(lambda: applied == ["the green box", "stop"]) and node.target.current is None


def test_a_volatile_planner_beside_a_latched_one_makes_the_subscription_volatile(ros, make_node, seg_checkpoint):
    latched_planner = ros.add(Node("latched_planner"))
    latched_planner.create_publisher(String, "/command", LATCHED)
    node = make_node(seg_checkpoint)
    assert wait_for(lambda: node.commands.subscription.latched)
    driver = ros.driver()  # volatile, reliable: a transient-local subscription would never match it
    assert wait_for(lambda: not node.commands.subscription.latched)
    assert wait_for(lambda: driver.command.get_subscription_count() > 0)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None and node.target.current.expressions == ["the red cup"])


def test_one_command_subscription_from_configure_to_cleanup(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    driver = ros.driver()
    assert wait_for(lambda: driver.command.get_subscription_count() == 1)
    node.trigger_deactivate()  # commands are still heard while inactive (they apply on activate)
    node.trigger_activate()
    time.sleep(1.5)  # the watchdog's QoS re-checks make no second one
    assert driver.command.get_subscription_count() == 1
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert wait_for(lambda: driver.command.get_subscription_count() == 0)
    node.trigger_configure()
    assert wait_for(lambda: driver.command.get_subscription_count() == 1)


def test_a_latched_planner_is_matched_while_the_node_is_inactive(ros, make_node, seg_checkpoint):
    """Commands are heard while inactive (they apply on activate), so the subscription follows its publishers then too."""
    node = make_node(seg_checkpoint, activate=False)
    node.trigger_configure()
    applied = applied_commands(node)
    planner = ros.add(Node("planner"))
    command = planner.create_publisher(String, "/command", LATCHED)
    assert wait_for(lambda: command.get_subscription_count() > 0)
    command.publish(String(data="the green box"))
    assert wait_for(lambda: node.commands.subscription.latched)
    time.sleep(1.0)
    assert applied == ["the green box"]
    node.trigger_activate()
    assert node.target.current is not None and node.target.current.expressions == ["the green box"]


def test_a_qos_override_fixes_the_command_subscription(ros, make_node, seg_checkpoint):
    """`qos_overrides./command.subscription.*` given: the subscription has them and is not re-made to follow a
    latched planner."""
    planner = ros.add(Node("planner"))
    planner.create_publisher(String, "/command", LATCHED)
    node = make_node(seg_checkpoint, **{"qos_overrides./command.subscription.durability": "volatile",
                                        "qos_overrides./command.subscription.depth": 3})
    subscription = node.commands.subscription.subscription
    assert subscription.qos_profile.durability == DurabilityPolicy.VOLATILE and subscription.qos_profile.depth == 3
    time.sleep(1.5)  # the watchdog's re-checks: a latched planner would make it latched
    assert node.commands.subscription.subscription is subscription and not node.commands.subscription.latched
