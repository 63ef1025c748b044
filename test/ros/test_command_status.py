"""What the node does with each spoken command and what it says about it: ~/command_status, /diagnostics and the log;
speech-to-text noise, and a stop that no service call holds back and no publication in progress outlives (stop-like
speech: test/ros/test_node_commands.py)."""
from __future__ import annotations

import threading
import time

import pytest

from ros_harness import (commanded, connected, diagnostics_listener, quiet_window, results_flow, rgb_msg,
                         seconds_to_results, slow_down, values_of, wait_for)

TARGET, STOPPED, REPEAT, IGNORED, REJECTED = 1, 2, 3, 4, 5


def status_listener(ros, statuses: list, depth: int = 10):
    """A subscriber to ~/command_status as a voice front end makes one (transient local: on joining it gets the last
    ``depth`` statuses)."""
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from mllmseg_ros.msg import CommandStatus

    node = ros.add(Node(f"test_voice_{time.monotonic_ns()}"))
    latched = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(CommandStatus, "/mllmseg_node/command_status", statuses.append, latched)
    return node


def test_each_command_gets_a_status_a_voice_front_end_can_speak(ros, make_node, seg_checkpoint):
    statuses: list = []
    status_listener(ros, statuses)
    diagnostics = diagnostics_listener(ros)
    node, driver = commanded(ros, make_node, seg_checkpoint, "Pick up the red cup.", diagnostics_period_s=0.2)
    said = [("Pick up the red cup.", TARGET), ("the red cup", REPEAT), ("[BLANK_AUDIO]", IGNORED), (" Thank you.", IGNORED),
            ("Follow it.", REJECTED), ("Don't pick up the red cup.", STOPPED), ("Stop. Pick up the green box.", TARGET),
            ("Wait a second.", STOPPED), ("stop", STOPPED)]
    for text, _ in said[1:]:
        driver.send_command(text)
    assert wait_for(lambda: len(statuses) == len(said)), [s.command for s in statuses]
    assert [(s.command, s.outcome) for s in statuses] == said
    first, repeat, blank, thanks, it, negated, restart, wait, stop = statuses
    assert first.expressions == first.target == ["the red cup"] and first.reply == "Looking for the red cup."
    assert repeat.target_id == first.target_id and repeat.reply == "Still looking for the red cup."
    assert blank.reply == thanks.reply == "" and blank.target == ["the red cup"]  # noise: no answer, target kept
    assert it.target == ["the red cup"] and "names no object" in it.reason and it.reply.startswith("Sorry")
    assert negated.target == [] and negated.stopped and "negates the current target" in negated.reason
    assert restart.stopped and restart.target == ["the green box"] and restart.target_id > first.target_id
    assert wait.target == [] and stop.reply == "Stopped; I had no target."
    assert all(s.active and s.header.stamp.sec > 0 for s in statuses)
    late: list = []  # latched: a front end that starts now still hears the last status
    status_listener(ros, late, depth=1)
    # Its history of 1 keeps the newest sample, but the writer's history (10) may arrive a sample at a time, each
    # taken before the next comes (seen: the first and the last status): what matters is that the newest status is what it ends with.
    assert wait_for(lambda: late and late[-1].command == "stop"), [s.command for s in late]
    said_in_order = iter(s.command for s in statuses)
    assert all(heard.command in said_in_order for heard in late), [s.command for s in late]  # a part, in order
    assert wait_for(lambda: any(values_of(s).get("command_outcome") == "stopped" and values_of(s).get("commands_repeat") == "1"
                                for s in diagnostics))


# Stop-like speech as speech-to-text prints it used to become a target ("wait a second" -> 'a second', 10 centroids)
STOP_LIKE = ["wait a second", "Hold on a sec.", "emergency stop", "stop right there", "hang on", "Quit.", "Don't move.",
             "Nope.", "Stop. Stop!", "STOP", "Not that one."]
# and what engines print on silence or noise, and other speech that is not a command, used to become one ("you")
NOT_COMMANDS = [" you", "(silence)", "[Music]", "*laughs*", "<unk>", "Thanks for watching!",
                "Subtitles by the Amara.org community", "Okay.", "What was that?", "um", "Follow it."]


def test_stop_like_speech_stops_and_never_becomes_a_target(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, threshold=0.0)
    for index, speech in enumerate(STOP_LIKE):
        driver.send_command("the red cup")
        assert wait_for(lambda: node.target.current is not None)
        took = seconds_to_results(driver, len(driver.arrays), 1 + 10 * index)
        driver.send_command(speech)
        assert wait_for(lambda: node.target.current is None), speech
        assert node.commands.last.command == speech and node.commands.last.name == "stopped"
        time.sleep(0.3)  # an answer already on its way may still arrive
        before = len(driver.arrays)
        for i in range(3):
            driver.image.publish(rgb_msg(stamp_ns=5 + 10 * index + i))
            time.sleep(0.05)
        assert not wait_for(lambda: len(driver.arrays) > before, timeout=quiet_window(took)), speech
    assert {s.expression for a in driver.arrays for s in a.segmentations} == {"the red cup"}


