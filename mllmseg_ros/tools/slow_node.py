"""mllmseg_node with a slow model, as its own process: every inference (the worker's and ~/segment's) takes
MLLMSEG_TEST_DELAY_S seconds longer.

Stands in for a CPU or a small Jetson, where the 1B model needs seconds per frame. Arguments are the node's own
(``--ros-args ...``).
"""
from __future__ import annotations

import os
import sys
import time

from ..engine.segmenter import Segmenter
from ..ros.node import main

from .node_process import STEP_STARTED

DELAY_S = float(os.environ.get("MLLMSEG_TEST_DELAY_S", "1.0"))
_segment_batch = Segmenter.segment_batch
_segment = Segmenter.segment


def slow_segment_batch(self, *args, **kwargs):
    print(STEP_STARTED, flush=True)  # tests wait for this to act mid-inference
    time.sleep(DELAY_S)
    return _segment_batch(self, *args, **kwargs)


def slow_segment(self, *args, **kwargs):
    time.sleep(DELAY_S)
    return _segment(self, *args, **kwargs)


Segmenter.segment_batch = slow_segment_batch
Segmenter.segment = slow_segment

if __name__ == "__main__":
    main(sys.argv)
