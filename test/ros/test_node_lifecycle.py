"""The node in this process: run-time parameters as typed, deactivate during a model step, a lasting failure in the
log, tiny frames, the threads default."""
from __future__ import annotations

import time

from rclpy.parameter import Parameter

from ros_harness import commanded, connected, rgb_msg, slow_down, wait_for


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
    assert node.set_parameters([Parameter("max_depth_m", value=40), Parameter("min_depth_m", value=30)])[0].successful
    assert (node.settings.min_depth_m, node.settings.max_depth_m) == (30.0, 40.0)
    assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful  # not the node's own
    assert node.settings.threshold == 1.0


def test_deactivate_during_a_model_step_returns_at_once_and_drops_its_answer(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, tracking="off")
    starts = slow_down(node, 3.0)
    driver.image.publish(rgb_msg(stamp_ns=1))
    assert wait_for(lambda: starts)
    started = time.monotonic()
    node.trigger_deactivate()
    took = time.monotonic() - started
    time.sleep(3.5)  # the step ends meanwhile
    print(f"\ndeactivate during a 3 s model step: returned after {took * 1e3:.0f} ms")
    assert took < 0.5, took
    assert not driver.arrays and node.streams[0].processed == 0
    node.trigger_activate()  # and on again: a new step answers
    assert connected(node, driver)
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=2)), bool(driver.arrays))[1], interval=0.5, timeout=20)


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


def test_threads_0_leaves_a_core_to_the_rest_of_the_robot(monkeypatch):
    """torch's threads wait for each other at every step: beside a busy process one thread per core was 18x slower
    for the demo model on 2 cores (benchmarks/README.md, "Threads on a busy CPU")."""
    import os

    from mllmseg_ros.ros.engine_setup import torch_threads

    settings = type("Settings", (), {"threads": 0})()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert torch_threads(settings) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert torch_threads(settings) == 7
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert torch_threads(settings) == 1
    settings.threads = 2
    assert torch_threads(settings) == 2


def test_the_node_keeps_rclpy_s_own_attributes(ros, seg_checkpoint, monkeypatch):
    """The node's attributes do not replace rclpy's (its watchdog timers once replaced rclpy's list of the node's
    timers, `_timers`, which the executor reads): each attribute rclpy's LifecycleNode set up is the same object after
    the node's own set-up, configure and activate."""
    from rclpy.lifecycle import LifecycleNode

    from mllmseg_ros.ros.node import MLLMSegNode

    set_up: dict = {}
    base_init = LifecycleNode.__init__

    def recording_init(self, *args, **kwargs):
        base_init(self, *args, **kwargs)
        set_up.update(vars(self))

    monkeypatch.setattr(LifecycleNode, "__init__", recording_init)
    node = MLLMSegNode(parameter_overrides=[Parameter("model_path", value=str(seg_checkpoint))])
    node.trigger_configure()
    node.trigger_activate()
    assert set_up and [name for name, value in set_up.items() if vars(node).get(name) is not value] == []
    assert set(node._watch_timers) <= set(node.timers)
    ros.add(node)  # torn down with the others
