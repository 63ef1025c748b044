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
    assert table[0].split()[:3] == ["expression", "found", "P(found)"]
    assert table[1].startswith("the man in white shirt")


def test_not_found_after_seg_prints_a_low_confidence(golden_checkpoint, image_file, capsys, monkeypatch):
    """A [SEG] whose mask comes out empty: 'found no' with P(found) below 0.5, in the table and the JSON (both
    printed 1.000 before: the probability of the answer given, not of the target found)."""
    from mllmseg_ros.model import MLLMSegModel

    decode = MLLMSegModel.decode_masks
    monkeypatch.setattr(MLLMSegModel, "decode_masks", lambda self, *args: decode(self, *args) * 0.0 - 3.0)
    assert main(["segment", "--model", str(golden_checkpoint), str(image_file), "man in white shirt", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["decision"] == "SEG" and not result["found"] and result["seg_probability"] > 0.5
    assert result["confidence"] == pytest.approx(0.0474, abs=1e-3)
    assert main(["segment", "--model", str(golden_checkpoint), str(image_file), "man in white shirt"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[4:6] == ["no", "0.047"]


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


def test_uncreatable_out_folder_is_a_one_line_error(golden_checkpoint, image_file, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["segment", "--model", str(golden_checkpoint), str(image_file), "a dog", "--out", str(blocker / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "cannot create output folder" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("device, message", [("cuda", "CUDA is not available"), ("gpu", "--device 'gpu'")])
def test_unusable_device_is_a_one_line_error(golden_checkpoint, image_file, monkeypatch, capsys, device, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    assert main(["segment", "--model", str(golden_checkpoint), str(image_file), "a dog", "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, option",
    [
        (["segment", "--model", "M", "I", "a cup", "--threshold", "5"], "--threshold"),
        (["segment", "--model", "M", "I", "a cup", "--threshold", "-0.1"], "--threshold"),
        (["segment", "--model", "M", "I", "a cup", "--threshold", "nan"], "--threshold"),
        (["segment", "--model", "M", "I", "a cup", "--threads", "-1"], "--threads"),
        (["bag-eval", "B", "--model", "M", "--threshold", "1.5"], "--threshold"),
        (["bag-eval", "B", "--model", "M", "--rate", "0"], "--rate"),
        (["play", "B", "--rate", "-2"], "--rate"),
        (["play", "B", "--wait-for-subscribers", "-1"], "--wait-for-subscribers"),
        (["record", "O", "--topic", "/a", "std_msgs/msg/String", "--duration", "0"], "--duration"),
        (["record", "O", "--topic", "/a", "std_msgs/msg/String", "--max-messages", "0"], "--max-messages"),
        (["demo", "--scenes", "0"], "--scenes"),
        (["eval", "--model", "M", "--data", "D", "--dataset", "refcoco", "--split", "val", "--limit", "0"], "--limit"),
        (["train", "--steps", "0"], "--steps"),
        (["train", "--batch-size", "-4"], "--batch-size"),
        (["train", "--lr", "0"], "--lr"),
        (["train", "--data-workers", "-1"], "--data-workers"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(argv, option, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err.splitlines()[-1]


def test_range_limits_themselves_are_accepted():
    from mllmseg_ros.tools.cli import build_parser

    args = build_parser().parse_args(["segment", "--model", "M", "I", "a cup", "--threshold", "1", "--threads", "0"])
    assert args.threshold == 1.0 and args.threads == 0
    assert build_parser().parse_args(["segment", "--model", "M", "I", "a cup", "--threshold", "0"]).threshold == 0.0


def test_segment_with_the_demo_model_says_what_it_is(image_file, capsys):
    """The demo model, met on a user's own photo: one line on stderr says it knows synthetic scenes only."""
    from mllmseg_ros.tools.demo import DEMO_MODEL

    assert main(["segment", "--model", str(DEMO_MODEL), str(image_file), "the cup", "--json"]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "trained on synthetic tabletop scenes only" in line]
    assert len(notes) == 1 and notes[0].startswith("mllmseg-ros: note: mllmseg_demo:")
    json.loads(captured.out)  # the note stays out of the JSON
