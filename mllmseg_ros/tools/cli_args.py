"""Checks of the ``mllmseg-ros`` arguments that argparse alone does not make: ranges, the device, output folders.

They run before a model is loaded, so a bad argument costs a second and prints one line (exit code 2).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def _ranged(kind: type, minimum: float | None = None, maximum: float | None = None, above: float | None = None):
    """An argparse ``type``: ``kind(text)`` within [minimum, maximum] (and > ``above``), else a usage error (exit 2)."""
    bounds = " and ".join(
        part for part in (f">= {minimum}" if minimum is not None else "", f"<= {maximum}" if maximum is not None else "",
                          f"> {above}" if above is not None else "") if part)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        # Written as "not (inside)" so that NaN, which compares False with everything, is refused too.
        inside = math.isfinite(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum) \
            and (above is None or value > above)
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


FRACTION = _ranged(float, 0.0, 1.0)  # a probability threshold
NON_NEGATIVE_INT = _ranged(int, 0)  # threads (0 = torch's default), data workers (0 = none)
COUNT = _ranged(int, 1)
NON_NEGATIVE = _ranged(float, 0.0)
POSITIVE = _ranged(float, above=0.0)


def check_device(device: str) -> None:
    """Refuse, before any model is loaded, a device string torch does not parse or a CUDA device that is not there."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"--device {device!r}: {exc}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a build without CUDA"
            raise UserError(f"--device {device}: CUDA is not available (torch {torch.__version__}, {build}); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


def make_out_dir(path: str | Path) -> Path:
    """Create an output folder up front, so a bad --out fails in a second rather than after the model ran."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
    return folder
