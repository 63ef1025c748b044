#!/usr/bin/env python3
"""Inference time against torch's thread count, on an idle CPU and beside other busy processes.

A robot's computer runs the camera driver, a planner and more beside this node. When torch's threads (one per core by
default) have to share cores with another busy process, every parallel step waits for its slowest thread, which waits
for the scheduler. This measures one new frame and one expression (``Segmenter.segment`` on a fresh image) for each
thread count, with 0 and with ``--busy`` processes spinning on the CPU (plain Python loops, as a busy driver or
planner), in interleaved order so that drift in the machine's other load hits every setting alike.

    .venv/bin/python benchmarks/bench_threads.py [--model models/mllmseg_demo | --shape 1b] --threads 1,2 --busy 1 \
        --repeats 20 --json out.json

``--shape`` builds a random-weight model of a released shape (as bench_engine.py does) instead of loading ``--model``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mllmseg_ros.engine import Segmenter  # noqa: E402
from mllmseg_ros.tools.demo import DEMO_MODEL  # noqa: E402


def spin(stop) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


def frames(count: int, height: int = 480, width: int = 640):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def timed_segment(segmenter: Segmenter, image: np.ndarray, expression: str) -> float:
    segmenter.reset_image()  # a new frame every time: the node's case
    started = time.perf_counter()
    segmenter.segment(image, [expression])
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--shape", help="random-weight model of this shape (bench_model.py's SHAPES) instead of --model")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside inference in the loaded runs")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--expression", default="the red cup")
    parser.add_argument("--json")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    default_threads = torch.get_num_threads()  # what threads: 0 gives (torch's default: one per core)
    if args.shape:
        from bench_engine import build_segmenter

        segmenter = build_segmenter(args.shape, torch.float32, "cpu", Path(tempfile.mkdtemp()))
        args.expression = "the red cup"
    else:
        segmenter = Segmenter.from_pretrained(args.model)
    images = frames(4)
    for threads in thread_counts:  # warm-up: first calls allocate
        torch.set_num_threads(threads)
        timed_segment(segmenter, images[0], args.expression)

    results = {}
    for busy in (0, args.busy):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
        for process in spinners:
            process.start()
        times = {threads: [] for threads in thread_counts}
        loads = []
        try:
            time.sleep(0.5 if busy else 0.0)
            for repeat in range(args.repeats):
                order = thread_counts if repeat % 2 == 0 else thread_counts[::-1]
                for threads in order:
                    torch.set_num_threads(threads)
                    times[threads].append(timed_segment(segmenter, images[repeat % len(images)], args.expression))
                loads.append(os.getloadavg()[0])
        finally:
            stop.set()
            for process in spinners:
                process.join(timeout=5)
        for threads, values in times.items():
            key = f"busy={busy} threads={threads}"
            results[key] = {"median_ms": statistics.median(values), "p90_ms": float(np.percentile(values, 90)),
                            "min_ms": min(values), "runs": len(values)}
            print(f"{key:22} median {results[key]['median_ms']:8.1f} ms  p90 {results[key]['p90_ms']:8.1f}  "
                  f"min {results[key]['min_ms']:8.1f}")
        results[f"busy={busy} load_1min"] = statistics.median(loads)
        print(f"busy={busy}: 1-min load average {statistics.median(loads):.2f} (includes this run)")
    report = {"model": args.shape or args.model, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
              "torch_default_threads": default_threads, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
