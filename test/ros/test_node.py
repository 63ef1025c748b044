"""The node in this process with a tiny model: results, headers, depth, modes, lifecycle, service, QoS."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_harness import camera_info_msg, connected, depth_msg, quiet_window, rgb_msg, stamp_ns_of, wait_for


def test_image_and_command_give_results_with_the_image_header(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("Pick up the red cup; the blue bowl")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=1_234_567_890_123, frame_id="cam_opt"))
    assert wait_for(lambda: driver.arrays)
    array = driver.arrays[0]
    assert (array.header.stamp.sec, array.header.stamp.nanosec, array.header.frame_id) == (1234, 567_890_123, "cam_opt")
    assert array.command == "Pick up the red cup; the blue bowl"
    assert [s.expression for s in array.segmentations] == ["the red cup", "the blue bowl"]
    for segmentation in array.segmentations:
        assert segmentation.found  # threshold 0: the whole image, decision pinned to [SEG]
        mask = segmentation.mask
        assert (mask.width, mask.height, mask.encoding) == (64, 48, "mono8")
        assert mask.header.frame_id == "cam_opt"
        assert np.frombuffer(mask.data, np.uint8).max() == 255
        assert segmentation.area == 64 * 48
        assert (segmentation.bbox.width, segmentation.bbox.height) == (64, 48)
        assert segmentation.centroid_px.x == pytest.approx(31.5) and segmentation.centroid_px.y == pytest.approx(23.5)
        assert not segmentation.centroid_3d_valid and segmentation.centroid_3d_status  # no depth published
    assert array.total_ms > 0 and array.inference_ms > 0
    assert wait_for(lambda: driver.masks) and driver.masks[0].header.frame_id == "cam_opt"


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_3d_centroid_from_depth_and_camera_info(ros, make_node, seg_checkpoint, encoding):
    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    assert connected(node, driver)
    assert wait_for(lambda: driver.depth.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    stamp = 5_000_000_000
    # depth at HALF resolution: the node scales it to the colour image
    driver.depth.publish(depth_msg(2.0, height=24, width=32, stamp_ns=stamp + 10_000_000, encoding=encoding))
    assert wait_for(lambda: node.streams[0].camera_info is not None and len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=stamp))
    assert wait_for(lambda: driver.arrays)
    segmentation = driver.arrays[0].segmentations[0]
    assert segmentation.centroid_3d_valid and segmentation.centroid_3d_status == "ok"
    assert segmentation.depth_samples == 64 * 48
    # full-image mask: centroid (31.5, 23.5) = principal point -> straight ahead at 2 m
    assert (segmentation.centroid_3d.x, segmentation.centroid_3d.y, segmentation.centroid_3d.z) == pytest.approx((0.0, 0.0, 2.0), abs=1e-6)
    assert wait_for(lambda: driver.centroids)
    assert driver.centroids[0].point.z == pytest.approx(2.0) and driver.centroids[0].header.stamp.sec == 5


def test_depth_outside_the_stamp_tolerance_is_not_used(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0, depth_sync_tolerance_s=0.05)
    driver = ros.driver()
    assert connected(node, driver)
    assert wait_for(lambda: driver.depth.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    driver.depth.publish(depth_msg(2.0, stamp_ns=9_000_000_000))
    assert wait_for(lambda: len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=8_000_000_000))
    assert wait_for(lambda: driver.arrays)
    segmentation = driver.arrays[0].segmentations[0]
    assert not segmentation.centroid_3d_valid and "tolerance" in segmentation.centroid_3d_status


def test_not_found_target(ros, make_node, rej_checkpoint):
    node = make_node(rej_checkpoint, threshold=0.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the purple elephant")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg())
    assert wait_for(lambda: driver.arrays)
    segmentation = driver.arrays[0].segmentations[0]
    assert not segmentation.found and segmentation.area == 0 and segmentation.confidence < 0.5
    assert not np.frombuffer(segmentation.mask.data, np.uint8).any()


def test_best_effort_camera_is_matched(ros, make_node, seg_checkpoint):
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    driver = ros.driver(image_qos=best_effort)  # publisher exists before the node subscribes
    node = make_node(seg_checkpoint)
    assert node.streams[0].image_qos.reliability == ReliabilityPolicy.BEST_EFFORT
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    assert wait_for(lambda: (driver.image.publish(rgb_msg()), bool(driver.arrays))[1], interval=0.1)


def test_reliable_publisher_appearing_later_is_matched(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    assert node.streams[0].image_qos.reliability == ReliabilityPolicy.BEST_EFFORT  # nobody publishes yet
    ros.driver()  # RELIABLE publisher, like a bag replay
    assert wait_for(lambda: node.streams[0].image_qos.reliability == ReliabilityPolicy.RELIABLE, timeout=10)


def test_once_mode_answers_one_frame(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, mode="once")
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    started = time.monotonic()
    driver.image.publish(rgb_msg(stamp_ns=1))
    assert wait_for(lambda: driver.arrays)
    took = time.monotonic() - started
    assert wait_for(lambda: node.target.current is None)
    for i in range(3):  # one at a time: the subscription keeps only the newest frame (depth 1)
        driver.image.publish(rgb_msg(stamp_ns=2 + i))
        assert wait_for(lambda: node.counters()["received"] == 2 + i)
    assert not wait_for(lambda: len(driver.arrays) > 1, timeout=quiet_window(took))


def test_continuous_mode_tracks_until_cleared(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    started = time.monotonic()
    for i in range(3):
        driver.image.publish(rgb_msg(stamp_ns=i + 1))
        assert wait_for(lambda: len(driver.model_answers) == i + 1)
    took = (time.monotonic() - started) / 3
    assert [stamp_ns_of(a) for a in driver.model_answers] == [1, 2, 3]
    driver.send_command("")
    assert wait_for(lambda: node.target.current is None)
    driver.image.publish(rgb_msg(stamp_ns=10))
    assert wait_for(lambda: node.counters()["received"] >= 4)
    assert not wait_for(lambda: any(stamp_ns_of(a) == 10 for a in driver.arrays), timeout=quiet_window(took))  # neither model nor track


def test_bad_inputs_are_rejected_and_the_node_carries_on(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    wrong_encoding = rgb_msg()
    wrong_encoding.encoding = "nv21"  # YUV 4:2:0, not converted
    short_data = rgb_msg()
    short_data.data = bytes(short_data.data)[:100]
    small_step = rgb_msg()
    small_step.step = 10
    empty = rgb_msg(height=0, width=0)
    huge = rgb_msg(height=1, width=9000, encoding="mono8")  # beyond MAX_IMAGE_SIDE: refused from its fields
    for count, bad in enumerate((wrong_encoding, short_data, small_step, empty, huge), start=1):
        driver.image.publish(bad)
        assert wait_for(lambda: node.counters()["rejected"] == count)
    driver.send_command("   ")  # clears
    driver.send_command("the " + "very " * 20000 + "long cup")  # longer than max_command_chars: ignored
    driver.send_command("the red cup")
    driver.image.publish(rgb_msg(stamp_ns=77))
    assert wait_for(lambda: driver.arrays)
    assert driver.arrays[-1].header.stamp.nanosec == 77
    assert node.counters()["rejected"] == 5 and node.counters()["errors"] == 0


def test_rgba_bgr_and_mono_images_are_accepted(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    for index, encoding in enumerate(["bgr8", "rgba8", "bgra8", "mono8"]):
        driver.image.publish(rgb_msg(encoding=encoding, stamp_ns=index + 1))
        assert wait_for(lambda: len(driver.model_answers) == index + 1), encoding
    assert node.counters()["rejected"] == 0


def test_lifecycle_transitions(ros, make_node, seg_checkpoint, tmp_path):
    from lifecycle_msgs.msg import State
    from rclpy.parameter import Parameter

    node = make_node(tmp_path / "no_model_here", activate=False)
    node.trigger_configure()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED  # failed: missing model
    node.set_parameters([Parameter("model_path", value=str(seg_checkpoint))])
    node.trigger_configure()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE and node.segmenter is not None
    rejected = node.set_parameters([Parameter("device", value="cuda")])[0]
    assert not rejected.successful and "configure" in rejected.reason
    node.trigger_activate()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg())
    assert wait_for(lambda: driver.arrays)
    node.trigger_deactivate()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE
    node.trigger_cleanup()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED and node.segmenter is None


def test_threshold_changes_at_run_time(ros, make_node, seg_checkpoint):
    from rclpy.parameter import Parameter

    node = make_node(seg_checkpoint, threshold=0.0)
    assert node.set_parameters([Parameter("threshold", value=1.0)])[0].successful
    assert wait_for(lambda: node.segmenter.options.threshold == 1.0, timeout=5)
    assert not node.set_parameters([Parameter("mode", value="sometimes")])[0].successful


def test_segment_service(ros, make_node, seg_checkpoint):
    from mllmseg_ros.srv import Segment

    make_node(seg_checkpoint, threshold=0.0)
    client_node = ros.driver().node
    client = client_node.create_client(Segment, "/mllmseg_node/segment")
    assert client.wait_for_service(timeout_sec=10)
    latest = client.call(Segment.Request(command="the red cup", use_latest_image=True), timeout_sec=30)
    assert not latest.success and "no image received yet" in latest.message
    request = Segment.Request(expressions=["the red cup", "the blue bowl"], use_latest_image=False, image=rgb_msg(stamp_ns=42))
    response = client.call(request, timeout_sec=30)
    assert response.success, response.message
    assert response.result.header.stamp.nanosec == 42
    assert [s.expression for s in response.result.segmentations] == ["the red cup", "the blue bowl"]
    bad = client.call(Segment.Request(command="   ", use_latest_image=False, image=rgb_msg()), timeout_sec=30)
    assert not bad.success and bad.message


def test_a_long_service_call_is_not_taken_for_a_silent_camera(ros, make_node, seg_checkpoint):
    """Frames keep coming during a long service call (it answers from a thread of its own) and the no-image warning
    stays quiet."""
    from mllmseg_ros.srv import Segment

    node = make_node(seg_checkpoint, no_image_warn_s=1.5)
    driver = ros.driver()
    segment = node.segmenter.segment
    node.segmenter.segment = lambda *a, **k: time.sleep(2.5) or segment(*a, **k)
    warnings = []  # the warning asks the stream why; a new frame resets the "warned" flag, so count the asking
    node.streams[0].why_no_images = lambda: warnings.append(1) or "test"
    stop = threading.Event()

    def camera() -> None:
        while not stop.is_set():
            driver.image.publish(rgb_msg())
            time.sleep(0.1)

    publisher = threading.Thread(target=camera)
    publisher.start()
    try:
        assert wait_for(lambda: node.streams[0].slot.received > 0)
        client = driver.node.create_client(Segment, "/mllmseg_node/segment")
        assert client.wait_for_service(timeout_sec=10)
        response = client.call(Segment.Request(command="the red cup", use_latest_image=True), timeout_sec=30)
        assert response.success, response.message
        time.sleep(1.2)  # the watchdog (1 s period) has run since the call
        assert warnings == []
    finally:
        stop.set()
        publisher.join()


def test_several_cameras_share_one_model(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, cameras=["left", "right"])
    left = ros.driver(prefix="/mllmseg_node/left", namespace="/left")
    right = ros.driver(prefix="/mllmseg_node/right", namespace="/right")
    assert connected(node, left, 0) and connected(node, right, 1)
    left.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    left.image.publish(rgb_msg(frame_id="left_optical"))
    right.image.publish(rgb_msg(frame_id="right_optical", height=30, width=40))
    assert wait_for(lambda: left.arrays and right.arrays)
    assert left.arrays[0].header.frame_id == "left_optical"
    assert right.arrays[0].header.frame_id == "right_optical"
    assert right.arrays[0].segmentations[0].mask.width == 40


def test_compressed_images_and_markers(ros, make_node, seg_checkpoint):
    import cv2
    from sensor_msgs.msg import CompressedImage
    from visualization_msgs.msg import MarkerArray

    node = make_node(seg_checkpoint, image_transport="compressed", image_qos="reliable", threshold=0.0, publish_markers=True)
    driver = ros.driver()
    publisher = driver.node.create_publisher(CompressedImage, "/image/compressed", 10)
    markers = []
    driver.node.create_subscription(MarkerArray, "/mllmseg_node/markers", markers.append, 10)
    assert wait_for(lambda: publisher.get_subscription_count() > 0 and driver.command.get_subscription_count() > 0)
    assert wait_for(lambda: driver.depth.get_subscription_count() > 0 and driver.info.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    driver.depth.publish(depth_msg(1.5, stamp_ns=3))
    assert wait_for(lambda: node.streams[0].camera_info is not None and len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
    msg.header.stamp.nanosec, msg.header.frame_id = 3, "camera_optical"  # the depth image's: registered
    publisher.publish(msg)
    assert wait_for(lambda: driver.arrays)
    assert driver.arrays[0].segmentations[0].mask.width == 64
    assert wait_for(lambda: markers)
    spheres = [m for m in markers[-1].markers if m.type == m.SPHERE]
    assert spheres and spheres[0].pose.position.z == pytest.approx(1.5)
    broken = CompressedImage(format="jpeg", data=b"not a jpeg")
    publisher.publish(broken)
    assert wait_for(lambda: node.counters()["rejected"] == 1)
