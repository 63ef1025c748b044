"""Depth images in image_transport's ``compressedDepth`` transport (compressed_depth_image_transport), both ways.

What the transport puts in a sensor_msgs/CompressedImage:

* ``format``: the raw image's encoding, then ``; compressedDepth`` (Humble, Iron: always PNG) or
  ``; compressedDepth png`` / ``; compressedDepth rvl`` (Jazzy and later), e.g. ``"16UC1; compressedDepth png"``;
* ``data``: a 12-byte header (int32 format, 0 for inverse depth; two float32 quantisation parameters A and B), then a
  PNG, or for RVL the width and height (uint32) and the RVL stream (ros/rvl.py). All little-endian.
* 16UC1 (and mono16): the raw values as a 16-bit grey PNG; values beyond the publisher's ``depth_max`` are sent as 0.
* 32FC1 (metres): quantised inverse depth, ``q = A / depth + B`` as uint16 (0 = no measurement), read back as
  ``depth = A / (q - B)``, where ``A = z0 (z0 + 1)`` and ``B = 1 - A / depth_max`` for the publisher's
  ``depth_quantization`` z0 and ``depth_max``.

The header of the compressed message is the raw image's, so decoded depth pairs with colour by stamp like raw depth.
Sizes are checked before any pixel is decoded (a few hundred bytes of PNG or RVL can declare gigabytes of pixels).
"""
from __future__ import annotations

import struct

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..engine.preprocess import check_image_size
from .conversions import decode_checked
from .rvl import decode_rvl, encode_rvl

HEADER = struct.Struct("<iff")  # ConfigHeader: compression format (0 = inverse depth), depthParam[2]
INVERSE_DEPTH = 0
SIZE = struct.Struct("<II")  # RVL payload: columns, rows
ENCODINGS_16 = ("16UC1", "mono16")
ENCODINGS = (*ENCODINGS_16, "32FC1")
CODECS = ("png", "rvl")
# The publisher's defaults (compressed_depth_image_transport's parameters depth_max, depth_quantization, png_level)
DEPTH_MAX_M = 10.0
DEPTH_QUANTIZATION = 100.0
PNG_LEVEL = 3


def split_format(text: str) -> tuple[str, str]:
    """(raw encoding, codec) of a compressedDepth ``format``; ValueError for another transport's message."""
    encoding, _, transport = text.partition(";")
    encoding, words = encoding.strip(), transport.split()
    if not words:  # the oldest publishers wrote the encoding alone
        codec = "png"
    elif words[0] != "compressedDepth":
        raise ValueError(f"format {text!r} is not image_transport's compressedDepth (is the topic .../compressedDepth?)")
    else:
        codec = words[1] if len(words) > 1 else "png"
    if codec not in CODECS:
        raise ValueError(f"compressedDepth codec {codec!r} in format {text!r} is not supported (png, rvl)")
    if encoding not in ENCODINGS:
        raise ValueError(f"compressedDepth of encoding {encoding!r} (format {text!r}); expected one of {ENCODINGS}")
    return encoding, codec


def _decode_png(payload: bytes) -> np.ndarray:
    pixels = decode_checked(payload, cv2.IMREAD_UNCHANGED, "the PNG of a compressedDepth image")
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"compressedDepth PNG holds {pixels.dtype} x {pixels.shape[2:] or 1} channel(s), expected "
                         "16-bit grey")
    return pixels


def _decode_rvl(payload: bytes) -> np.ndarray:
    if len(payload) < SIZE.size:
        raise ValueError(f"compressedDepth RVL data of {len(payload)} bytes hold no image size")
    width, height = SIZE.unpack_from(payload)
    if width == 0 or height == 0:
        raise ValueError(f"compressedDepth RVL image of {width}x{height} pixels")
    check_image_size(width, height)
    return decode_rvl(payload[SIZE.size:], width * height).reshape(height, width)


def decode_compressed_depth(msg: CompressedImage) -> Image:
    """A compressedDepth message -> the raw depth Image it was made from (16UC1 / mono16 values, or 32FC1 metres
    with NaN where the publisher had no measurement), with the message's header. ValueError when it is not one."""
    encoding, codec = split_format(msg.format)
    data = bytes(msg.data)
    if len(data) <= HEADER.size:
        raise ValueError(f"compressedDepth message of {len(data)} bytes: no image after the {HEADER.size}-byte header")
    kind, quant_a, quant_b = HEADER.unpack_from(data)
    payload = data[HEADER.size:]
    quantised = _decode_png(payload) if codec == "png" else _decode_rvl(payload)
    height, width = quantised.shape
    if encoding == "32FC1":
        if kind != INVERSE_DEPTH or not np.isfinite([quant_a, quant_b]).all() or quant_a <= 0:
            raise ValueError(f"compressedDepth 32FC1 header (format {kind}, A {quant_a}, B {quant_b}) is not an "
                             "inverse-depth quantisation")
        with np.errstate(divide="ignore"):
            depth = np.float32(quant_a) / (quantised.astype(np.float32) - np.float32(quant_b))
        depth[quantised == 0] = np.nan
        pixels, step = depth, width * 4
    else:
        pixels, step = quantised, width * 2
    image = Image(header=msg.header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    image.data = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    return image


def encode_compressed_depth(depth: np.ndarray, encoding: str, header=None, codec: str = "png",
                            depth_max: float = DEPTH_MAX_M, depth_quantization: float = DEPTH_QUANTIZATION,
                            png_level: int = PNG_LEVEL) -> CompressedImage:
    """H x W depth (uint16 for 16UC1/mono16, float32 metres for 32FC1) -> a compressedDepth message as a Jazzy
    publisher with these parameters sends it (format ``"<encoding>; compressedDepth <codec>"``). For a robot-side
    stand-in, tests and the link budget; a camera driver's image_transport does this on a robot."""
    if encoding not in ENCODINGS or codec not in CODECS:
        raise ValueError(f"encoding must be one of {ENCODINGS} and codec one of {CODECS}")
    quant_a = quant_b = 0.0
    if encoding == "32FC1":
        quant_a = depth_quantization * (depth_quantization + 1.0)
        quant_b = 1.0 - quant_a / depth_max
        metres = np.asarray(depth, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.float32(quant_a) / metres + np.float32(quant_b)
        # No measurement (NaN, 0, beyond depth_max) and depths too near for 16 bits are sent as 0
        usable = (metres > 0) & (metres < depth_max) & (inverse < 65536)
        quantised = np.where(usable, inverse, 0).astype(np.uint16)
    else:
        quantised = np.asarray(depth, np.uint16).copy()
        quantised[quantised > np.uint16(min(65535, depth_max * 1000.0))] = 0  # as the publisher (it assumes mm)
    if codec == "png":
        ok, encoded = cv2.imencode(".png", quantised, [cv2.IMWRITE_PNG_COMPRESSION, png_level])
        if not ok:
            raise ValueError("PNG encoding failed")
        payload = encoded.tobytes()
    else:
        payload = SIZE.pack(quantised.shape[1], quantised.shape[0]) + encode_rvl(quantised)
    message = CompressedImage(format=f"{encoding}; compressedDepth {codec}")
    if header is not None:
        message.header = header
    message.data = HEADER.pack(INVERSE_DEPTH, quant_a, quant_b) + payload
    return message
