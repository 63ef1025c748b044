"""Compact forms for a network link, without a node: image_transport's compressedDepth (PNG and RVL, Humble and Jazzy
format strings), masks cropped to their box as PNG, compressed overlay and mask images. Each round-trips through
serialised messages, and malformed input is a ValueError before any large allocation."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from mllmseg_ros.engine.preprocess import MAX_IMAGE_SIDE
from mllmseg_ros.ros import compressed_depth as cd
from mllmseg_ros.ros.compact import (MASK_PNG_FORMAT, OVERLAY_JPEG_FORMAT, apply_mask_format, compact_mask,
                                     compressed_mask, compressed_overlay, segmentation_mask)
from mllmseg_ros.ros.conversions import depth_image_to_metres, mono8_image
from mllmseg_ros.ros.rvl import decode_rvl, encode_rvl

HEADER = Header(frame_id="camera_color_optical_frame")
HEADER.stamp.sec, HEADER.stamp.nanosec = 1234, 500


def through_the_wire(msg):
    return deserialize_message(serialize_message(msg), type(msg))


def depth_scene(height: int = 48, width: int = 64) -> np.ndarray:
    """Millimetre depth with a slope, an object nearer than the rest, holes (0) and a far band."""
    rows = np.linspace(600, 3000, height)[:, None]
    depth = np.repeat(rows, width, axis=1).astype(np.uint16)
    depth[10:20, 20:35] = 450
    depth[::7, ::5] = 0
    depth[-3:] = 12000  # beyond the publisher's default depth_max (10 m): sent as 0
    return depth


# RVL ------------------------------------------------------------------------------------------------------------
def test_rvl_matches_a_stream_worked_out_by_hand():
    # pixels 0 0 5 5 0: runs (2 zeros, 2 non-zeros: +5, +0 -> zig-zag 10, 0), (1 zero, 0 non-zeros)
    # numbers 2 2 10 0 1 0 -> nibbles 2 2 A 1 0 1 0 (10 = 0b1010: low bits 010 with the continuation bit, then 1)
    # -> one word 0x22A10100 (first nibble on top, padded with a zero nibble), little-endian
    data = bytes.fromhex("0001a122")
    pixels = np.array([0, 0, 5, 5, 0], np.uint16)
    assert encode_rvl(pixels) == data
    assert decode_rvl(data, 5).tolist() == pixels.tolist()


@pytest.mark.parametrize("pixels", [
    np.zeros(100, np.uint16),  # one run of zeros
    np.full(33, 65535, np.uint16),  # no zeros, the largest value
    np.array([65535, 0, 1, 65535, 1, 0, 0], np.uint16),  # differences that wrap around 16 bits
    np.random.default_rng(1).integers(0, 65536, 4000).astype(np.uint16),
    depth_scene().ravel(),
])
def test_rvl_round_trips(pixels):
    assert (decode_rvl(encode_rvl(pixels), pixels.size) == pixels).all()


@pytest.mark.parametrize("data, pixels, reason", [
    (bytes.fromhex("0001a122")[:0], 5, "end after 0 of 5"),  # nothing
    (bytes.fromhex("0001a122"), 9, "end after 5 of 9"),  # fewer pixels than the image has
    (bytes.fromhex("0001a122"), 3, "more than 3 pixels"),
    (b"\xff" * 8, 5, "end after 0 of 5"),  # a number that never ends
    (struct.pack("<II", 0xFFFFFFFF, 0xFFFF1000), 5, "a number of 13 nibbles"),  # longer than any count or value
])
def test_rvl_refuses_data_that_do_not_fit(data, pixels, reason):
    with pytest.raises(ValueError, match=reason):
        decode_rvl(data, pixels)


# compressedDepth ------------------------------------------------------------------------------------------------
def humble_16uc1(depth: np.ndarray) -> CompressedImage:
    """As Humble's compressed_depth_image_transport sends 16UC1 (format without a codec name), written out here from
    the layout rather than by the encoder under test: the 12-byte header, then a 16-bit PNG."""
    ok, png = cv2.imencode(".png", depth)
    return CompressedImage(header=HEADER, format="16UC1; compressedDepth", data=struct.pack("<iff", 0, 0, 0) + png.tobytes())


def test_humble_16uc1_decodes_to_the_raw_image():
    depth = depth_scene()
    image = cd.decode_compressed_depth(through_the_wire(humble_16uc1(depth)))
    assert (image.encoding, image.width, image.height, image.step) == ("16UC1", 64, 48, 128)
    assert image.header == HEADER
    assert (np.frombuffer(image.data, "<u2").reshape(48, 64) == depth).all()


@pytest.mark.parametrize("codec", ["png", "rvl"])
@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_16_bit_depth_round_trips_exactly(codec, encoding):
    depth = depth_scene()
    message = through_the_wire(cd.encode_compressed_depth(depth, encoding, HEADER, codec=codec))
    assert message.format == f"{encoding}; compressedDepth {codec}"
    image = cd.decode_compressed_depth(message)
    expected = np.where(depth > 10000, 0, depth)  # the publisher sends depth beyond depth_max as no measurement
    assert image.encoding == encoding and (np.frombuffer(image.data, "<u2").reshape(48, 64) == expected).all()
    assert len(message.data) < depth.nbytes  # it is smaller than the raw image


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_32fc1_depth_round_trips_within_the_inverse_depth_quantisation(codec):
    metres = depth_scene().astype(np.float32) / 1000
    metres[metres == 0] = np.nan
    metres[0, 0] = 0.0  # no measurement either
    image = cd.decode_compressed_depth(through_the_wire(cd.encode_compressed_depth(metres, "32FC1", HEADER, codec=codec)))
    decoded = depth_image_to_metres(image, 1.0)
    sent = np.isfinite(metres) & (metres > 0) & (metres < cd.DEPTH_MAX_M)
    assert (np.isnan(decoded) == ~sent).all()
    # One inverse-depth step at depth d is about d^2 / A (A = z0 (z0 + 1)); the publisher truncates, so within one step
    quant_a = cd.DEPTH_QUANTIZATION * (cd.DEPTH_QUANTIZATION + 1)
    step = metres[sent] ** 2 / quant_a
    assert (np.abs(decoded[sent] - metres[sent]) <= step * 1.01 + 1e-6).all()
    assert np.abs(decoded[sent] - metres[sent]).max() < 0.001  # under a millimetre at these depths (< 3 m)


def test_32fc1_header_is_what_the_decoder_reads():
    # Written from the layout: A and B for depth_quantization 50 and depth_max 5, then a PNG of q = A / d + B
    quant_a, quant_b = 50.0 * 51.0, 1.0 - 50.0 * 51.0 / 5.0
    metres = np.array([[1.0, 2.0], [4.0, 0.0]], np.float32)
    quantised = np.where(metres > 0, quant_a / np.where(metres > 0, metres, 1) + quant_b, 0).astype(np.uint16)
    ok, png = cv2.imencode(".png", quantised)
    message = CompressedImage(format="32FC1; compressedDepth png", data=struct.pack("<iff", 0, quant_a, quant_b) + png.tobytes())
    decoded = depth_image_to_metres(cd.decode_compressed_depth(message), 1.0)
    assert decoded[0].tolist() == pytest.approx([1.0, 2.0], abs=2e-3) and decoded[1, 0] == pytest.approx(4.0, abs=7e-3)
    assert np.isnan(decoded[1, 1])


def png_header_only(width: int, height: int, bit_depth: int = 16) -> bytes:
    """A PNG signature and IHDR declaring ``width`` x ``height`` grey pixels, and a token IDAT: ~60 bytes."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture()
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cd.cv2, "imdecode", refuse)


