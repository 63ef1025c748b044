"""The shipped demo model: its files are the ones the manifest names, it reaches a quality floor on held-out scenes,
and the one-command demo runs end to end."""
from __future__ import annotations

import hashlib
import json


from mllmseg_ros.engine import Segmenter
from mllmseg_ros.tools.cli import main
from mllmseg_ros.tools.demo import DEMO_MODEL
from mllmseg_ros.tools.scene_eval import evaluate_scenes

MANIFEST = DEMO_MODEL / "MANIFEST.json"
# The shipped model is an interim one (MANIFEST.json "status"): measured mIoU 0.58 on these 50 held-out scenes (0.57
# on 100), against 0.52 for the previous shipped model and 0.02 for random weights. This floor guards that level; the
# issue's goal (0.70 here, 0.80 in the benchmark) is not reached yet.
MIOU_FLOOR = 0.54


def test_shipped_files_match_the_manifest():
    manifest = json.loads(MANIFEST.read_text())
    for name, entry in manifest["files"].items():
        data = (DEMO_MODEL / name).read_bytes()
        assert len(data) == entry["bytes"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    assert sum(e["bytes"] for e in manifest["files"].values()) <= 25 * 2**20
    assert "mllmseg-ros train --config models/mllmseg_demo.train.yaml" in manifest["command"]


def test_shipped_model_quality_floor_on_held_out_scenes():
    segmenter = Segmenter.from_pretrained(DEMO_MODEL)
    summary = evaluate_scenes(segmenter, scenes=50).summary()
    print(f"\n50 held-out scenes: {summary}")
    assert summary["mIoU"] >= MIOU_FLOOR


def test_demo_command_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--scenes", "3"]) == 0
    output = capsys.readouterr().out
    assert "mean IoU" in output and "ros2 bag play" in output
    assert (tmp_path / "demo_bag" / "metadata.yaml").is_file()
    assert len(list((tmp_path / "overlays").glob("*.png"))) >= 1
    assert (tmp_path / "demo.gif").is_file()
    # the moving-camera part: a model held back 1 s per answer, tracked results for the frames in between
    assert "tracked between model answers" in output
    [model], [tracked] = (json.loads((tmp_path / "scores.json").read_text())["moving_camera"][source]
                          for source in ("model", "tracked"))
    assert model["command"] == tracked["command"] and model["frames"] == tracked["frames"] == 60
    assert 2 <= model["answered"] <= 8  # 4 s of frames, an answer about every second
    # the model runs on the CPU: at most 7.5 tracked frames a second (every 2nd of 15 fps), plus each fresh answer
    assert 20 <= tracked["answered"] <= 7.5 * 4 + model["answered"] + 1
    assert tracked["found_accuracy"] >= 0.9
    assert tracked["mean_iou"] >= 0.85 * model["mean_iou"]  # the tracking target, on this one sequence
