"""The node as its own process in a ROS workflow: bag replay on simulated time, and an unconfigured start."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from mllmseg_ros.tools.node_process import run_node
from ros_harness import diagnostics_listener, rgb_msg, stamp_ns_of, wait_for

BAG_START_NS = 1_000_000_000_000  # bag time 1000 s: far from the wall clock, so either time is recognisable
FRAMES, PERIOD_NS = 30, 100_000_000


def sim_time_bag(path: Path) -> Path:
    from std_msgs.msg import String

    from mllmseg_ros.tools.bags import write_bag

    messages = [("/command", "std_msgs/msg/String", String(data="pick up the red cup"), BAG_START_NS)]
    for i in range(FRAMES):
        t_ns = BAG_START_NS + (i + 1) * PERIOD_NS
        messages.append(("/image", "sensor_msgs/msg/Image", rgb_msg(stamp_ns=t_ns, frame_id="bag_camera"), t_ns))
    write_bag(path, messages)
    return path


def test_bag_replay_with_clock_and_use_sim_time(ros, seg_checkpoint, tmp_path):
    bag = sim_time_bag(tmp_path / "bag")
    node_args = ["-p", f"model_path:={seg_checkpoint}", "-p", "autostart:=true", "-p", "use_sim_time:=true",
                 "-p", "threshold:=0.0", "-p", "diagnostics_period_s:=0.5", "-p", "no_image_warn_s:=0.0"]
    with run_node(node_args) as process:
        driver = ros.driver()
        diagnostic_stamps: list[int] = []
        statuses = diagnostics_listener(ros, diagnostic_stamps)
        assert wait_for(lambda: driver.command.get_subscription_count() > 0), process.stop()
        cli = shutil.which("mllmseg-ros", path=str(Path(sys.executable).parent))
        player = subprocess.run([cli, "play", str(bag), "--clock", "--wait-for-subscribers", "20"],
                                capture_output=True, text=True, timeout=120)
        assert player.returncode == 0, player.stderr
        assert wait_for(lambda: len(driver.arrays) >= 3 and statuses, timeout=10)
    stamps = [stamp_ns_of(a) for a in driver.arrays]
    assert all(BAG_START_NS < s <= BAG_START_NS + FRAMES * PERIOD_NS for s in stamps)
    assert {a.header.frame_id for a in driver.arrays} == {"bag_camera"}
    # /diagnostics runs on the steady clock (from the start, with or without /clock) and is stamped with the bag's
    # clock once /clock runs (0 before: ROS time is not set yet)
    on_bag_time = [s for s in diagnostic_stamps if s]
    assert on_bag_time and all(BAG_START_NS <= s <= BAG_START_NS + (FRAMES + 10) * PERIOD_NS for s in on_bag_time)
    assert diagnostic_stamps[diagnostic_stamps.index(on_bag_time[0]):] == on_bag_time
    assert "Traceback" not in process.output, process.output


def test_an_unconfigured_node_says_what_it_waits_for(seg_checkpoint):
    with run_node(["-p", f"model_path:={seg_checkpoint}"]) as process:
        assert process.wait_for_output("waiting for a lifecycle configure"), process.stop()
        time.sleep(1.5)  # said once, not on every spin
    assert process.output.count("waiting for a lifecycle configure") == 1, process.output
    assert "autostart:=true" in process.output
