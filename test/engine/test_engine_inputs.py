"""Engine input side: image checks, official preprocessing, prompt text and ids, spoken commands."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mllmseg_ros.engine import as_rgb, build_prompt_turns, normalize_command, preprocess
from mllmseg_ros.engine.preprocess import preprocess_batch
from mllmseg_ros.engine.prompt import SentencePieceChatTokenizer, load_chat_tokenizer
from _devices import DEVICES

GOLDEN_IMAGES = ["image0", "image1", "image2_nonsquare"]


@pytest.mark.parametrize("name", GOLDEN_IMAGES)
def test_preprocessing_matches_official_transform(golden_dir, name):
    image = np.load(golden_dir / "inputs" / f"{name}_uint8.npy")
    expected = np.load(golden_dir / "inputs" / f"{name}_pixel_values.npy")
    np.testing.assert_allclose(preprocess(as_rgb(image), 448).numpy(), expected, atol=1e-5, rtol=0)




@pytest.mark.parametrize("device", DEVICES)
def test_batched_preprocessing_equals_single_frames_bit_for_bit(golden_dir, device):
    """The engine's path (normalised on the model's device) gives exactly the official pixel_values' computation."""
    images = [as_rgb(np.load(golden_dir / "inputs" / f"{name}_uint8.npy")) for name in GOLDEN_IMAGES]
    batch = preprocess_batch(images, 448, torch.device(device))
    assert batch.device.type == device and batch.shape == (3, 3, 448, 448)
    assert torch.equal(batch.cpu(), torch.cat([preprocess(image, 448) for image in images]))


def test_bgr_and_gray_inputs():
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(as_rgb(rgb[:, :, ::-1], "bgr"), rgb)
    gray = rgb[:, :, 0]
    for image in (gray, gray[:, :, None]):
        out = as_rgb(image, "gray")
        assert out.shape == (5, 7, 3) and np.array_equal(out[:, :, 2], gray)


@pytest.mark.parametrize("shape", [(1, 1, 3), (4320, 7680, 3)])
def test_extreme_but_valid_sizes(shape):
    pixels = preprocess(as_rgb(np.zeros(shape, np.uint8)), 56)
    assert pixels.shape == (1, 3, 56, 56) and torch.isfinite(pixels).all()


@pytest.mark.parametrize(
    "image, color, message",
    [
        (np.zeros((4, 4, 3), np.float32), "rgb", "uint8"),
        (np.zeros((4, 4, 4), np.uint8), "rgb", "H x W x 3"),
        (np.zeros((4, 4), np.uint8), "rgb", "H x W x 3"),
        (np.zeros((4, 4, 3), np.uint8), "gray", "grayscale"),
        (np.zeros((0, 4, 3), np.uint8), "rgb", "outside"),
        (np.zeros((8193, 2, 3), np.uint8), "rgb", "outside"),
        (np.zeros((4, 4, 3), np.uint8), "hsv", "color must be"),
        ([[1, 2, 3]], "rgb", "numpy array"),
    ],
)
def test_bad_images_are_rejected(image, color, message):
    with pytest.raises(ValueError, match=message):
        as_rgb(image, color)


def _golden_prompts(golden_dir):
    return json.loads((golden_dir / "prompts" / "prompts.json").read_text())


@pytest.mark.parametrize(
    "name, expressions, answers",
    [
        ("single_the_red_cup", ["the red cup"], ["[SEG]"]),
        ("two_expressions_seg_seg", ["the red cup", "the blue plate"], ["[SEG]", "[SEG]"]),
        ("two_expressions_seg_rej", ["the red cup", "the blue plate"], ["[SEG]", "[REJ]"]),
    ],
)
def test_prompt_text_is_byte_identical(golden_dir, name, expressions, answers):
    entry = _golden_prompts(golden_dir)[name]
    turns = build_prompt_turns(expressions, 256, answers)
    assert turns.as_list() == entry["turn_strings"]
    assert "".join(turns.as_list()).encode() == (golden_dir / "prompts" / entry["prompt_file"]).read_bytes()


def test_qwen2_tokenisation_matches_official_ids(golden_dir, golden_checkpoint):
    tokenizer = load_chat_tokenizer(golden_checkpoint)
    for entry in _golden_prompts(golden_dir).values():
        ids = [i for turn in entry["turn_strings"] for i in tokenizer.encode(turn)]
        assert ids == entry["input_ids"]


def test_internlm2_tokenisation_matches_official_ids_without_remote_code(golden_dir):
    folder = golden_dir / "tokenizer-internlm2"
    tokenizer = load_chat_tokenizer(folder)
    assert isinstance(tokenizer, SentencePieceChatTokenizer)
    prompts = json.loads((folder / "prompts.json").read_text())
    cases = {
        "single_the_green_bottle": ["the green bottle"],
        "three_expressions_seg_seg_seg": ["man in white shirt", "the dog on the left", "a cup"],
    }
    for name, expressions in cases.items():
        turns = build_prompt_turns(expressions, 256, bos=tokenizer.bos_token).as_list()
        assert turns == prompts[name]["turn_strings"]
        assert [i for turn in turns for i in tokenizer.encode(turn)] == prompts[name]["input_ids"]


@pytest.mark.parametrize(
    "command, expected",
    [
        ("pick the red cup", ["the red cup"]),
        ("go to the chair near the window", ["the chair near the window"]),
        ("Grab the BLUE bowl!", ["the blue bowl"]),
        ("please pick up the mug.", ["the mug"]),
        ("the red cup; the blue bowl", ["the red cup", "the blue bowl"]),
        ("Robot, navigate to the door on the left", ["the door on the left"]),
        ("man in white shirt", ["man in white shirt"]),
    ],
)
def test_commands_become_expressions(command, expected):
    assert normalize_command(command) == expected


def test_configurable_prefixes():
    assert normalize_command("yeet the ball", prefixes=["yeet"]) == ["the ball"]
    assert normalize_command("pick the ball", prefixes=[]) == ["pick the ball"]


@pytest.mark.parametrize("command", ["", "   ", "pick up!", "the cup; ", "please"])
def test_empty_commands_are_rejected(command):
    with pytest.raises(ValueError):
        normalize_command(command)
