#!/usr/bin/env python3
"""Two machines on one: the node on a "workstation", a camera and a planner on a "robot", over a slow, lossy link.

Three network namespaces (needs root and ``ip netns``): the robot's and the workstation's, each with one veth end
(10.77.<n>.1 and .2), and between them a link namespace where link_relay.py forwards Ethernet frames after a one-way
delay, dropping a share of them; tc tbf limits each direction's rate on the end interfaces. Fast DDS over UDP only
(no shared memory, which would bypass the link), discovery by multicast across the link (ROS_AUTOMATIC_DISCOVERY_RANGE
SUBNET), a participant lease of 3 s so that a 6 s outage really loses the other side. No traffic leaves the
namespaces; they are deleted at the end, also after an error.

Robot: the camera (colour, depth and camera_info at --fps, raw or compressed) and a planner that sends a scripted
series of commands and stops, records every result and /diagnostics. Workstation: mllmseg_node with the tests' tiny
model made as slow as a GPU running a large model (``--model-s``), tracking between answers. Reported per scenario:

  answer latency     frame stamp -> model answer received on the robot (p50, p95)
  tracked/s          tracked results received per second while a target is set; answers/s likewise
  commands           sent; never answered (a stop counts as answered when results stop); never received by the node
  stop latency       stop sent -> the last result received (the planner's view), worst over the stops
  frames in          colour frames the node received / sent by the camera
  Mbit/s             bytes on each direction's wire (interface counters), over the run

Scenarios: ``defaults`` (raw rgb8 and 16UC1 in, full masks out), ``compact`` (JPEG and compressedDepth PNG in,
network remote, mask_format png) with a latched planner, and ``compact-volatile``: the same with the planner's
command publisher volatile. The two compact ones cut the link for 6 s and publish a command meanwhile.

    sudo .venv/bin/python benchmarks/bench_remote.py --rate-mbit 40 --delay-ms 25 --loss 0.02 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# (at s after the stream starts, text); "stop" ends the target. The outage command is sent while the link is down.
SCRIPT = [(0.0, "the red cup"), (4.0, "the blue bowl"), (8.0, "stop"), (10.0, "the green box"),
          (14.0, "the red cup; the blue bowl"), (18.0, "stop")]
OUTAGE = (20.0, 6.0)  # start, duration (s): longer than the lease, so the two sides lose each other
OUTAGE_COMMAND = (22.0, "the green box; the red cup")
LEASE_S = 3
# Fast DDS's defaults over UDP only (shared memory would bypass the link), or the shipped remote profile; both with
# the short lease
UNTUNED_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors><transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
  </transport_descriptor></transport_descriptors>
  <participant profile_name="over_the_link" is_default_profile="true"><rtps>
    <userTransports><transport_id>udp</transport_id></userTransports>
    <useBuiltinTransports>false</useBuiltinTransports>
  </rtps></participant>
</profiles></dds>
"""
LEASE_XML = f"""<builtin><discovery_config><leaseDuration><sec>{LEASE_S}</sec></leaseDuration>
      <leaseAnnouncement><sec>1</sec></leaseAnnouncement></discovery_config></builtin>
      </rtps>"""


def fastdds_profile(tuned: bool) -> str:
    text = (ROOT / "config" / "fastdds_remote.xml").read_text() if tuned else UNTUNED_XML
    return text.replace("</rtps>", LEASE_XML, 1)
