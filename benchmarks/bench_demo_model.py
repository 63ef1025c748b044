#!/usr/bin/env python3
"""Quality of the demo model (or any checkpoint) on freshly generated held-out synthetic scenes.

    .venv/bin/python benchmarks/bench_demo_model.py --scenes 200 [--model models/mllmseg_demo] [--json out.json]

Targets for the shipped demo model: mIoU >= 0.80 on present targets, [SEG]/[REJ] accuracy >= 0.90, centroid within
10 px on >= 90% of present targets.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mllmseg_ros.engine import Segmenter  # noqa: E402
from mllmseg_ros.tools.demo import DEMO_MODEL  # noqa: E402
from mllmseg_ros.tools.scene_eval import HELD_OUT_START, evaluate_scenes  # noqa: E402

TARGETS = {"mIoU": 0.80, "seg_rej_accuracy": 0.90, "centroid_within_10px": 0.90}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--start", type=int, default=HELD_OUT_START)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    segmenter = Segmenter.from_pretrained(args.model, threads=args.threads)
    started = time.perf_counter()
    summary = evaluate_scenes(segmenter, args.scenes, args.start).summary()
    summary["seconds"] = time.perf_counter() - started
    for key, target in TARGETS.items():
        print(f"{key:22} {summary[key]:.3f}  (target >= {target}: {'met' if summary[key] >= target else 'NOT met'})")
    print(f"{'':22} {summary['largest_part_centroid_within_10px']:.3f}  centroid of the mask's largest connected part "
          "within 10 px (the node's centroid_of_largest_component)")
    print(f"{summary['present_targets']} present / {summary['all_targets']} targets in {args.scenes} scenes, "
          f"{summary['seconds']:.0f} s; mIoU by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["mIoU_by_kind"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "scenes": args.scenes, "start": args.start, **summary}, indent=2))


if __name__ == "__main__":
    main()
