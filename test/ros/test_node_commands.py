"""Spoken commands as a speech-to-text node sends them, parameters the node does not own, and /diagnostics."""
from __future__ import annotations

import time

import pytest
from rclpy.parameter import Parameter

from ros_harness import (commanded, connected, diagnostics_listener, quiet_window, results_flow, rgb_msg,
                         seconds_to_results, values_of, wait_for)


@pytest.mark.parametrize("stop", ["stop", "cancel", "never mind", "nothing", "halt", "um stop", "Stop!"])
def test_stop_words_end_the_target(ros, make_node, seg_checkpoint, stop):
    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    took = seconds_to_results(driver)
    driver.send_command(stop)
    assert wait_for(lambda: node.target.current is None)
    time.sleep(0.3)  # an answer already on its way may still arrive
    before = len(driver.arrays)
    for i in range(5):
        driver.image.publish(rgb_msg(stamp_ns=10 + i))
        time.sleep(0.05)
    assert not wait_for(lambda: len(driver.arrays) > before, timeout=quiet_window(took))
    assert all(s.expression == "the red cup" for a in driver.arrays for s in a.segmentations)


def test_a_command_with_an_empty_part_keeps_the_valid_part_and_says_so(ros, make_node, seg_checkpoint):
    statuses = diagnostics_listener(ros)
    node, driver = commanded(ros, make_node, seg_checkpoint, "the red ball;", diagnostics_period_s=0.2)
    assert node.target.current.expressions == ["the red ball"]
    assert wait_for(lambda: any("partly used" in values_of(s).get("command_status", "") for s in statuses))


def test_a_command_naming_nothing_is_reported_and_the_old_target_stays(ros, make_node, seg_checkpoint):
    statuses = diagnostics_listener(ros)
    node, driver = commanded(ros, make_node, seg_checkpoint, diagnostics_period_s=0.2)
    driver.send_command("?!.;")
    assert wait_for(lambda: any(values_of(s).get("command_status", "").startswith("rejected") for s in statuses))
    status = next(s for s in reversed(statuses) if values_of(s).get("command_status", "").startswith("rejected"))
    assert "the red cup" in values_of(status)["command_status"] and status.level == status.WARN
    assert "rejected commands" in status.message
    assert node.target.current.expressions == ["the red cup"]


def test_an_over_long_command_is_rejected_before_parsing(ros, make_node, seg_checkpoint, monkeypatch):
    import mllmseg_ros.ros.commands as commands_module

    parsed = []
    real_parse = commands_module.parse_command
    monkeypatch.setattr(commands_module, "parse_command", lambda text, *a, **k: (parsed.append(len(text)), real_parse(text, *a, **k))[1])
    node = make_node(seg_checkpoint, max_command_chars=200)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup " * 100_000)  # 1.2 MB
    assert wait_for(lambda: "longer than max_command_chars" in node.target.status)
    assert node.target.current is None and parsed == []  # the long one never reached the parser
    driver.send_command("the blue bowl")
    assert wait_for(lambda: node.target.current is not None)
    assert node.target.current.expressions == ["the blue bowl"] and parsed == [len("the blue bowl")]
    assert results_flow(driver)


def test_parameters_the_node_does_not_own_can_be_set(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert results_flow(driver)
    assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
    assert node.get_parameter("use_sim_time").value is True
    node.declare_parameter("qos_overrides./image.subscription.depth", 1)  # as rclpy declares them
    assert node.set_parameters([Parameter("qos_overrides./image.subscription.depth", value=2)])[0].successful
    assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful
    before = len(driver.arrays)
    assert results_flow(driver, since=before, stamp_ns=2)
    assert not node.set_parameters([Parameter("device", value="cuda")])[0].successful  # still guarded


def test_diagnostics_warn_only_for_a_recent_window(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, diagnostics_period_s=0.2, diagnostics_window_s=1.5)
    statuses = diagnostics_listener(ros)
    segment_batch = node.segmenter.segment_batch
    failures = [RuntimeError("simulated CUDA error")]

    def fail_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return segment_batch(*args, **kwargs)

    node.segmenter.segment_batch = fail_once
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    assert results_flow(driver)
    assert wait_for(lambda: any(s.level == s.WARN and "errors" in s.message for s in statuses))
    # frames keep flowing; once the error is older than the window, the level is OK again, the count stays
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=3)), bool(statuses) and statuses[-1].level == statuses[-1].OK)[1], interval=0.2)
    first_warn = next(i for i, s in enumerate(statuses) if s.level == s.WARN and "errors" in s.message)
    warned = [s for s in statuses[first_warn:] if s.level == s.WARN]
    assert len(warned) >= 5  # about window / period statuses said WARN, not just the one after the error
    assert values_of(statuses[-1])["errors"] == "1"


def test_oversized_frames_count_as_rejected_not_errors(ros, make_node, seg_checkpoint):
    from sensor_msgs.msg import Image

    node, driver = commanded(ros, make_node, seg_checkpoint)
    huge = Image(height=1, width=9000, encoding="mono8", step=9000)
    huge.data = bytes(9000)
    driver.image.publish(huge)
    assert wait_for(lambda: node.counters()["rejected"] == 1)
    assert node.counters()["errors"] == 0
    assert "9000" in node.streams[0].reject_reason