COMPACT = {"image_transport": "compressed", "depth_transport": "compressedDepth", "network": "remote", "mask_format": "png"}
# tuned: config/fastdds_remote.xml (datagrams that fit one Ethernet frame: Fast DDS fragments instead of IP, see
# docs/remote.md); ipfrag: the kernel's IP reassembly tuned instead, as ROS 2's DDS tuning guide suggests
SCENARIOS = {
    "defaults": {"colour": "raw", "depth": "raw", "params": {}},
    "compact-untuned": {"colour": "jpeg", "depth": "png", "params": COMPACT},
    "compact": {"colour": "jpeg", "depth": "png", "params": COMPACT, "tuned": True, "outage": True},
    "compact-volatile": {"colour": "jpeg", "depth": "png", "params": COMPACT, "tuned": True, "outage": True,
                         "latched": False},
    "compact-ipfrag": {"colour": "jpeg", "depth": "png", "params": COMPACT, "ipfrag": True},
    "compact-best-effort": {"colour": "jpeg", "depth": "png", "params": {**COMPACT, "output_qos": "best_effort"},
                            "tuned": True},
    "compact-ideal-link": {"colour": "jpeg", "depth": "png", "params": COMPACT, "tuned": True,
                           "link": {"rate_mbit": 1000.0, "delay_ms": 0.0, "loss": 0.0}},
}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class Link:
    """The three namespaces, the veths, tbf and the relay; deleted on exit whatever happened."""

    def __init__(self, rate_mbit: float, delay_ms: float, loss: float, folder: Path, index: int) -> None:
        tag = f"{os.getpid() % 100000}{index}"
        self.robot, self.middle, self.station = f"m36r{tag}", f"m36l{tag}", f"m36w{tag}"
        self.rate_mbit, self.delay_ms, self.loss, self.folder = rate_mbit, delay_ms, loss, folder
        self.subnet = f"10.77.{index}"
        self.relay: subprocess.Popen | None = None
        self.stats_path = folder / f"relay{index}.json"

    def __enter__(self) -> "Link":
        try:
            self._create()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _create(self) -> None:
        for ns in (self.robot, self.middle, self.station):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for end, ns, address in (("r", self.robot, 1), ("w", self.station, 2)):
            outer, inner = f"{end}0", f"{end}1"
            sh("ip", "link", "add", outer, "netns", ns, "type", "veth", "peer", "name", inner, "netns", self.middle)
            sh("ip", "-n", ns, "addr", "add", f"{self.subnet}.{address}/24", "dev", outer)
            sh("ip", "-n", ns, "link", "set", outer, "up")
            sh("ip", "netns", "exec", ns, sys.executable, str(HERE / "link_relay.py"), "--checksum-off", outer)
            sh("ip", "-n", ns, "route", "add", "default", "dev", outer)  # multicast discovery needs a route
            sh("ip", "-n", self.middle, "link", "set", inner, "up")
            sh("ip", "netns", "exec", self.middle, "sysctl", "-q", f"net.ipv6.conf.{inner}.disable_ipv6=1")
            # tbf: the rate; a queue of at most 100 ms at that rate, as a Wi-Fi access point's
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", outer, "root", "tbf", "rate",
               f"{self.rate_mbit}mbit", "burst", "32kb", "latency", "100ms")
        self.relay = subprocess.Popen(
            ["ip", "netns", "exec", self.middle, sys.executable, str(HERE / "link_relay.py"), "r1", "w1",
             "--delay-ms", str(self.delay_ms), "--loss", str(self.loss), "--stats", str(self.stats_path)],
            stdout=subprocess.PIPE, text=True)
        if self.relay.stdout.readline().strip() != "relay ready":
            raise RuntimeError("the link relay did not start")

    def tune_reassembly(self) -> None:
        """ROS 2's DDS tuning guide for lossy links: incomplete datagrams dropped after 3 s, 128 MB for reassembly."""
        for ns in (self.robot, self.station):
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "net.ipv4.ipfrag_time=3", "net.ipv4.ipfrag_high_thresh=134217728")

    def down(self) -> None:
        self.relay.send_signal(10)  # SIGUSR1

    def up(self) -> None:
        self.relay.send_signal(12)  # SIGUSR2

    def rate_limit_drops(self) -> dict[str, int]:
        """Packets tbf dropped at each end (its queue was full: more offered than the rate)."""
        drops = {}
        for name, ns, dev in (("robot->station", self.robot, "r0"), ("station->robot", self.station, "w0")):
            qdiscs = json.loads(sh("tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev).stdout)
            drops[name] = sum(q.get("drops", 0) for q in qdiscs)
        return drops

    def wire_bytes(self) -> dict[str, int]:
        """Bytes sent by each end (interface counters, Ethernet frames)."""
        sent = {}
        for name, ns, dev in (("robot->station", self.robot, "r0"), ("station->robot", self.station, "w0")):
            stats = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", dev).stdout)[0]["stats64"]
            sent[name] = stats["tx"]["bytes"]
        return sent

    def udp_errors(self) -> dict[str, int]:
        """UDP datagrams each end's kernel dropped for a full socket receive buffer (RcvbufErrors), or could not send."""
        errors = {}
        for name, ns in (("robot", self.robot), ("station", self.station)):
            lines = [line.split() for line in sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").stdout.splitlines()
                     if line.startswith("Udp:")]
            udp = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))
            errors[f"{name} receive buffer"] = udp["RcvbufErrors"]
            errors[f"{name} send buffer"] = udp["SndbufErrors"]
            ip_lines = [line.split() for line in sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").stdout.splitlines()
                        if line.startswith("Ip:")]
            ip = dict(zip(ip_lines[0][1:], (int(v) for v in ip_lines[1][1:])))
            errors[f"{name} reassembly failed"] = ip["ReasmFails"]
            errors[f"{name} reassembled"] = ip["ReasmOKs"]
        return errors

    def __exit__(self, *exc) -> None:
        if self.relay is not None and self.relay.poll() is None:
            self.relay.terminate()
            try:
                self.relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.relay.kill()
        for ns in (self.robot, self.middle, self.station):
            sh("ip", "netns", "del", ns, check=False)  # takes its veth ends along

    def run_in(self, ns: str, command: list[str], env: dict, log: Path) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", ns, *command], env=env, stdout=log.open("w"),
                                stderr=subprocess.STDOUT)


