"""The output gate (nothing is published after deactivate) and the 3D health that /diagnostics reports."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from mllmseg_ros.ros.diagnostics import MIN_3D_FAILURES, ThreeDOutcomes
from mllmseg_ros.ros.publishing import OutputGate


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


def test_the_nodes_result_publishers_hold_its_gate_and_report_their_3d_answers(make_node, seg_checkpoint):
    """The node hands each camera's ResultPublisher its output gate and its 3D counter (issue 35's seam): after
    deactivate a result reaching the publisher by any path is not sent, and what is sent while active is counted."""
    from mllmseg_ros.msg import Segmentation, SegmentationArray

    node = make_node(seg_checkpoint)
    publisher = node.streams[0].publisher
    counted = []
    node.health.record_3d = counted.append  # the publisher's one call into the counter
    frame = SimpleNamespace(header=SegmentationArray().header, rgb=np.zeros((4, 4, 3), np.uint8), camera_info=None)
    array = SegmentationArray(segmentations=[Segmentation(source=Segmentation.SOURCE_MODEL)])
    assert publisher.publish(array, frame, [], with_markers=False)
    assert counted == [array]
    node.trigger_deactivate()
    assert not publisher.publish(array, frame, [], with_markers=False)
    assert counted == [array]