@pytest.mark.parametrize("payload, reason", [
    (png_header_only(20000, 20000), "400000000 pixels"),
    (png_header_only(MAX_IMAGE_SIDE + 1, 2), "is outside"),
    (struct.pack("<II", 70000, 70000) + b"\0" * 16, "image size 70000x70000"),  # an RVL size
])
def test_huge_declared_sizes_are_refused_before_decoding(no_decoding, payload, reason):
    codec = "rvl" if payload[:4] != b"\x89PNG" else "png"
    message = CompressedImage(format=f"16UC1; compressedDepth {codec}", data=struct.pack("<iff", 0, 0, 0) + payload)
    with pytest.raises(ValueError, match=reason):
        cd.decode_compressed_depth(message)


@pytest.mark.parametrize("fmt, data, reason", [
    ("rgb8; jpeg compressed bgr8", b"\0" * 40, "not image_transport's compressedDepth"),
    ("16UC1; compressedDepth zstd", b"\0" * 40, "codec 'zstd'"),
    ("8UC1; compressedDepth png", b"\0" * 40, "encoding '8UC1'"),
    ("16UC1; compressedDepth png", b"\0" * 12, "no image after the 12-byte header"),
    ("16UC1; compressedDepth png", b"\0" * 12 + b"not a png at all", "cannot read the image size"),
    ("16UC1; compressedDepth png", b"\0" * 12 + cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes(), "16-bit grey"),
    ("32FC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + cv2.imencode(".png", np.ones((4, 4), np.uint16))[1].tobytes(),
     "not an inverse-depth quantisation"),
    ("16UC1; compressedDepth rvl", b"\0" * 12 + b"\1\0", "hold no image size"),
    ("16UC1; compressedDepth rvl", b"\0" * 12 + struct.pack("<II", 4, 4) + bytes.fromhex("0001a122"), "RVL data end"),
])
def test_malformed_compressed_depth_is_a_value_error(fmt, data, reason):
    with pytest.raises(ValueError, match=reason):
        cd.decode_compressed_depth(CompressedImage(format=fmt, data=data))


