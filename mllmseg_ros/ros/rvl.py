"""RVL, the lossless depth codec of image_transport's ``compressedDepth rvl`` (Wilson, "Fast Lossless Depth Image
Compression", 2017), in numpy.

Written here because no Python library we use offers it (OpenCV, Pillow and numpy do not; compressed_depth_image_
transport is C++ and not installable from pip). The layout, from the paper and that package:

* pixels (uint16, row-major) as alternating runs: a count of zeros, a count of non-zeros, then each non-zero pixel
  as its difference to the previous non-zero pixel (the first one to 0), zig-zag folded to a non-negative number;
* every number as variable-length nibbles: 3 value bits (least significant first) and a continuation bit (0x8);
* nibbles packed eight to a little-endian 32-bit word, the first nibble in the word's top bits; the last word is
  padded with zero nibbles.

Only the numbers' parsing into runs is a Python loop (one turn per run of zeros and non-zeros); the nibbles, the
differences and the placement are array operations.
"""
from __future__ import annotations

import numpy as np

_MAX_NIBBLES = 11  # 33 bits: more than any count of pixels or 16-bit difference needs; longer means corrupt data


def _numbers(data: bytes) -> np.ndarray:
    """The variable-length numbers in ``data`` (int64); an unterminated tail is left out."""
    words = np.frombuffer(data, "<u4", count=len(data) // 4)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)  # the first nibble sits in a word's top four bits
    nibbles = ((words[:, None] >> shifts) & 0xF).astype(np.int64).ravel()
    last = np.flatnonzero(nibbles & 0x8 == 0)  # a number's last nibble has no continuation bit
    if last.size == 0:
        return np.zeros(0, np.int64)
    nibbles = nibbles[: last[-1] + 1]
    starts = np.concatenate(([0], last[:-1] + 1))
    lengths = last - starts + 1
    if lengths.max() > _MAX_NIBBLES:
        raise ValueError(f"RVL data holds a number of {lengths.max()} nibbles (corrupt data)")
    position = np.arange(nibbles.size) - np.repeat(starts, lengths)  # nibble index within its number
    return np.add.reduceat((nibbles & 0x7) << (3 * position), starts)


def decode_rvl(data: bytes, pixels: int) -> np.ndarray:
    """``pixels`` uint16 values from RVL ``data``. ValueError when the data do not describe exactly that many."""
    numbers = _numbers(data)
    values = numbers.tolist()
    run_starts, run_lengths, value_starts = [], [], []
    index, done, count = 0, 0, len(values)
    while done < pixels:
        if index + 2 > count:
            raise ValueError(f"RVL data end after {done} of {pixels} pixels")
        zeros, nonzeros = values[index], values[index + 1]
        index += 2
        done += zeros
        if nonzeros:
            if index + nonzeros > count:
                raise ValueError(f"RVL data end inside a run, after {done} of {pixels} pixels")
            run_starts.append(done)
            run_lengths.append(nonzeros)
            value_starts.append(index)
            index += nonzeros
            done += nonzeros
        if done > pixels:
            raise ValueError(f"RVL data describe more than {pixels} pixels")
    out = np.zeros(pixels, np.uint16)
    if not run_lengths:
        return out
    lengths = np.asarray(run_lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # index within each run
    folded = numbers[np.repeat(value_starts, lengths) + offsets]
    deltas = (folded >> 1) ^ -(folded & 1)  # zig-zag back to signed
    out[np.repeat(run_starts, lengths) + offsets] = np.cumsum(deltas) & 0xFFFF  # uint16 arithmetic wraps
    return out


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zeros, non-zeros, index of the first non-zero) of each zeros-then-non-zeros run pair, as the encoder walks."""
    nonzero = flat != 0
    change = np.flatnonzero(np.diff(nonzero.astype(np.int8))) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    kinds = nonzero[bounds[:-1]]
    sizes = np.diff(bounds)
    zeros, nonzeros, firsts = [], [], []
    position, i = 0, 0
    while position < flat.size:  # one zero run (maybe empty) then one non-zero run (maybe empty)
        z = int(sizes[i]) if not kinds[i] else 0
        i += 1 if not kinds[i] else 0
        k = int(sizes[i]) if i < len(kinds) and kinds[i] else 0
        i += 1 if k else 0
        zeros.append(z)
        nonzeros.append(k)
        firsts.append(position + z)
        position += z + k
    return np.asarray(zeros), np.asarray(nonzeros), np.asarray(firsts)


def encode_rvl(depth: np.ndarray) -> bytes:
    """uint16 pixels (any shape, row-major) -> RVL data, as compressed_depth_image_transport writes them."""
    flat = np.ascontiguousarray(depth, np.uint16).ravel()
    zeros, nonzeros, firsts = _runs(flat)
    values = flat[flat != 0].astype(np.int64)
    deltas = np.diff(values, prepend=0)
    folded = (deltas << 1) ^ (deltas >> 63)  # zig-zag: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...
    # The numbers in stream order: per run pair, zeros, non-zeros, then that run's folded differences.
    per_pair = 2 + nonzeros
    numbers = np.zeros(int(per_pair.sum()), np.int64)
    pair_at = np.cumsum(per_pair) - per_pair
    numbers[pair_at] = zeros
    numbers[pair_at + 1] = nonzeros
    value_slots = np.ones(numbers.size, bool)
    value_slots[pair_at] = value_slots[pair_at + 1] = False
    numbers[value_slots] = folded
    # Each number as nibbles, least significant three bits first, all but the last with the continuation bit.
    bits = np.floor(np.log2(np.maximum(numbers, 1))).astype(np.int64) + 1
    widths = (bits + 2) // 3
    owner = np.repeat(np.arange(numbers.size), widths)
    position = np.arange(owner.size) - np.repeat(np.cumsum(widths) - widths, widths)
    nibbles = (numbers[owner] >> (3 * position)) & 0x7
    nibbles |= np.where(position < widths[owner] - 1, 0x8, 0)
    nibbles = np.concatenate((nibbles, np.zeros(-nibbles.size % 8, np.int64))).reshape(-1, 8)
    words = (nibbles << np.arange(28, -1, -4)).sum(axis=1).astype("<u4")
    return words.tobytes()