def test_noise_neither_targets_nor_stops(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, threshold=0.0)
    for index, speech in enumerate(NOT_COMMANDS):
        driver.send_command(speech)
        assert wait_for(lambda: node.commands.last is not None and node.commands.last.command == speech)
        assert node.commands.last.name in ("ignored", "rejected"), speech
        assert node.target.current is not None and node.target.current.expressions == ["the red cup"], speech
        assert results_flow(driver, len(driver.arrays), 1 + index)
    assert {s.expression for a in driver.arrays for s in a.segmentations} == {"the red cup"}


def test_a_command_is_not_held_back_by_a_service_call(ros, make_node, seg_checkpoint):
    """~/segment answers from a thread of its own: the single-threaded executor serves commands meanwhile."""
    from mllmseg_ros.srv import Segment

    node, driver = commanded(ros, make_node, seg_checkpoint)
    segment = node.segmenter.segment
    node.segmenter.segment = lambda *a, **k: time.sleep(3.0) or segment(*a, **k)
    client = driver.node.create_client(Segment, "/mllmseg_node/segment")
    assert client.wait_for_service(timeout_sec=10)
    call = client.call_async(Segment.Request(expressions=["the green box"], use_latest_image=False, image=rgb_msg()))
    time.sleep(0.5)  # the call is running
    sent = time.monotonic()
    driver.send_command("stop")
    assert wait_for(lambda: node.target.current is None, timeout=2.0)
    assert time.monotonic() - sent < 2.0 and not call.done()  # taken while the call still ran
    assert wait_for(call.done, timeout=30) and call.result().success
    assert [s.expression for s in call.result().result.segmentations] == ["the green box"]


@pytest.mark.parametrize("path", ["model", "tracked"])
def test_nothing_about_the_old_target_is_published_once_a_stop_returns(ros, make_node, seg_checkpoint, monkeypatch, path):
    """A result being built when the stop comes is checked again under the publish gate: the stop wins."""
    import mllmseg_ros.ros.camera_stream as camera_stream_module  # every result becomes an array there

    node = make_node(seg_checkpoint, tracking="on" if path == "tracked" else "off", track_rate_hz=1000.0)
    slow_down(node, 0.3 if path == "tracked" else 0.05)
    building, published = threading.Event(), []
    module = camera_stream_module
    real_build = module.build_array
    builder = "mllmseg_tracking" if path == "tracked" else "mllmseg_inference"  # the thread whose results are slowed

    def slow_build(*args, **kwargs):
        if threading.current_thread().name != builder:
            return real_build(*args, **kwargs)
        building.set()
        time.sleep(0.3)  # the stop comes now: after the old check, before the publication
        return real_build(*args, **kwargs)

    monkeypatch.setattr(module, "build_array", slow_build)
    stream = node.streams[0]
    real_publish = stream.publisher.publish
    stream.publisher.publish = lambda array, *a, **k: (published.append((time.monotonic(), array)), real_publish(array, *a, **k))
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command("the red cup")
    stop_camera = threading.Event()
    camera = threading.Thread(target=lambda: [(driver.image.publish(rgb_msg(stamp_ns=i + 1)), time.sleep(0.03))
                                              for i in range(400) if not stop_camera.is_set()])
    camera.start()
    try:
        assert wait_for(lambda: published)
        building.clear()
        assert building.wait(10)
        node.commands.handle("stop")
        returned = time.monotonic()
        time.sleep(1.0)
    finally:
        stop_camera.set()
        camera.join()
    assert published and all(t < returned for t, _ in published), [t - returned for t, _ in published]


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))


def test_each_distinct_outcome_is_logged_and_repeats_of_one_are_throttled():
    from mllmseg_ros.ros.commands import REJECTED as REJECT, REPEAT as AGAIN, Outcome, OutcomeLog

    logger = FakeLogger()
    log = OutcomeLog(logger, repeat_s=5.0)
    for i in range(1000):  # a behaviour tree re-sending its goal 100 times a second for 10 s
        log.log(Outcome("the red cup", AGAIN, expressions=["the red cup"]), now=i * 0.01)
        if i in (10, 500, 990):  # different rejections in between are each logged
            log.log(Outcome(f"pick up {i}", REJECT, reason=f"reason {i}"), now=i * 0.01)
    repeats = [text for level, text in logger.lines if "'the red cup'" in text]
    assert len(repeats) == 2 and "[499 more like it in the last 5 s]" in repeats[1]
    assert [level for level, text in logger.lines if "pick up" in text] == ["warning"] * 3


def test_the_outcome_numbers_are_the_messages():
    from mllmseg_ros.msg import CommandStatus
    from mllmseg_ros.ros import commands

    for name in ("TARGET", "STOPPED", "REPEAT", "IGNORED", "REJECTED"):
        assert getattr(commands, name) == getattr(CommandStatus, name)


def test_a_stop_holds_when_the_target_after_it_cannot_be_taken(ros, make_node, seg_checkpoint):
    node, driver = commanded(ros, make_node, seg_checkpoint, max_command_chars=20_000)
    adjectives = " ".join(["big old shiny round heavy"] * 300)  # a prompt longer than the tiny model's context
    long_target = f"Stop. Find the {adjectives} red cup."
    outcome = node.commands.handle(long_target)
    assert outcome.name == "stopped" and node.target.current is None and "not taken" in outcome.reason
    assert node.commands.handle(long_target[len("Stop. "):]).name == "rejected"  # without the stop: nothing changes
