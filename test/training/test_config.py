"""TrainConfig: nested sections from files, clear errors for unknown and misplaced options, and the
``mllmseg-ros train`` flags on top of a file."""
from __future__ import annotations

import json

import pytest
import yaml

from mllmseg_ros.data.datasets import SyntheticDataConfig
from mllmseg_ros.tools.cli import main
from mllmseg_ros.training import NewModelSizes, TrainConfig


def test_sections_are_read_from_a_file_and_written_back(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"steps": 7, "synthetic": {"seeds": [5, 9], "scene_size": [96, 72]},
                                    "new_model": {"llm_layers": 3}}))
    cfg = TrainConfig.from_file(path, batch_size=2)
    assert (cfg.steps, cfg.batch_size) == (7, 2)
    assert cfg.synthetic == SyntheticDataConfig(seeds=(5, 9), scene_size=(96, 72))
    assert cfg.new_model == NewModelSizes(llm_layers=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg


def test_unknown_and_misplaced_options_are_rejected_by_name():
    with pytest.raises(ValueError, match=r"unknown training options: \['stepz'\]"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match=r"unknown training options: \['independent_questions'\]$"):
        TrainConfig.from_dict({"independent_questions": True})
    with pytest.raises(ValueError, match=r"now under synthetic: \['absent_fraction'\]"):
        TrainConfig.from_dict({"absent_fraction": 0.5})
    with pytest.raises(ValueError, match=r"now under new_model: \['llm_layers'\]"):
        TrainConfig.from_dict({"llm_layers": 6})
    with pytest.raises(ValueError, match=r"unknown synthetic options: \['varied_questions'\]$"):
        TrainConfig.from_dict({"synthetic": {"varied_questions": True}})
    with pytest.raises(ValueError, match="llm must be"):
        TrainConfig(llm="half")
    with pytest.raises(ValueError, match="stop > start"):
        SyntheticDataConfig(seeds=(10, 10))


def test_train_command_flags_override_the_config_file(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "steps": 50, "batch_size": 4, "synthetic": {"seeds": [0, 4], "scene_size": [96, 72]},
        "new_model": {"image_size": 56, "vision_width": 32, "vision_layers": 1, "llm_width": 32, "llm_layers": 1,
                      "vocab_size": 400},
    }))
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--steps", "2", "--batch-size", "1",
                 "--lr", "0.001", "--freeze-vit", "--threads", "1", "--data-workers", "0"]) == 0
    assert str(out / "model") in capsys.readouterr().out
    saved = json.loads((out / "model" / "training_config.json").read_text())
    assert (saved["steps"], saved["batch_size"], saved["lr"], saved["freeze_vit"]) == (2, 1, 0.001, True)
    assert saved["synthetic"]["seeds"] == [0, 4] and saved["new_model"]["llm_layers"] == 1
