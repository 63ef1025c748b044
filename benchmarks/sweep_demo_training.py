#!/usr/bin/env python3
"""Several demo-model trainings side by side on one GPU, each then scored on held-out scenes.

    python3 benchmarks/sweep_demo_training.py --out out/sweep --minutes 7 \
        --variant b8:batch_size=8,steps=9000 --variant b4:batch_size=4,steps=16500 \
        --variant llm6:new_model.llm_layers=6,synthetic.targets_per_sample=2

Every variant is the demo configuration (``models/mllmseg_demo.train.yaml``) with the listed options replaced, trained
by ``mllmseg-ros train`` in its own process on ``--device``, stopped after ``--minutes`` at the latest (a run cut short
is saved where it stands and reported with the step it reached). The demo model itself is trained on 2 CPU cores in an
hour; a GPU only makes the comparison of settings affordable, so give each variant the step count its settings reach
in that hour on the CPU. Writes ``<out>/sweep.json``: per variant, the options, steps reached, training speed and the
held-out scores of ``benchmarks/bench_demo_model.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "models" / "mllmseg_demo.train.yaml"


def parse_variant(text: str) -> tuple[str, dict]:
    """"name:key=value,section.key=value" -> (name, {key: value, section: {key: value}}), values parsed as YAML
    (``synthetic.targets_per_sample=1``, ``new_model.llm_layers=6``: options of the config's sections)."""
    name, _, options = text.partition(":")
    overrides: dict = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        *sections, leaf = key.strip().split(".")
        target = overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = yaml.safe_load(value)
    return name, overrides


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` replacing its values, section by section."""
    result = dict(base)
    for key, value in overrides.items():
        result[key] = merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return result


def steps_reached(run_dir: Path) -> int:
    """The step of the run's last checkpoint, which the training saves on finishing or on hitting ``max_minutes``."""
    import torch

    state = run_dir / "checkpoint-last" / "training_state.pt"
    return int(torch.load(state, map_location="cpu", weights_only=True)["step"]) if state.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="name:key=value,... (TrainConfig options; section.key for synthetic/new_model)")
    parser.add_argument("--out", default="out/sweep")
    parser.add_argument("--minutes", type=float, default=7.0, help="wall-clock cap of every training")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data-workers", type=int, default=2, help="scene-rendering processes per training")
    parser.add_argument("--scenes", type=int, default=100, help="held-out scenes per variant")
    parser.add_argument("--eval-threads", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(BASE_CONFIG.read_text())
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    runs = {}
    for text in args.variant:
        name, overrides = parse_variant(text)
        run_options = {"device": args.device, "threads": 1, "data_workers": args.data_workers,
                       "max_minutes": args.minutes, "save_every": 100_000}
        config = {**merged({**base, **run_options}, overrides), "out": str(out / name)}
        config_path = out / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        log = open(out / f"{name}.log", "w")
        command = [sys.executable, "-m", "mllmseg_ros.tools.cli", "train", "--config", str(config_path)]
        runs[name] = {"options": overrides, "config": config, "started": time.monotonic(), "log": log,
                      "process": subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)}
    for name, run in runs.items():
        run["returncode"] = run["process"].wait()
        run["seconds"] = time.monotonic() - run["started"]
        run["log"].close()
    evaluations = {}
    for name, run in runs.items():
        model = out / name / "model"
        if run["returncode"] == 0 and model.is_dir():
            command = [sys.executable, str(ROOT / "benchmarks" / "bench_demo_model.py"), "--model", str(model),
                       "--scenes", str(args.scenes), "--threads", str(args.eval_threads), "--json", str(out / f"{name}.eval.json")]
            evaluations[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    report = {}
    for name, run in runs.items():
        log = (out / f"{name}.log").read_text(errors="replace")
        steps = steps_reached(out / name)
        entry = {"options": run["options"], "returncode": run["returncode"], "steps_reached": steps,
                 "steps_planned": run["config"]["steps"], "train_seconds": round(run["seconds"], 1),
                 "steps_per_second": round(steps / max(run["seconds"], 1e-9), 2), "log_tail": log[-400:]}
        if name in evaluations and evaluations[name].wait() == 0:
            scores = json.loads((out / f"{name}.eval.json").read_text())
            entry.update({k: scores[k] for k in ("mIoU", "seg_rej_accuracy", "centroid_within_10px",
                                                 "largest_part_centroid_within_10px", "mIoU_by_kind")})
        report[name] = entry
        print(f"{name:12} steps {steps}/{run['config']['steps']} in {run['seconds']:.0f} s"
              + (f"  mIoU {entry['mIoU']:.3f}  seg/rej {entry['seg_rej_accuracy']:.3f}  "
                 f"centroid {entry['centroid_within_10px']:.3f}" if "mIoU" in entry else "  (no scores)"))
    (out / "sweep.json").write_text(json.dumps({"device": args.device, "minutes": args.minutes, "runs": report}, indent=2))


if __name__ == "__main__":
    main()
