"""Stopping the node in its own process while the model is in the middle of a step (a slow model: test/ros/
slow_node.py): SIGINT and SIGTERM end the process within 2 s without an ERROR, and deactivate returns at once and
lets nothing out afterwards. Before: 6-7 s and "publisher's context is invalid" errors; deactivate waited for the
step and published its answer during the transition."""
from __future__ import annotations

import signal
import time

import pytest
from lifecycle_msgs.msg import Transition

from mllmseg_ros.tools.node_process import STEP_STARTED, params_file, run_node
from ros_harness import change_state, rgb_msg, wait_for

DELAY_S = 4.0  # one model step: twice as long as a clean stop may take
EXIT_WITHIN_S = 2.0  # ros2 launch escalates to SIGTERM after a few seconds


def start_a_step(driver, process, steps: int) -> None:
    """Send frames until the model has started its ``steps``-th step."""
    assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=time.monotonic_ns())),
                             process.output.count(STEP_STARTED) >= steps)[1], interval=0.2), process.output


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_inference_ends_the_process_quickly_and_quietly(ros, seg_checkpoint, tmp_path, stop_signal):
    params = params_file(tmp_path, model_path=str(seg_checkpoint), autostart=True, no_image_warn_s=0.0, tracking="off",
                         threshold=0.0)
    with run_node(["--params-file", str(params)], delay_s=DELAY_S) as process:
        driver = ros.driver()
        assert driver.wait_connected(), process.stop()
        driver.send_command("the red cup")
        if stop_signal == signal.SIGINT:  # first a pause in the middle of a step, then on again
            start_a_step(driver, process, 1)
            started = time.monotonic()
            assert change_state(driver.node, "/mllmseg_node", Transition.TRANSITION_DEACTIVATE)
            deactivate_s = time.monotonic() - started
            time.sleep(DELAY_S + 1.0)  # the step ends meanwhile: its answer must not go out
            assert not driver.arrays, "published after deactivate"
            assert deactivate_s < 1.0, deactivate_s  # the node's part is < 0.5 s (test_node.py); the rest is transport
            assert change_state(driver.node, "/mllmseg_node", Transition.TRANSITION_ACTIVATE)
            assert driver.wait_connected()
        start_a_step(driver, process, process.output.count(STEP_STARTED) + 1)
        started = time.monotonic()
        process.process.send_signal(stop_signal)
        process.process.wait(timeout=30)
        exit_s = time.monotonic() - started
    print(f"\n{signal.Signals(stop_signal).name} mid-inference: exit after {exit_s:.2f} s")
    assert exit_s < EXIT_WITHIN_S, (exit_s, process.output)
    assert process.process.returncode == 0, process.output
    assert "[ERROR]" not in process.output and "Traceback" not in process.output, process.output
