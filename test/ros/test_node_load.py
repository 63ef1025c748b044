"""Behaviour under load and when inputs are missing: bounded latency and memory, counted drops, one clear warning."""
from __future__ import annotations

import os
import resource
import threading
import time

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_harness import connected, rgb_msg, wait_for

FLOOD_SECONDS = float(os.environ.get("MLLMSEG_FLOOD_SECONDS", "20"))
FLOOD_FACTOR = 5  # publish this many times faster than the node answers
# The tiny test model answers in ~25 ms; a real one takes 100 ms (GPU) to seconds (CPU). The model call is slowed to
# this so that "5x the model rate" is a camera-like 50 Hz, not 200 Hz of in-process publishing. The node's threading,
# not the model, is under test; sleeping releases the GIL as torch's kernels do.
MODEL_SECONDS = 0.1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_flood_at_five_times_the_model_rate(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, diagnostics_period_s=0.5)
    segment_batch = node.segmenter.segment_batch

    def slow_segment_batch(*args, **kwargs):
        time.sleep(MODEL_SECONDS)
        return segment_batch(*args, **kwargs)

    node.segmenter.segment_batch = slow_segment_batch
    driver = ros.driver(keep_messages=False)
    assert connected(node, driver)
    frame = rgb_msg(height=480, width=640)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(frame)  # warm-up: the first answer includes one-time initialisation
    assert wait_for(lambda: len(driver.model_latencies_ms) == 1)
    # Measure the answer rate on a few single frames first.
    started = time.monotonic()
    for i in range(3):
        driver.image.publish(frame)
        assert wait_for(lambda: len(driver.model_latencies_ms) == i + 2)
    model_period = (time.monotonic() - started) / 3
    publish_period = model_period / FLOOD_FACTOR
    rss_before = current_rss_mb()
    stop = threading.Event()
    sent = 0

    def flood() -> None:
        nonlocal sent
        next_time = time.monotonic()
        while not stop.is_set():
            msg = rgb_msg(height=480, width=640, stamp_ns=sent + 1000)
            driver.image.publish(msg)
            sent += 1
            next_time += publish_period
            time.sleep(max(0.0, next_time - time.monotonic()))

    publisher = threading.Thread(target=flood)
    before = len(driver.model_latencies_ms)
    publisher.start()
    time.sleep(FLOOD_SECONDS)
    stop.set()
    publisher.join()
    assert wait_for(lambda: node._wake is not None and node.streams[0].slot.peek() is None, timeout=10)
    latencies = np.array(driver.model_latencies_ms[before:])
    results = latencies
    counters = node.counters()
    rss_growth = current_rss_mb() - rss_before
    print(
        f"\nflood: model period {model_period * 1e3:.0f} ms, sent {sent}, received {counters['received']}, "
        f"answered {len(results)}, dropped {counters['dropped']}, latency median {np.median(latencies):.0f} ms "
        f"p95 {np.percentile(latencies, 95):.0f} ms max {latencies.max():.0f} ms, RSS growth {rss_growth:.0f} MB"
    )
    assert len(results) >= 0.3 * FLOOD_SECONDS / model_period  # the node keeps answering under load
    assert counters["dropped"] > 0  # stale frames were dropped, not queued
    assert counters["received"] - counters["dropped"] >= len(results)
    # Never queued: no answer is older than a few model periods (a queue would grow linearly over 20 s).
    assert np.percentile(latencies, 95) < 1e3 * (6 * model_period + 0.5)
    assert rss_growth < 150
    assert counters["errors"] == 0


def test_silent_camera_warning_explains_why(ros, make_node, seg_checkpoint):
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    node = make_node(seg_checkpoint, image_qos="reliable", no_image_warn_s=0.5)
    stream = node.streams[0]
    assert wait_for(lambda: stream.warned, timeout=10)
    assert "nobody publishes /image" in stream.why_no_images()
    driver = ros.driver(image_qos=best_effort)
    assert wait_for(lambda: len(node.get_publishers_info_by_topic("/image")) == 1)
    assert "QoS mismatch" in stream.why_no_images()
    stream.rejected, stream.reject_reason = 3, "unsupported image encoding 'yuv422'"
    assert "yuv422" in stream.why_no_images()
    del driver
