"""ROS messages <-> numpy, as small pure functions (cv_bridge is not assumed: it is often missing or broken).

Image data is viewed zero-copy where the layout allows; every size is checked against the size bound, ``step`` and
the data length before a view is made, so a malformed message is a ValueError, never a crash or a wrong picture.
Colour encodings are converted to RGB as cv_bridge's ``toCvCopy(msg, "rgb8")`` does (the same OpenCV codes, 16-bit
data scaled by 255/65535 after the colour conversion).
"""
from __future__ import annotations

import io
from typing import NamedTuple

import cv2
import numpy as np
from geometry_msgs.msg import Point
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from ..engine.depth import PinholeIntrinsics, depth_to_metres
from ..engine.preprocess import check_image_size


class ColorLayout(NamedTuple):
    channels: int  # values per pixel in the message (2 for YUV 4:2:2: Y and, alternately, U or V)
    dtype: type  # np.uint16 data is scaled to 8 bit after the colour conversion
    to_rgb: int | None  # cv2 colour conversion code; None when the data already is RGB
    even_width: bool = False  # YUV 4:2:2 shares one U and V between two pixels


# OpenCV names Bayer patterns after the 2x2 block starting at the second row and column, so ROS's bayer_rggb
# (top-left R) is OpenCV's BayerBG: the codes below are the ones cv_bridge uses (getConversionCodes).
_BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB, "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
_UYVY = ColorLayout(2, np.uint8, cv2.COLOR_YUV2RGB_UYVY, even_width=True)
_YUYV = ColorLayout(2, np.uint8, cv2.COLOR_YUV2RGB_YUY2, even_width=True)

