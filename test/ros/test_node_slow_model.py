"""A slow model (seconds per frame, as on a CPU or a small Jetson) in its own process, fed at camera rate.

The 3D answer must not depend on how long the model takes: each frame keeps the depth image of its own time.
"""
from __future__ import annotations

import time

import pytest

from mllmseg_ros.tools.node_process import params_file, run_node
from ros_harness import camera_info_msg, depth_msg, is_model_answer, rgb_msg, wait_for

CAMERA_HZ = 30.0


def depth_of_frame(index: int) -> float:
    """Each frame's depth is different, so a 3D answer shows which depth image it came from."""
    return 1.0 + (index % 50) * 0.02


@pytest.mark.parametrize("delay_s, answers", [(1.5, 6), (6.0, 3)])
def test_slow_model_keeps_the_3d_answer_of_each_frame(ros, seg_checkpoint, tmp_path, delay_s, answers):
    # A stamp tolerance under the 33 ms between frames: a neighbour's depth image is never good enough, so a result
    # with a 3D centroid shows exactly which depth image it used (a loaded CI machine may deliver one late).
    params = params_file(tmp_path, model_path=str(seg_checkpoint), threshold=0.0, no_image_warn_s=0.0, autostart=True,
                         tracking="on", depth_sync_tolerance_s=0.02)
    with run_node(["--params-file", str(params)], delay_s=delay_s) as process:
        driver = ros.driver()
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in (driver.image, driver.depth, driver.info, driver.command))), process.stop()
        driver.send_command("the red cup")
        stamps_ns: dict[int, int] = {}  # stamp -> frame index
        index, started = 0, time.monotonic()
        deadline = started + answers * delay_s + 60.0
        while len(driver.model_latencies_ms) < answers and time.monotonic() < deadline:
            stamp_ns = 1_000_000_000 + index * 33_333_333
            stamps_ns[stamp_ns] = index
            driver.image.publish(rgb_msg(stamp_ns=stamp_ns))
            time.sleep(0.015)  # depth and camera_info of the same instant arrive a little after the colour frame
            driver.depth.publish(depth_msg(depth_of_frame(index), stamp_ns=stamp_ns + 3_000_000))
            info = camera_info_msg()
            info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            driver.info.publish(info)
            index += 1
            time.sleep(max(0.0, started + index / CAMERA_HZ - time.monotonic()))
    arrays = list(driver.arrays)
    assert len(driver.model_latencies_ms) >= answers, process.output
    # the model runs on the CPU and the params file leaves track_rate_hz at 0: at most 7.5 tracked frames a second of
    # this 30 fps stream (every 4th frame), plus each fresh answer carried to the newest frame
    tracked = [array for array in arrays if not is_model_answer(array)]
    model = len(arrays) - len(tracked)
    assert 0 < len(tracked) <= 7.5 * index / CAMERA_HZ + model + 1, (len(tracked), index, model)
    for array in tracked:  # what a grasp planner acts on: the camera's frame, a stamp of a frame that was sent
        assert array.header.frame_id == "camera_optical" and array.header.stamp.sec * 10**9 + array.header.stamp.nanosec in stamps_ns
    # the model's answers (tracked results in between carry their own frame's depth: test/ros/test_node_tracking.py)
    found = [(array, s) for array in arrays for s in array.segmentations if s.found and s.source == s.SOURCE_MODEL]
    valid = [(array, s) for array, s in found if s.centroid_3d_valid]
    assert found and len(valid) >= 0.95 * len(found), [s.centroid_3d_status for _, s in found]
    # Model answers and the tracked results between them: the depth of the frame's own time, not of the frame after
    # inference, nor the previous frame's (its depth image comes 3 ms after the frame here).
    every_valid = [(array, s) for array in arrays for s in array.segmentations if s.centroid_3d_valid]
    assert any(s.source == s.SOURCE_TRACKED for _, s in every_valid)
    for array, segmentation in every_valid:
        frame = stamps_ns[array.header.stamp.sec * 10**9 + array.header.stamp.nanosec]
        assert segmentation.centroid_3d.z == pytest.approx(depth_of_frame(frame), abs=1e-3), segmentation.source
