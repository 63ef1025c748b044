"""ROS messages <-> numpy, as small pure functions (cv_bridge is not assumed: it is often missing or broken).

Image data is viewed zero-copy where the layout allows; every size is checked against ``step`` and the data length
before a view is made, so a malformed message is a ValueError, never a crash or a wrong picture.
"""
from __future__ import annotations

import cv2
import numpy as np
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from ..engine.depth import PinholeIntrinsics, depth_to_metres

# encoding -> (channels, dtype, conversion to RGB or None)
COLOR_ENCODINGS = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
}
DEPTH_ENCODINGS = {"16UC1": (1, np.uint16), "mono16": (1, np.uint16), "32FC1": (1, np.float32)}


def _view(msg: Image, channels: int, dtype: np.dtype) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ValueError(f"empty image ({width}x{height})")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than a {msg.encoding} row of {width} px ({row_bytes} bytes)")
    if len(msg.data) < step * height:
        raise ValueError(f"image data has {len(msg.data)} bytes, {step * height} expected ({height} rows of {step})")
    raw = np.frombuffer(msg.data, np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    array = raw.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    return array.reshape(height, width, channels) if channels > 1 else array.reshape(height, width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> H x W x 3 uint8 RGB."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(COLOR_ENCODINGS)}")
    channels, dtype, conversion = COLOR_ENCODINGS[msg.encoding]
    array = _view(msg, channels, dtype)
    return cv2.cvtColor(array, conversion) if conversion is not None else array


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> H x W x 3 uint8 RGB."""
    decoded = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR) if len(msg.data) else None
    if decoded is None:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r}, {len(msg.data)} bytes)")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def depth_image_to_metres(msg: Image, scale: float) -> np.ndarray:
    """16UC1/mono16 (``scale`` m per unit) or 32FC1 (m) depth image -> H x W float32 metres."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"unsupported depth encoding {msg.encoding!r}; expected one of {sorted(DEPTH_ENCODINGS)}")
    channels, dtype = DEPTH_ENCODINGS[msg.encoding]
    return depth_to_metres(_view(msg, channels, dtype).astype(dtype, copy=False), scale)


def intrinsics_from_camera_info(msg: CameraInfo) -> PinholeIntrinsics:
    return PinholeIntrinsics.from_k(msg.k, msg.width, msg.height)


def mono8_image(mask: np.ndarray, header: Header) -> Image:
    """Boolean H x W mask -> mono8 Image (255 inside) with ``header``."""
    msg = Image(header=header, height=mask.shape[0], width=mask.shape[1], encoding="mono8", is_bigendian=0, step=mask.shape[1])
    # Assigning bytes, not the array: rclpy copies a numpy array element by element (~200 ms for 720p).
    msg.data = (mask.astype(np.uint8) * 255).tobytes()
    return msg


def rgb_image(image: np.ndarray, header: Header) -> Image:
    msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding="rgb8", is_bigendian=0, step=image.shape[1] * 3)
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def region_of_interest(bbox: tuple[int, int, int, int] | None) -> RegionOfInterest:
    if bbox is None:
        return RegionOfInterest()
    x, y, w, h = bbox
    return RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)


def point(xyz) -> Point:
    if xyz is None:
        return Point()
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]) if len(xyz) > 2 else 0.0)


def stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9