def node_command(checkpoint: Path, params: dict) -> list[str]:
    base = {"model_path": str(checkpoint), "autostart": True, "tracking": "auto", "track_rate_hz": 15.0,
            "no_image_warn_s": 0.0, "diagnostics_period_s": 1.0, "threads": 1}
    args = []
    for key, value in {**base, **params}.items():
        args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return [sys.executable, "-m", "mllmseg_ros.tools.slow_node", "--ros-args", *args]


def run_scenario(name: str, args, folder: Path, index: int, checkpoint: Path) -> dict:
    scenario = {"tuned": False, "ipfrag": False, "outage": False, "latched": True, "link": {}, **SCENARIOS[name]}
    link_settings = {"rate_mbit": args.rate_mbit, "delay_ms": args.delay_ms, "loss": args.loss, **scenario["link"]}
    profile = folder / f"fastdds_{name}.xml"
    profile.write_text(fastdds_profile(scenario["tuned"]))
    env = dict(os.environ, ROS_DOMAIN_ID=str(60 + index), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               ROS_LOG_DIR=str(folder / "ros_log"), FASTDDS_DEFAULT_PROFILES_FILE=str(profile),
               MLLMSEG_TEST_DELAY_S=str(args.model_s), PYTHONUNBUFFERED="1")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    log_path = folder / f"{name}_camera.json"
    seconds = OUTAGE[0] + OUTAGE[1] + 6.0 if scenario["outage"] else SCRIPT[-1][0] + 2.0
    camera = [sys.executable, str(HERE / "remote_robot.py"), "--out", str(log_path), "--size", args.size,
              "--fps", str(args.fps), "--seconds", str(seconds), "--colour", scenario["colour"],
              "--depth", scenario["depth"], "--script", json.dumps(SCRIPT + ([OUTAGE_COMMAND] if scenario["outage"] else []))]
    if scenario["latched"]:
        camera.append("--latched")
    if scenario["params"].get("output_qos") == "best_effort":
        camera.append("--results-best-effort")  # a reliable subscription never matches a best-effort publisher
    with Link(**link_settings, folder=folder, index=index) as link:
        if scenario["ipfrag"]:
            link.tune_reassembly()
        node = link.run_in(link.station, node_command(checkpoint, scenario["params"]), env, folder / f"{name}_node.log")
        before = link.wire_bytes()
        robot = link.run_in(link.robot, camera, env, folder / f"{name}_robot.log")
        try:
            started = wait_for_line(folder / f"{name}_robot.log", "stream starts at ", robot, timeout=90)
            if scenario["outage"]:
                time.sleep(max(0.0, started + OUTAGE[0] - time.monotonic()))
                link.down()
                time.sleep(OUTAGE[1])
                link.up()
            # Done when its log is written: a robot whose reliable writers still hold frames may take long to exit
            deadline = time.monotonic() + seconds + 60
            while not log_path.exists() and robot.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            after = link.wire_bytes()
            udp_errors = link.udp_errors()
            tbf_drops = link.rate_limit_drops()
        finally:
            for process in (robot, node):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
    if not log_path.exists():
        raise RuntimeError(f"{name}: the robot process failed; see {folder / f'{name}_robot.log'}")
    stats = json.loads(link.stats_path.read_text()) if link.stats_path.exists() else {}
    log = json.loads(log_path.read_text())
    # The counters span discovery (little traffic), the stream and its 3 s tail (results still coming)
    duration = log["stream_seconds"] + 3.0
    wire = {k: (after[k] - before[k]) * 8 / duration / 1e6 for k in after}
    sent_in = after["robot->station"] - before["robot->station"]
    return {"scenario": name, "link": link_settings, **summarise(log, scenario["outage"]),
            "commands_not_received": not_received(log),
            # on the wire / serialised messages the camera sent: the protocols' overhead (plus resends, if reliable)
            "wire_per_payload_in": sent_in / max(1, log["payload_bytes"]),
            "wire_mbit_s": wire, "tbf_drops": tbf_drops, "udp_errors": udp_errors, "relay": stats}


