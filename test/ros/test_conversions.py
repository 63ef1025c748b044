"""Message <-> numpy conversions against pixel values known by hand (cv_bridge's semantics), and the size bounds."""
from __future__ import annotations

import math
import struct
import zlib

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from mllmseg_ros.engine.preprocess import MAX_IMAGE_SIDE
from mllmseg_ros.ros import conversions
from mllmseg_ros.ros.conversions import compressed_to_rgb, depth_image_to_metres, image_to_rgb, intrinsics_from_camera_info

RED, GREEN, BLUE = 200, 100, 50
K = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]


def message(array: np.ndarray, encoding: str, big_endian: bool = False) -> Image:
    """H x W (x C) array -> Image with the bytes laid out as a camera driver would."""
    height, width = array.shape[:2]
    data = array.astype(array.dtype.newbyteorder(">" if big_endian else "<"))
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian), step=data[0].nbytes)
    msg.data = data.tobytes()
    return msg


def bayer_mosaic(pattern: str, rgb: tuple[int, int, int], dtype=np.uint8, size: int = 6) -> np.ndarray:
    """A uniformly coloured picture as a Bayer sensor sees it: ``pattern`` names the top-left 2x2 block."""
    value = dict(zip("RGB", rgb))
    tile = np.array([[value[pattern[0]], value[pattern[1]]], [value[pattern[2]], value[pattern[3]]]], dtype)
    return np.tile(tile, (size // 2, size // 2))


def bt601(y: int, u: int, v: int) -> np.ndarray:
    """Video-range BT.601 YUV -> RGB, the textbook formula (what cameras' YUV 4:2:2 carries)."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    rgb = [c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d]
    return np.clip(np.round(rgb), 0, 255)


def test_rgb8_is_a_view_of_the_message_buffer():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = message(pixels, "rgb8")
    rgb = image_to_rgb(msg)
    assert np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(rgb, pixels)


@pytest.mark.parametrize(
    "encoding, pixel",
    [
        ("bgr8", [BLUE, GREEN, RED]),
        ("8UC3", [BLUE, GREEN, RED]),  # OpenCV channel order, as cv_bridge's passthrough publishes a cv2 image
        ("rgba8", [RED, GREEN, BLUE, 7]),
        ("bgra8", [BLUE, GREEN, RED, 7]),
        ("8UC4", [BLUE, GREEN, RED, 7]),
    ],
)
def test_8_bit_colour_encodings(encoding, pixel):
    rgb = image_to_rgb(message(np.full((3, 5, len(pixel)), pixel, np.uint8), encoding))
    assert rgb.shape == (3, 5, 3) and (rgb == [RED, GREEN, BLUE]).all()


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_8_bit_gray(encoding):
    rgb = image_to_rgb(message(np.full((3, 4), 77, np.uint8), encoding))
    assert rgb.shape == (3, 4, 3) and (rgb == 77).all()


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize(
    "encoding, pixel",
    [
        ("rgb16", [257 * RED, 257 * GREEN, 257 * BLUE]),
        ("bgr16", [257 * BLUE, 257 * GREEN, 257 * RED]),
        ("rgba16", [257 * RED, 257 * GREEN, 257 * BLUE, 1]),
        ("bgra16", [257 * BLUE, 257 * GREEN, 257 * RED, 1]),
    ],
)
def test_16_bit_colour_is_scaled_like_cv_bridge(encoding, pixel, big_endian):
    # cv_bridge scales 16 -> 8 bit by 255 / 65535: 257 * k is exactly k.
    rgb = image_to_rgb(message(np.full((2, 3, len(pixel)), pixel, np.uint16), encoding, big_endian))
    assert rgb.dtype == np.uint8 and (rgb == [RED, GREEN, BLUE]).all()


def test_16_bit_scaling_rounds_to_nearest():
    values = np.array([[0, 128, 129, 385, 386, 65535]], np.uint16)  # x 255/65535 = 0, .498, .502, 1.498, 1.502, 255
    rgb = image_to_rgb(message(values, "mono16"))
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 1, 2, 255] and (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_give_the_right_colour(pattern, bits):
    dtype, unit = (np.uint8, 1) if bits == 8 else (np.uint16, 257)
    mosaic = bayer_mosaic(pattern.upper(), (unit * RED, unit * GREEN, unit * BLUE), dtype)
    rgb = image_to_rgb(message(mosaic, f"bayer_{pattern}{bits}"))
    assert rgb.shape == (6, 6, 3) and (rgb == [RED, GREEN, BLUE]).all()


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy"])
def test_uyvy(encoding):
    # Bytes U Y0 V Y1 per pixel pair. Pair 1: gray, black then white (Y order); pair 2: video-range red.
    row = np.array([[[128, 16], [128, 235], [90, 81], [240, 81]]], np.uint8)
    rgb = image_to_rgb(message(row, encoding))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    np.testing.assert_allclose(rgb[0, 2:], [bt601(81, 90, 240)] * 2, atol=1)


@pytest.mark.parametrize("encoding", ["yuv422_yuy2", "yuyv"])
def test_yuyv(encoding):
    # Bytes Y0 U Y1 V per pixel pair.
    row = np.array([[[16, 128], [235, 128], [81, 90], [81, 240]]], np.uint8)
    rgb = image_to_rgb(message(row, encoding))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    np.testing.assert_allclose(rgb[0, 2:], [bt601(81, 90, 240)] * 2, atol=1)


def test_yuv422_needs_an_even_width():
    with pytest.raises(ValueError, match="even width, got 3"):
        image_to_rgb(message(np.full((2, 3, 2), 128, np.uint8), "yuv422"))


def test_unsupported_encoding_lists_the_supported_ones():
    with pytest.raises(ValueError, match="unsupported image encoding 'nv21'.*bayer_rggb16.*yuv422_yuy2"):
        image_to_rgb(message(np.zeros((2, 2), np.uint8), "nv21"))


def test_malformed_layouts_are_value_errors(monkeypatch):
    msg = message(np.zeros((4, 4, 3), np.uint16), "rgb16")
    msg.step = 4 * 3  # a row of rgb16 needs 24 bytes
    with pytest.raises(ValueError, match="step 12 is smaller"):
        image_to_rgb(msg)

    def opencv_refuses(*args):
        raise cv2.error("OpenCV refused")

    # Whatever OpenCV refuses is a bad message (ValueError, which the node counts), not an exception in a callback.
    monkeypatch.setattr(conversions.cv2, "cvtColor", opencv_refuses)
    with pytest.raises(ValueError, match="cannot convert a 2x2 bayer_rggb8 image to RGB: OpenCV refused"):
        image_to_rgb(message(np.zeros((2, 2), np.uint8), "bayer_rggb8"))


# size bounds: checked from the message fields / the compressed header, before any pixel is allocated ------------------
@pytest.mark.parametrize("width, height", [(MAX_IMAGE_SIDE + 1, 1), (20000, 20000)])
def test_raw_images_beyond_the_bound_are_refused_from_their_fields(width, height):
    # No data at all: the size is refused before the data length is even looked at.
    refused = f"image size {width}x{height} is outside 1..{MAX_IMAGE_SIDE}"
    with pytest.raises(ValueError, match=refused):
        image_to_rgb(Image(height=height, width=width, encoding="rgb8", step=width * 3))
    with pytest.raises(ValueError, match=refused):
        depth_image_to_metres(Image(height=height, width=width, encoding="16UC1", step=width * 2), 0.001)


def black_png(width: int, height: int) -> bytes:
    """A valid 1-bit gray PNG of ``width`` x ``height`` black pixels, written directly (20000 x 20000 is ~50 kB of
    file, 1.2 GB once decoded to RGB; making it with an image library would allocate the pixels first)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture()
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(conversions.cv2, "imdecode", refuse)


def test_compressed_image_decodes():
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :3] = [BLUE, GREEN, RED]
    ok, png = cv2.imencode(".png", bgr)
    rgb = compressed_to_rgb(CompressedImage(format="png", data=png.tobytes()))
    assert rgb.shape == (4, 6, 3) and (rgb[:, :3] == [RED, GREEN, BLUE]).all() and (rgb[:, 3:] == 0).all()


def test_compressed_image_beyond_the_bound_is_refused_from_its_header(no_decoding):
    msg = CompressedImage(format="png", data=black_png(MAX_IMAGE_SIDE + 8, 2))
    with pytest.raises(ValueError, match=f"image size {MAX_IMAGE_SIDE + 8}x2 is outside"):
        compressed_to_rgb(msg)


def test_a_decompression_bomb_is_refused_without_decoding(no_decoding):
    msg = CompressedImage(format="png", data=black_png(20000, 20000))
    assert len(msg.data) < 100_000
    with pytest.raises(ValueError, match="400000000 pixels"):
        compressed_to_rgb(msg)


@pytest.mark.parametrize("data", [b"", b"not an image at all", black_png(4, 4)[:20]])
def test_unreadable_compressed_data_is_a_value_error(data):
    with pytest.raises(ValueError, match="cannot"):
        compressed_to_rgb(CompressedImage(format="png", data=data))


# camera_info -------------------------------------------------------------------------------------------------------
def test_usable_camera_info():
    intrinsics = intrinsics_from_camera_info(CameraInfo(width=640, height=480, k=K))
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, intrinsics.width) == (500, 500, 319.5, 239.5, 640)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({0: math.inf}, "fx = inf"),
        ({4: math.nan}, "fy = nan"),
        ({0: 0.0, 4: 0.0}, "fx = 0, fy = 0"),  # an uncalibrated camera
        ({0: -500.0}, "fx = -500"),
        ({2: math.nan}, "cx = nan"),
        ({5: math.inf}, "cy = inf"),
    ],
)
def test_unusable_camera_info_says_why(changes, reason):
    k = [changes.get(index, value) for index, value in enumerate(K)]
    with pytest.raises(ValueError, match=reason):
        intrinsics_from_camera_info(CameraInfo(width=640, height=480, k=k))


def test_camera_info_without_a_size_is_unusable():
    with pytest.raises(ValueError, match="image size 0x0"):
        intrinsics_from_camera_info(CameraInfo(k=K))
