"""The two-namespace link of benchmarks/bench_remote.py: delay, loss and outages as configured, traffic only between
the namespaces, and nothing left behind after an error; and the analysis of a robot's log.

The link needs root and ``ip netns`` (CI runs as root on the project's machines); where either is missing these tests
skip and say so. bench_remote.py itself (ROS nodes across the link, about 5 minutes) is a benchmark: its figures are
in docs/remote.md.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_remote import Link  # noqa: E402
from remote_robot import analyse  # noqa: E402


def netns_problem() -> str:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip") or not shutil.which("tc"):
        return "iproute2 (ip, tc) is not installed"
    name = f"m36probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return "" if made.returncode == 0 else f"ip netns add failed: {made.stderr.strip()}"


needs_netns = pytest.mark.skipif(bool(netns_problem()), reason=netns_problem() or "-")

ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5555)); s.settimeout(5)
print("ready", flush=True)
try:
    while True:
        data, peer = s.recvfrom(2048); s.sendto(data, peer)
except socket.timeout:
    pass
"""
PING = """
import socket, sys, time, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, rtts = {}, []
def receive(timeout):
    s.settimeout(timeout)
    try:
        data = s.recvfrom(2048)[0]
        rtts.append(time.monotonic() - sent[int.from_bytes(data[:4], "big")])
        return True
    except (socket.timeout, BlockingIOError):
        return False
for i in range(int(sys.argv[2])):  # one every 2 ms, replies taken as they come
    sent[i] = time.monotonic(); s.sendto(i.to_bytes(4, "big") + bytes(100), (sys.argv[1], 5555))
    while receive(0.0):
        pass
    time.sleep(0.002)
while receive(float(sys.argv[3])):
    pass
print(json.dumps({"rtts": rtts, "lost": len(sent) - len(rtts)}))
"""


def ping(link: Link, count: int, timeout_s: float) -> dict:
    import json

    echo = subprocess.Popen(["ip", "netns", "exec", link.station, sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    assert echo.stdout.readline().strip() == "ready"
    try:
        out = subprocess.run(["ip", "netns", "exec", link.robot, sys.executable, "-c", PING, f"{link.subnet}.2", str(count),
                              str(timeout_s)], capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        echo.terminate()
        echo.wait(timeout=10)
    return json.loads(out)


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@needs_netns
def test_the_link_delays_and_drops_as_configured(tmp_path):
    with Link(rate_mbit=20, delay_ms=30, loss=0.1, folder=tmp_path, index=9) as link:
        assert link.robot in namespaces() and link.station in namespaces()
        result = ping(link, count=300, timeout_s=0.5)
    # a round trip crosses the link twice: 60 ms plus little; a reply is lost with 1 - 0.9^2 = 19%
    assert 0.060 <= min(result["rtts"]) and sorted(result["rtts"])[len(result["rtts"]) // 2] < 0.2
    assert 30 <= result["lost"] <= 85, result["lost"]  # 57 expected; far outside this would be a broken relay
    assert link.robot not in namespaces() and link.middle not in namespaces()


@needs_netns
def test_an_outage_drops_everything_until_the_link_is_up_again(tmp_path):
    with Link(rate_mbit=20, delay_ms=5, loss=0.0, folder=tmp_path, index=8) as link:
        assert ping(link, count=5, timeout_s=0.5)["lost"] == 0
        link.down()
        time.sleep(0.1)
        assert ping(link, count=5, timeout_s=0.2)["lost"] == 5
        link.up()
        time.sleep(0.1)
        assert ping(link, count=5, timeout_s=0.5)["lost"] == 0


@needs_netns
def test_namespaces_are_deleted_after_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="failure inside"):
        with Link(rate_mbit=20, delay_ms=5, loss=0.0, folder=tmp_path, index=7) as link:
            names = (link.robot, link.middle, link.station)
            raise RuntimeError("failure inside")
    assert not any(name in namespaces() for name in names)


def test_analysis_counts_lost_commands_stop_latency_and_rates():
    start = 1000.0
    commands = [{"sent": start, "text": "the red cup"}, {"sent": start + 4, "text": "the blue bowl"},
                {"sent": start + 8, "text": "stop"}, {"sent": start + 10, "text": "the green box"}]

    def arrival(at: float, command: str, tracked: bool) -> dict:
        return {"received": start + at, "stamp": start + at - 0.3, "command": command, "tracked": tracked}

    arrivals = [arrival(0.5 + 0.1 * i, "the red cup", i % 4 != 0) for i in range(30)]  # 3.5 s of answers
    arrivals += [arrival(8.05, "the red cup", True)]  # one in flight when the stop was sent: 50 ms late
    # "the blue bowl" never answered; "the green box" answered after it
    arrivals += [arrival(10.5, "the green box", False)]
    log = {"start": start, "end": start + 12, "arrivals": arrivals, "commands": commands, "frames_sent": 180,
           "diagnostics": {"frames_received": "150"}}
    figures = analyse(log, None)
    assert figures["commands_not_answered"] == ["the blue bowl"] and figures["commands_sent"] == 4
    assert figures["stop_latency_s_max"] == pytest.approx(0.05)
    assert figures["results_over_1s_after_stop"] == 0
    assert figures["answer_latency_ms_p50"] == pytest.approx(300, abs=1)
    assert figures["frames_received_by_node"] == 150
    # active: 4 + 4 + 2 s with a target; tracked: 22 of the first 30, all in the first command's span
    assert figures["tracked_per_s"] == pytest.approx(22 / 10)