COLOR_ENCODINGS: dict[str, ColorLayout] = {
    "rgb8": ColorLayout(3, np.uint8, None),
    "bgr8": ColorLayout(3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": ColorLayout(4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": ColorLayout(4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": ColorLayout(1, np.uint8, cv2.COLOR_GRAY2RGB),
    "rgb16": ColorLayout(3, np.uint16, None),
    "bgr16": ColorLayout(3, np.uint16, cv2.COLOR_BGR2RGB),
    "rgba16": ColorLayout(4, np.uint16, cv2.COLOR_RGBA2RGB),
    "bgra16": ColorLayout(4, np.uint16, cv2.COLOR_BGRA2RGB),
    "mono16": ColorLayout(1, np.uint16, cv2.COLOR_GRAY2RGB),
    **{f"bayer_{pattern}8": ColorLayout(1, np.uint8, code) for pattern, code in _BAYER.items()},
    **{f"bayer_{pattern}16": ColorLayout(1, np.uint16, code) for pattern, code in _BAYER.items()},
    # "uyvy"/"yuyv" are the names newer sensor_msgs give the deprecated "yuv422"/"yuv422_yuy2" (same bytes).
    "yuv422": _UYVY,
    "uyvy": _UYVY,
    "yuv422_yuy2": _YUYV,
    "yuyv": _YUYV,
    # Generic encodings: cv_bridge refuses to turn them into colour. We read them as what OpenCV images published
    # with cv_bridge's "passthrough" are (BGR channel order), because that is where they come from in practice.
    "8UC1": ColorLayout(1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC3": ColorLayout(3, np.uint8, cv2.COLOR_BGR2RGB),
    "8UC4": ColorLayout(4, np.uint8, cv2.COLOR_BGRA2RGB),
}
DEPTH_ENCODINGS = {"16UC1": (1, np.uint16), "mono16": (1, np.uint16), "32FC1": (1, np.float32)}
_SCALE_16_TO_8 = 255.0 / 65535.0  # cv_bridge's factor: 65535 -> 255, 257 * k -> k


def _view(msg: Image, channels: int, dtype: np.dtype) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ValueError(f"empty image ({width}x{height})")
    check_image_size(width, height)
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than a {msg.encoding} row of {width} px ({row_bytes} bytes)")
    if len(msg.data) < step * height:
        raise ValueError(f"image data has {len(msg.data)} bytes, {step * height} expected ({height} rows of {step})")
    raw = np.frombuffer(msg.data, np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    array = raw.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    return array.reshape(height, width, channels) if channels > 1 else array.reshape(height, width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image in any encoding of ``COLOR_ENCODINGS`` -> H x W x 3 uint8 RGB.

    rgb8 is returned as a view of the message's buffer (no copy); every other encoding costs one OpenCV
    conversion (two for 16-bit data).
    """
    layout = COLOR_ENCODINGS.get(msg.encoding)
    if layout is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(COLOR_ENCODINGS)}")
    if layout.even_width and int(msg.width) % 2:
        raise ValueError(f"{msg.encoding} (YUV 4:2:2) needs an even width, got {msg.width}")
    array = _view(msg, layout.channels, layout.dtype)
    if layout.dtype != np.uint8:
        array = array.astype(layout.dtype, copy=False)  # native byte order for OpenCV (a copy only if big-endian)
    try:
        if layout.to_rgb is not None:
            array = cv2.cvtColor(array, layout.to_rgb)
        if array.dtype == np.uint16:
            array = cv2.convertScaleAbs(array, alpha=_SCALE_16_TO_8)  # rounds to nearest, as cv::Mat::convertTo
    except cv2.error as exc:  # e.g. a picture too small for demosaicing
        raise ValueError(f"cannot convert a {msg.width}x{msg.height} {msg.encoding} image to RGB: {exc}") from exc
    return array


def compressed_image_size(data) -> tuple[int, int]:
    """(width, height) declared in a compressed image's header, read without decoding the pixels (Pillow parses
    the header only). ValueError when the header cannot be read."""
    try:
        with PILImage.open(io.BytesIO(data)) as header:
            return header.size
    except PILImage.DecompressionBombError as exc:  # Pillow's own bound (~179 Mpx), far above ours
        raise ValueError(f"compressed image declares too many pixels ({exc})") from exc
    except Exception as exc:  # untrusted bytes: whatever a format parser raises is a bad message, not a crash
        raise ValueError(f"cannot read the image size from the compressed data: {exc}") from exc


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png, any format both Pillow and OpenCV read) -> H x W x 3 uint8 RGB.

    The size is read from the header and checked before decoding: a few hundred kB of PNG can declare gigabytes of
    pixels. (Pillow warns with DecompressionBombWarning only for pictures beyond that check, which are refused.)
    """
    if not len(msg.data):
        raise ValueError(f"cannot decode compressed image (format {msg.format!r}, 0 bytes)")
    decoded = decode_checked(msg.data, cv2.IMREAD_COLOR, f"compressed image of format {msg.format!r}")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def decode_checked(data, flags: int, what: str) -> np.ndarray:
    """``cv2.imdecode(data, flags)`` once the size the header declares is within bounds; ValueError naming ``what``
    when the data do not decode."""
    width, height = compressed_image_size(data)
    check_image_size(width, height)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if decoded is None:
        raise ValueError(f"cannot decode {what} ({len(data)} bytes)")
    return decoded


def depth_image_to_metres(msg: Image, scale: float) -> np.ndarray:
    """16UC1/mono16 (``scale`` m per unit) or 32FC1 (m) depth image -> H x W float32 metres."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"unsupported depth encoding {msg.encoding!r}; expected one of {sorted(DEPTH_ENCODINGS)}")
    channels, dtype = DEPTH_ENCODINGS[msg.encoding]
    return depth_to_metres(_view(msg, channels, dtype).astype(dtype, copy=False), scale)


def intrinsics_from_camera_info(msg: CameraInfo) -> PinholeIntrinsics:
    """The camera model of ``msg`` (K, width, height). ValueError saying why when no point could be deprojected with
    it (e.g. "fx = inf: the focal lengths must be finite and positive"; an uncalibrated camera sends K = 0)."""
    intrinsics = PinholeIntrinsics.from_k(msg.k, msg.width, msg.height)
    if problem := intrinsics.problem():
        raise ValueError(problem)
    return intrinsics


def mono8_image(mask: np.ndarray, header: Header) -> Image:
    """Boolean H x W mask -> mono8 Image (255 inside) with ``header``."""
    msg = Image(header=header, height=mask.shape[0], width=mask.shape[1], encoding="mono8", is_bigendian=0, step=mask.shape[1])
    # Assigning bytes, not the array: rclpy copies a numpy array element by element (~200 ms for 720p).
    msg.data = (mask.astype(np.uint8) * 255).tobytes()
    return msg


def mask_from_mono8(msg: Image) -> np.ndarray:
    """mono8 mask Image (as ``mono8_image`` writes) -> boolean H x W, non-zero inside."""
    if msg.encoding != "mono8":
        raise ValueError(f"a mask must be mono8, got {msg.encoding!r}")
    return _view(msg, 1, np.uint8) > 0


def rgb_image(image: np.ndarray, header: Header) -> Image:
    msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding="rgb8", is_bigendian=0, step=image.shape[1] * 3)
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def depth_mm_image(depth_mm: np.ndarray, header: Header) -> Image:
    """H x W uint16 depth in millimetres -> 16UC1 Image (the encoding of most depth cameras' drivers)."""
    msg = Image(header=header, height=depth_mm.shape[0], width=depth_mm.shape[1], encoding="16UC1", is_bigendian=0,
                step=depth_mm.shape[1] * 2)
    msg.data = np.ascontiguousarray(depth_mm, dtype=np.uint16).tobytes()
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


def stamp_ns(header: Header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9
