"""Pillow's bicubic resize of 8-bit images, computed with torch on any device and equal to Pillow's pixels bit for bit.

The model was trained and evaluated on frames resized by ``PIL.Image.resize(..., BICUBIC)``. On a GPU machine that
resize ran on the host (12 ms for a 1280 x 720 frame on the H100 machine's CPU) while the GPU waited. No library
offers Pillow's exact result on a GPU: torch's ``interpolate(mode="bicubic", antialias=True)`` uses the same kernel
but in floating point, without Pillow's fixed-point weights and its rounding to 8 bits between the two passes, so
pixels differ by one here and there. Hence this module, which follows Pillow's algorithm (``libImaging/Resample.c``):

1. For each axis, every output pixel gets the weights of a bicubic kernel (a = -0.5) widened by the shrink factor,
   normalised to sum to 1 and rounded to integers of ``PRECISION_BITS`` fractional bits.
2. Two passes, one per axis; each adds half a unit, shifts the fixed point away and clips to 0..255.

Which axis goes first changes some pixels, and Pillow's choice depends on its version and on the sizes (the version
installed here does not always start with the horizontal pass, as older ones did). ``pass_order`` therefore asks the
installed Pillow once per (source size, target size): it resizes a probe image and keeps the order that reproduces
it; for sizes where neither does, ``pil_bicubic_resize`` hands the frame to Pillow itself.

Each pass is a matrix product in float64 with those integer weights. Every product and partial sum is an integer
below 2^36, which float64 holds exactly in any summation order, so the result equals Pillow's integer arithmetic.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images: 8 bits of result, 2 of headroom
BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5
# The horizontal pass converts source rows to float64 (8 bytes per sample) in chunks of at most this many samples, so
# an 8K frame needs 64 MB of scratch memory at a time rather than 800 MB (a 720p frame is one chunk).
CHUNK_SAMPLES = 1 << 23


def _bicubic(x: np.ndarray) -> np.ndarray:
    # Pillow's bicubic_filter, operation for operation (float64), so the weights round the same way.
    x = np.abs(x)
    a = BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=32)
def pil_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """out_size x in_size float64 matrix of Pillow's fixed-point weights (integers) for one axis."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filter_scale
    taps = int(np.ceil(support)) * 2 + 1
    centres = (np.arange(out_size) + 0.5) * scale
    # C's (int) cast truncates toward zero; the first tap is then clamped to the image.
    first = np.maximum(np.trunc(centres - support + 0.5).astype(np.int64), 0)
    last = np.minimum(np.trunc(centres + support + 0.5).astype(np.int64), in_size)
    count = last - first
    offsets = np.arange(taps)
    used = offsets[None, :] < count[:, None]  # out x taps
    raw = np.where(used, _bicubic(((first[:, None] + offsets[None, :]) - centres[:, None] + 0.5) * (1.0 / filter_scale)), 0.0)
    total = np.zeros(out_size)
    for tap in range(taps):  # sequential sum, as Pillow's loop (numpy's pairwise sum rounds differently)
        total = total + raw[:, tap]
    normalised = np.where(total[:, None] != 0.0, raw / np.where(total == 0.0, 1.0, total)[:, None], raw)
    fixed = normalised * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(fixed < 0, fixed - 0.5, fixed + 0.5))
    weights = np.zeros((out_size, in_size))
    rows = np.repeat(np.arange(out_size), taps)
    columns = (first[:, None] + offsets[None, :]).reshape(-1)
    keep = used.reshape(-1)
    weights[rows[keep], columns[keep]] = fixed.reshape(-1)[keep]
    return weights


@functools.lru_cache(maxsize=32)
def _weights_on(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(pil_bicubic_weights(in_size, out_size)).to(device)


def _to_8bit(sums: torch.Tensor) -> torch.Tensor:
    """Fixed-point sums -> 0..255: add half a unit, drop the fraction (floor, as C's arithmetic shift), clip."""
    half = float(1 << (PRECISION_BITS - 1))
    return torch.floor((sums + half) / float(1 << PRECISION_BITS)).clamp_(0.0, 255.0)


def _two_passes(image: torch.Tensor, width: int, height: int, vertical_first: bool) -> torch.Tensor:
    """H x W x C uint8 -> height x width x C uint8, the axes resampled in the given order."""
    in_height, in_width, channels = image.shape
    planes = image.permute(2, 0, 1)  # C x H x W, still uint8

    def horizontal(planes: torch.Tensor) -> torch.Tensor:
        weights = _weights_on(planes.shape[2], width, image.device).T  # W x width
        rows = max(1, CHUNK_SAMPLES // (channels * planes.shape[2]))
        return torch.cat([_to_8bit(planes[:, top: top + rows].to(torch.float64) @ weights)
                          for top in range(0, planes.shape[1], rows)], dim=1)  # C x rows x width

    def vertical(planes: torch.Tensor) -> torch.Tensor:
        return _to_8bit(_weights_on(planes.shape[1], height, image.device) @ planes.to(torch.float64))

    passes = [(width != in_width, horizontal), (height != in_height, vertical)]  # Pillow skips an axis of equal size
    for needed, resample in (passes[::-1] if vertical_first else passes):
        if needed:
            planes = resample(planes)
    return planes.to(torch.uint8).permute(1, 2, 0).contiguous()


def _pillow(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


@functools.lru_cache(maxsize=64)
def pass_order(in_height: int, in_width: int, width: int, height: int) -> bool | None:
    """True: the installed Pillow resamples this size change vertical axis first; False: horizontal first; None:
    neither order reproduces it. Found once per size from a probe image: noise whose upper half is black or white
    (where the kernel's negative lobes overshoot and clipping between the passes shows)."""
    rng = np.random.default_rng(0)
    probe = rng.integers(0, 256, (in_height, in_width, 3), dtype=np.uint8)
    top = in_height // 2
    probe[:top] = np.where(rng.random((top, in_width, 1)) < 0.5, 0, 255)
    expected = _pillow(probe, width, height)
    for vertical_first in (False, True):
        if np.array_equal(_two_passes(torch.from_numpy(probe), width, height, vertical_first).numpy(), expected):
            return vertical_first
    return None


def pil_bicubic_resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """H x W x 3 uint8 tensor (any device) -> height x width x 3 uint8 on the same device, equal to
    ``PIL.Image.fromarray(image).resize((width, height), Image.BICUBIC)``."""
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected an H x W x C uint8 tensor, got {tuple(image.shape)} {image.dtype}")
    in_height, in_width = image.shape[:2]
    order = pass_order(in_height, in_width, width, height)
    if order is None:
        return torch.from_numpy(_pillow(image.cpu().numpy(), width, height).copy()).to(image.device)
    return _two_passes(image, width, height, order)
