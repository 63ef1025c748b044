"""``mllmseg-ros demo``: the whole image-and-words-to-mask path on a generated tabletop scene.

Until the project ships its trained demo model, this runs a small RANDOMLY INITIALISED model in the official
checkpoint layout: it proves that loading, tokenisation, caching, decoding and the outputs work, not that the masks
are right.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from .checkpoint_builder import random_checkpoint

DEMO_COMMAND = "Pick up the red cup; the blue bowl"
CORPUS = ["the red cup", "the blue bowl", "the green box", "the yellow ball", "pick up", "left", "right", "next to"]


def demo_scene(height: int = 480, width: int = 640) -> np.ndarray:
    """A simple RGB tabletop: wooden table, a red cup, a blue bowl and a green box."""
    scene = np.full((height, width, 3), (200, 200, 205), np.uint8)
    cv2.rectangle(scene, (0, height // 3), (width, height), (160, 120, 80), -1)
    cv2.rectangle(scene, (120, 250), (190, 350), (210, 30, 30), -1)  # red cup
    cv2.ellipse(scene, (360, 330), (80, 40), 0, 0, 360, (30, 60, 200), -1)  # blue bowl
    cv2.rectangle(scene, (480, 240), (580, 330), (40, 160, 60), -1)  # green box
    return scene


def run_demo(out_dir: Path) -> int:
    from ..engine import Segmenter
    from .cli import format_table, write_outputs

    model_dir = out_dir / "random-model"
    if not (model_dir / "model.safetensors").is_file():
        random_checkpoint(model_dir, CORPUS)
    segmenter = Segmenter.from_pretrained(model_dir)
    scene = demo_scene()
    start = time.perf_counter()
    results = segmenter.segment_command(scene, DEMO_COMMAND)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    segmenter.segment(scene, ["the green box"])
    warm = time.perf_counter() - start
    print(f'command: "{DEMO_COMMAND}" -> expressions {[r.expression for r in results]}')
    print(format_table(results))
    for path in write_outputs(out_dir, scene, results):
        print(f"wrote {path}")
    print(f"first query {cold * 1000:.0f} ms (encodes the frame), next query on the same frame {warm * 1000:.0f} ms")
    print("note: this model has random weights (pipeline check); its masks are not meaningful.")
    return 0