# masks ----------------------------------------------------------------------------------------------------------
class Result:
    """The fields of an engine result that publishing reads."""

    def __init__(self, mask: np.ndarray) -> None:
        ys, xs = np.nonzero(mask)
        self.mask, self.found = mask, bool(ys.size)
        self.bbox = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1) if ys.size else None


def segmentation_of(result: Result, height: int, width: int):
    from mllmseg_ros.msg import Segmentation

    x, y, w, h = result.bbox or (0, 0, 0, 0)
    return Segmentation(found=result.found, mask=mono8_image(result.mask, HEADER), image_width=width, image_height=height,
                        bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))


def blob(height: int = 480, width: int = 640) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (300, 240), (90, 70), 20, 0, 360, 1, -1)
    cv2.circle(mask, (330, 220), 20, 0, -1)  # a hole
    mask[400:402, 600:640] = 1  # a second part touching the border
    return mask.astype(bool)


def small_mask() -> np.ndarray:
    """48 x 64, a 7 x 5 box at (10, 3)."""
    return np.pad(np.ones((5, 7), bool), ((3, 40), (10, 47)))


def test_png_mask_round_trips_through_the_message_and_is_small():
    from mllmseg_ros.msg import SegmentationArray

    masks = [blob(), np.zeros((480, 640), bool)]  # a found target and one not found
    results = [Result(m) for m in masks]
    array = SegmentationArray(header=HEADER, segmentations=[segmentation_of(r, 480, 640) for r in results])
    full_size = len(serialize_message(array))
    apply_mask_format(array.segmentations, results, "png")
    received = through_the_wire(array)
    assert len(serialize_message(array)) < full_size / 100  # 600 kB of two mono8 masks -> a few kB
    found, absent = received.segmentations
    assert (found.mask.width, found.mask.height, len(found.mask.data)) == (0, 0, 0)
    assert found.mask.header == HEADER and found.mask_png.header == HEADER
    assert found.mask_png.format == MASK_PNG_FORMAT and len(found.mask_png.data) < 2000
    assert (segmentation_mask(found) == masks[0]).all()
    assert len(absent.mask_png.data) == 0 and not segmentation_mask(absent).any()
    # Any PNG reader: Pillow gives the box-sized crop, white inside
    crop = np.array(PILImage.open(io.BytesIO(bytes(found.mask_png.data))).convert("L")) > 0
    box = found.bbox
    assert (crop == masks[0][box.y_offset:box.y_offset + box.height, box.x_offset:box.x_offset + box.width]).all()


def test_image_format_is_left_as_built_and_none_leaves_the_mask_out():
    mask = small_mask()
    result = Result(mask)
    kept = segmentation_of(result, 48, 64)
    apply_mask_format([kept], [result], "image")
    assert kept.mask.width == 64 and len(kept.mask_png.data) == 0
    assert (segmentation_mask(through_the_wire(kept)) == mask).all()
    left_out = segmentation_of(result, 48, 64)
    apply_mask_format([left_out], [result], "none")
    left_out = through_the_wire(left_out)
    assert len(left_out.mask.data) == 0 and len(left_out.mask_png.data) == 0
    assert (left_out.bbox.width, left_out.bbox.height) == (7, 5)  # the box and the rest stay
    left_out.image_width = left_out.image_height = 0  # a result of a node with mask_format none (older: no size)
    with pytest.raises(ValueError, match="carries no mask"):
        segmentation_mask(left_out)


def test_a_png_mask_that_does_not_fit_its_box_is_a_value_error():
    result = Result(small_mask())
    segmentation = segmentation_of(result, 48, 64)
    apply_mask_format([segmentation], [result], "png")
    segmentation.bbox.width = 8
    with pytest.raises(ValueError, match="mask_png is 7x5 pixels, its box 8x5"):
        segmentation_mask(segmentation)
    segmentation.bbox.width, segmentation.bbox.x_offset = 7, 60
    with pytest.raises(ValueError, match="outside the 64x48 image"):
        segmentation_mask(segmentation)


def test_compact_mask_of_a_not_found_target_is_empty():
    assert len(compact_mask(np.zeros((4, 4), bool), None, HEADER).data) == 0


# compressed images ----------------------------------------------------------------------------------------------
def test_compressed_overlay_is_a_jpeg_in_image_transport_format():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (200, 30, 10)
    message = through_the_wire(compressed_overlay(rgb, HEADER))
    assert message.format == OVERLAY_JPEG_FORMAT and message.header == HEADER
    bgr = cv2.imdecode(np.frombuffer(bytes(message.data), np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - rgb).mean() < 3


def test_compressed_union_mask_decodes_to_mono8_255_inside():
    mask = small_mask()
    message = through_the_wire(compressed_mask(mask, HEADER))
    decoded = cv2.imdecode(np.frombuffer(bytes(message.data), np.uint8), cv2.IMREAD_UNCHANGED)
    assert message.format == MASK_PNG_FORMAT and decoded.dtype == np.uint8
    assert set(np.unique(decoded)) == {0, 255} and ((decoded == 255) == mask).all()
