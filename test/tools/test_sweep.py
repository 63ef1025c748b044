"""benchmarks/sweep_demo_training.py: trains each variant in its own process and scores it on held-out scenes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ",".join(f"new_model.{size}" for size in ("image_size=56", "vision_width=32", "vision_layers=1", "llm_width=32",
                                                  "llm_layers=1")) + ",batch_size=2,data_workers=0"


def test_sweep_trains_and_scores_every_variant(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "sweep_demo_training.py"), "--out", str(tmp_path),
               "--device", "cpu", "--minutes", "5", "--scenes", "1", "--eval-threads", "1",
               "--variant", f"two:{TINY},steps=2", "--variant", f"three:{TINY},steps=3,synthetic.targets_per_sample=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)
    runs = json.loads((tmp_path / "sweep.json").read_text())["runs"]
    assert set(runs) == {"two", "three"}
    assert (runs["two"]["steps_reached"], runs["three"]["steps_reached"]) == (2, 3)
    assert runs["three"]["options"]["synthetic"]["targets_per_sample"] == 1
    for run in runs.values():
        assert run["returncode"] == 0
        assert 0.0 <= run["mIoU"] <= 1.0 and 0.0 <= run["seg_rej_accuracy"] <= 1.0
    # Each variant trained with its own options on top of the demo configuration (the rest of a section kept).
    three = yaml.safe_load((tmp_path / "three.yaml").read_text())
    assert three["synthetic"]["targets_per_sample"] == 1 and three["synthetic"]["seeds"] == [0, 1000000]
    assert three["new_model"]["llm_layers"] == 1 and three["new_model"]["decoder_ffn"] == 384
