"""The ``mllmseg-ros`` command line: outputs on the golden checkpoint, one-line errors, the demo."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mllmseg_ros.tools.cli import main


@pytest.fixture()
def image_file(golden_dir, tmp_path):
    path = tmp_path / "scene.png"
    rgb = np.load(golden_dir / "inputs" / "image2_nonsquare_uint8.npy")
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_segment_writes_masks_overlay_and_json(golden_checkpoint, image_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", "--model", str(golden_checkpoint), str(image_file), "man in white shirt", "a dog", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["expression"] for r in report["results"]] == ["man in white shirt", "a dog"]
    first = report["results"][0]
    mask = cv2.imread(str(out / "mask_0_man_in_white_shirt.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (480, 640) and set(np.unique(mask)) <= {0, 255}
    assert int((mask == 255).sum()) == first["area"]
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape == (480, 640, 3)


def test_segment_table_and_spoken_command(golden_checkpoint, image_file, capsys):
    assert main(["segment", "--model", str(golden_checkpoint), str(image_file), "Grab the man in white shirt!", "--command"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["expression", "found", "conf"]
    assert table[1].startswith("the man in white shirt")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/model", "IMAGE", "a cup"], "model folder not found"),
        (["--model", "MODEL", "/nonexistent.png", "a cup"], "cannot read image"),
        (["--model", "MODEL", "IMAGE", "  "], "empty referring expression"),
    ],
)
def test_errors_are_one_line_and_non_zero(golden_checkpoint, image_file, capsys, args, message):
    args = [str(golden_checkpoint) if a == "MODEL" else str(image_file) if a == "IMAGE" else a for a in args]
    assert main(["segment", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_corrupt_checkpoint_is_a_one_line_error(golden_checkpoint, image_file, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in golden_checkpoint.iterdir():
        if item.suffix != ".safetensors":
            (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    assert main(["segment", "--model", str(broken), str(image_file), "a cup"]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_convert_pickle_checkpoint_to_safetensors(golden_checkpoint, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for item in golden_checkpoint.iterdir():
        if item.suffix != ".safetensors":
            (pickled / item.name).write_bytes(item.read_bytes())
    state = load_file(str(golden_checkpoint / "model.safetensors"))
    torch.save(state, pickled / "pytorch_model.bin")
    assert main(["convert", str(pickled), str(tmp_path / "converted")]) == 2  # refuses without --allow-pickle
    assert main(["convert", str(pickled), str(tmp_path / "converted"), "--allow-pickle"]) == 0
    converted = load_file(str(tmp_path / "converted" / "model.safetensors"))
    assert converted.keys() == state.keys() and all(torch.equal(converted[k], state[k]) for k in state)
    assert (tmp_path / "converted" / "config.json").is_file()