def not_received(log: dict) -> list[str]:
    """Commands the node never received (lost on the way): those without a ~/command_status answering them."""
    missing = []
    for text in sorted({c["text"] for c in log["commands"]}):
        sent = sum(c["text"] == text for c in log["commands"])
        missing += [text] * max(0, sent - log["statuses"].count(text))
    return missing


def wait_for_line(path: Path, prefix: str, process: subprocess.Popen, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.startswith(prefix):
                return float(line[len(prefix):])
        if process.poll() is not None:
            raise RuntimeError(f"the robot process ended early: {path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("the robot process did not start its stream (no discovery across the link?)")


def summarise(log: dict, outage: bool) -> dict:
    from remote_robot import analyse

    return analyse(log, outage and OUTAGE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--rate-mbit", type=float, default=40.0)
    parser.add_argument("--delay-ms", type=float, default=25.0, help="one way")
    parser.add_argument("--loss", type=float, default=0.02, help="share of Ethernet frames dropped")
    parser.add_argument("--model-s", type=float, default=0.25, help="seconds per model answer")
    parser.add_argument("--json")
    parser.add_argument("--logs", help="keep the processes' logs in this folder")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        raise SystemExit("bench_remote.py needs root, ip (iproute2) and tc: it makes network namespaces")
    from mllmseg_ros.tools.node_driver import tiny_checkpoint

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = tiny_checkpoint(folder / "model")
        for index, name in enumerate(args.scenarios.split(",")):
            try:
                results.append(run_scenario(name, args, folder, index, checkpoint))
            except (RuntimeError, subprocess.SubprocessError) as exc:  # the next scenarios still run
                results.append({"scenario": name, "error": str(exc)})
            finally:
                if args.logs:
                    shutil.copytree(folder, args.logs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model"))
            print(json.dumps(results[-1], indent=1), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
        if args.logs:
            shutil.copytree(folder, args.logs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model"))


if __name__ == "__main__":
    main()
