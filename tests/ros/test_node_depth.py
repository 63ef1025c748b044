"""3D you can trust, with the node in its own process: only depth registered to the colour image gives a 3D
centroid; impossible depth values (millimetres in 32FC1, the 16-bit no-return code 65535) and stamps that name no
single depth image give 2D results and the reason, in the result and on /diagnostics. Before, each gave a 3D point
with status "ok" (z of 590-797 m, 65.5 m, or the depth of a frame 2 s old)."""
from __future__ import annotations

import numpy as np
import pytest

from node_process import params_file, run_node
from ros_harness import camera_info_msg, depth_msg, diagnostics_listener, rgb_msg, stamp_ns_of, values_of, wait_for

COLOUR_FRAME = "camera_color_optical_frame"  # realsense-ros: the colour stream's, and its aligned depth's


def with_frame(msg, frame_id: str):
    msg.header.frame_id = frame_id
    return msg


@pytest.fixture()
def depth_node(ros, seg_checkpoint, tmp_path):
    params = params_file(tmp_path, model_path=str(seg_checkpoint), autostart=True, threshold=0.0, tracking="off",
                         no_image_warn_s=0.0, diagnostics_period_s=0.5, diagnostics_window_s=60.0)
    with run_node(["--params-file", str(params)]) as process:
        driver = ros.driver()
        statuses = diagnostics_listener(ros)
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in (driver.image, driver.depth, driver.info, driver.command)))
        assert wait_for(lambda: (driver.info.publish(with_frame(camera_info_msg(), COLOUR_FRAME)), any(
            values_of(s).get("state") == "active" for s in statuses))[1], interval=0.2), process.stop()
        driver.send_command("the red cup")
        yield driver, statuses, process
    assert "Traceback" not in process.output, process.output


def answer(driver, depth, stamp_ns: int, image_frame: str = COLOUR_FRAME):
    """Send ``depth`` (stamped ``stamp_ns`` unless it carries its own) and a colour frame; the node's answer to it."""
    if depth is not None:
        driver.depth.publish(depth)
    for _ in range(3):  # a frame sent before the node's subscriptions have matched the publisher's QoS may be lost
        driver.image.publish(rgb_msg(stamp_ns=stamp_ns, frame_id=image_frame))
        if wait_for(lambda: any(stamp_ns_of(a) == stamp_ns for a in driver.arrays), timeout=10):
            break
    return next(a for a in driver.arrays if stamp_ns_of(a) == stamp_ns).segmentations[0]


def test_only_registered_sane_depth_of_a_unique_stamp_gives_3d(depth_node):
    driver, statuses, process = depth_node
    # registered depth (the colour frame's id, half the resolution): a 3D point
    ok = answer(driver, with_frame(depth_msg(1.5, height=24, width=32, stamp_ns=1_000_000_000), COLOUR_FRAME), 1_000_000_000)
    assert ok.centroid_3d_valid and ok.centroid_3d.z == pytest.approx(1.5)

    # a RealSense's raw depth beside its colour stream: its own optical frame (here at the same aspect, so only the
    # frame_id tells): 2D results only, the reason in the result and, as every answer fails, ERROR on /diagnostics
    for i in range(4):
        stamp = 2_000_000_000 + i * 100_000_000
        raw = with_frame(depth_msg(1.5, height=24, width=32, stamp_ns=stamp), "camera_depth_optical_frame")
        result = answer(driver, raw, stamp)
        assert result.found and not result.centroid_3d_valid
        assert result.centroid_3d_status.startswith("depth is not registered to the colour camera"), result.centroid_3d_status
    assert wait_for(lambda: any(s.level == s.ERROR and "not registered" in s.message for s in statuses)), [s.message for s in statuses]
    assert "no 3D answer: depth is not registered" in process.output

    # 32FC1 in millimetres (0.7 m written as 700): not metres, so no 3D and a warning
    stamp = 3_000_000_000
    millimetres = with_frame(depth_msg(700.0, stamp_ns=stamp, encoding="32FC1"), COLOUR_FRAME)
    result = answer(driver, millimetres, stamp)
    assert not result.centroid_3d_valid and "looks like millimetres" in result.centroid_3d_status

    # 16UC1 of the no-return code 65535 everywhere: no distance (it was 65.5 m)
    stamp = 4_000_000_000
    no_return = with_frame(depth_msg(65.535, stamp_ns=stamp), COLOUR_FRAME)
    assert np.frombuffer(no_return.data, np.uint16).min() == 65535
    result = answer(driver, no_return, stamp)
    assert not result.centroid_3d_valid and result.centroid_3d_status == "no valid depth inside the mask"

    # constant stamps (all 0, or a paused /clock): the stamp names many depth images, none is paired
    for value in (1.0, 2.0, 3.0):
        driver.depth.publish(with_frame(depth_msg(value, stamp_ns=0), COLOUR_FRAME))
    first = answer(driver, None, 0)
    assert not first.centroid_3d_valid and "3 depth images share the stamp" in first.centroid_3d_status
    driver.arrays.clear()
    second = answer(driver, None, 0)
    assert not second.centroid_3d_valid and "image stamps repeat" in second.centroid_3d_status

    # and registered, sane depth of its own stamp works again
    stamp = 5_000_000_000
    result = answer(driver, with_frame(depth_msg(0.8, stamp_ns=stamp), COLOUR_FRAME), stamp)
    assert result.centroid_3d_valid and result.centroid_3d.z == pytest.approx(0.8)
