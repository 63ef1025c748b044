"""The node in this process: run-time parameters as typed, deactivate during a model step, visible failures, tiny
frames, the output gate and the 3D health that /diagnostics reports."""
from __future__ import annotations

import threading
import time

import pytest
from rclpy.parameter import Parameter

from mllmseg_ros.ros.diagnostics import MIN_3D_FAILURES, ThreeDOutcomes
from mllmseg_ros.ros.publishing import OutputGate
from ros_harness import commanded, rgb_msg, slow_down, wait_for


def test_run_time_parameters_take_values_as_typed(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    assert node.set_parameters([Parameter("threshold", value=1)])[0].successful  # `ros2 param set ... threshold 1`
    assert node.settings.threshold == 1.0 and type(node.settings.threshold) is float
    assert node.segmenter.options.threshold == 1.0
    assert node.set_parameters([Parameter("tracking", value=False)])[0].successful  # `tracking off`, a YAML boolean
    assert node.settings.tracking == "off"
    wrong = node.set_parameters([Parameter("threshold", value="abc")])[0]
    assert not wrong.successful and "threshold: 'abc' is not a number" in wrong.reason
    crossed = node.set_parameters([Parameter("min_depth_m", value=30)])[0]
    assert not crossed.successful and "must be below max_depth_m" in crossed.reason
    assert node.settings.threshold == 1.0 and node.settings.min_depth_m == 0.1


def test_deactivate_during_a_model_step_returns_at_once_and_drops_its_answer(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, tracking="off")
    starts = slow_down(node, 3.0)
    driver.image.publish(rgb_msg(stamp_ns=1))
    assert wait_for(lambda: starts)
    started = time.monotonic()
    node.trigger_deactivate()
    took = time.monotonic() - started
    time.sleep(3.5)  # the step ends meanwhile
    assert took < 0.5, took
    assert not driver.arrays and node.streams[0].processed == 0
    node.trigger_activate()  # and on again: a new step answers
    assert connected_again(node, driver)
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=2)), bool(driver.arrays))[1], interval=0.5, timeout=20)


def connected_again(node, driver) -> bool:
    from ros_harness import connected

    return connected(node, driver)


def test_a_lasting_failure_is_repeated_in_the_log_now_and_then(ros, make_node, monkeypatch, capfd):
    from mllmseg_ros.ros import node as node_module

    monkeypatch.setattr(node_module, "HINT_PERIOD_S", 1.0)
    node = make_node("", activate=False)
    node.trigger_configure()
    assert node.not_configured == "model_path is empty: set it to an MLLMSeg checkpoint folder"
    assert wait_for(lambda: capfd.readouterr().err.count("still not working: not configured: model_path is empty") >= 1,
                    timeout=10)


def test_frames_too_small_to_track_get_model_answers_and_no_error(ros, make_node, seg_checkpoint):
    """DIS optical flow refuses pictures under 12 px a side: it was logged as 'publishing results failed'."""
    node, driver = commanded(ros, make_node, seg_checkpoint, tracking="on", threshold=0.0)
    for i in range(4):
        driver.image.publish(rgb_msg(height=8, width=8, stamp_ns=i + 1))
        assert wait_for(lambda: len(driver.model_answers) == i + 1)
    assert node.counters()["errors"] == 0 and not node.problems.recent()


def test_the_output_gate_waits_for_publishing_under_way_and_then_stays_shut():
    gate = OutputGate()
    with gate.publishing() as may:
        assert not may  # shut until opened
    gate.open()
    inside, closed = threading.Event(), threading.Event()

    def publish() -> None:
        with gate.publishing() as may:
            assert may
            inside.set()
            time.sleep(0.3)
            assert not closed.is_set()  # close() waits for this block

    thread = threading.Thread(target=publish)
    thread.start()
    assert inside.wait(5)
    gate.close()
    closed.set()
    thread.join()
    with gate.publishing() as may:
        assert not may


class _Array:
    def __init__(self, valid: bool, status: str, found: bool = True):
        from types import SimpleNamespace

        self.segmentations = [SimpleNamespace(found=found, centroid_3d_valid=valid, centroid_3d_status=status)]


def test_3d_health_fails_only_when_every_recent_answer_had_no_3d_for_a_fault():
    health = ThreeDOutcomes(window_s=10.0)
    for _ in range(MIN_3D_FAILURES):
        health.record_3d(_Array(False, "no depth image"))  # no depth stream at all: 2D by choice, not a fault
        health.record_3d(_Array(False, "target not found", found=False))
    assert health.failing() == ""
    for _ in range(MIN_3D_FAILURES):
        health.record_3d(_Array(False, "camera_info unusable: fx = 0: the focal lengths must be finite and positive"))
    assert "camera_info unusable" in health.failing()
    health.record_3d(_Array(True, "ok"))
    assert health.failing() == "" and health.summary()[:2] == (2 * MIN_3D_FAILURES + 1, 1)
    assert health.failing(now=time.monotonic() + 11.0) == ""  # the window has passed
