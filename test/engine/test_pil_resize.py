"""The device-side resize gives Pillow's bicubic pixels exactly (the model's official preprocessing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mllmseg_ros.engine import pil_resize
from mllmseg_ros.engine.pil_resize import pil_bicubic_resize
from _devices import DEVICES

# (source height, width) -> (target width, height): shrinking, enlarging, one axis only, 1-pixel and odd sizes.
CASES = [
    ((720, 1280), (448, 448)), ((480, 640), (448, 448)), ((1080, 1920), (224, 224)), ((168, 224), (224, 224)),
    ((1, 1), (448, 448)), ((2, 3), (5, 7)), ((7, 5), (3, 2)), ((448, 600), (448, 448)), ((300, 448), (448, 448)),
    ((100, 1000), (448, 448)), ((1000, 100), (97, 331)), ((448, 448), (448, 448)),
]


def _pillow(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("source, target", CASES)
def test_equals_pillow_bit_for_bit(device, source, target):
    rng = np.random.default_rng(sum(source) + sum(target))
    # Noise reaches 0 and 255, where the bicubic kernel's negative lobes overshoot and the clipping matters.
    image = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    image[: source[0] // 3] = np.where(rng.random((source[0] // 3, source[1], 1)) < 0.5, 0, 255)
    resized = pil_bicubic_resize(torch.from_numpy(image).to(device), *target)
    assert resized.device.type == device and resized.dtype == torch.uint8
    assert np.array_equal(resized.cpu().numpy(), _pillow(image, *target))


def test_golden_image_and_row_chunks(golden_dir, monkeypatch):
    image = np.load(golden_dir / "inputs" / "image2_nonsquare_uint8.npy")
    expected = _pillow(image, 448, 448)
    assert np.array_equal(pil_bicubic_resize(torch.from_numpy(image), 448, 448).numpy(), expected)
    monkeypatch.setattr(pil_resize, "CHUNK_SAMPLES", 3 * image.shape[1] * 7)  # 7 rows per chunk
    assert np.array_equal(pil_bicubic_resize(torch.from_numpy(image), 448, 448).numpy(), expected)


def test_rejects_what_is_not_an_8_bit_colour_image():
    with pytest.raises(ValueError, match="uint8"):
        pil_bicubic_resize(torch.zeros(4, 4, 3), 2, 2)
    with pytest.raises(ValueError, match="uint8"):
        pil_bicubic_resize(torch.zeros(4, 4, dtype=torch.uint8), 2, 2)


def test_sizes_no_pass_order_reproduces_go_to_pillow(monkeypatch):
    monkeypatch.setattr(pil_resize, "pass_order", lambda *sizes: None)
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(pil_bicubic_resize(torch.from_numpy(image), 17, 9).numpy(), _pillow(image, 17, 9))
