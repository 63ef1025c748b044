"""Results that cost little on a network: masks cropped to their box as PNG, and compressed images.

``mask_format`` (a node parameter) says how each Segmentation carries its mask:

* ``image`` (default): ``mask`` is the full-size mono8 Image, as always; ``mask_png`` is empty.
* ``png``: ``mask`` is empty (0 x 0, the header kept) and ``mask_png`` holds the mask inside ``bbox`` as a 1-bit grey
  PNG (bbox.width x bbox.height pixels, non-zero inside), to be placed at (bbox.x_offset, bbox.y_offset) of an
  ``image_width`` x ``image_height`` image. Any PNG reader decodes it (cv2.imdecode, PIL); ``segmentation_mask``
  here gives the full-size mask.
* ``none``: neither; bbox, centroids and area only.

The overlay and union-mask topics get image_transport's ``compressed`` companions (``~/overlay/compressed`` JPEG,
``~/mask/compressed`` PNG) with the format strings compressed_image_transport writes, so image_transport's
republisher, rqt_image_view and Foxglove decode them.
"""
from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..engine.preprocess import check_image_size
from .conversions import decode_checked, mask_from_mono8

# compressed_image_transport's format strings: "<raw encoding>; <codec> compressed <what the codec was given>"; a
# grey PNG names no target encoding (the trailing space is theirs)
MASK_PNG_FORMAT = "mono8; png compressed "
OVERLAY_JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
OVERLAY_JPEG_QUALITY = 80  # an overlay is for a person watching: a third of quality 95's bytes, no visible loss


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Boolean H x W -> 1-bit grey PNG bytes (black outside, white inside)."""
    ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_BILEVEL, 1,
                                                                      cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError("PNG encoding of a mask failed")
    return encoded.tobytes()


def decode_mask_png(data: bytes) -> np.ndarray:
    """PNG bytes (any bit depth, grey or colour) -> boolean H x W, non-zero inside. The size is checked first."""
    return decode_checked(data, cv2.IMREAD_GRAYSCALE, "a mask PNG") > 0


def compact_mask(mask: np.ndarray, bbox: tuple[int, int, int, int] | None, header: Header) -> CompressedImage:
    """The part of ``mask`` inside ``bbox`` (x, y, w, h) as a ``mask_png`` message; empty data when there is none."""
    message = CompressedImage(header=header, format=MASK_PNG_FORMAT)
    if bbox is not None and bbox[2] > 0 and bbox[3] > 0:
        x, y, w, h = bbox
        message.data = encode_mask_png(mask[y:y + h, x:x + w])
    return message


def segmentation_mask(segmentation) -> np.ndarray:
    """The full-size boolean mask of a Segmentation, whichever ``mask_format`` the node used.

    ``image``: from ``mask``; ``png``: ``mask_png`` placed at the box in an ``image_height`` x ``image_width`` image
    (all False when not found). ValueError for a result sent without a mask (``none``) or with inconsistent fields.
    """
    if segmentation.mask.width and segmentation.mask.height:
        return mask_from_mono8(segmentation.mask)
    width, height = int(segmentation.image_width), int(segmentation.image_height)
    if not width or not height:
        raise ValueError("this result carries no mask (the node's mask_format is none)")
    check_image_size(width, height)
    full = np.zeros((height, width), bool)
    if not len(segmentation.mask_png.data):
        return full
    box = segmentation.bbox
    x, y, w, h = int(box.x_offset), int(box.y_offset), int(box.width), int(box.height)
    if x + w > width or y + h > height:
        raise ValueError(f"mask box {w}x{h}+{x}+{y} lies outside the {width}x{height} image")
    crop = decode_mask_png(bytes(segmentation.mask_png.data))
    if crop.shape != (h, w):
        raise ValueError(f"mask_png is {crop.shape[1]}x{crop.shape[0]} pixels, its box {w}x{h}")
    full[y:y + h, x:x + w] = crop
    return full


def apply_mask_format(segmentations, results, mask_format: str) -> None:
    """Put each result's mask into its Segmentation (in place) as ``mask_format`` says; ``image`` leaves them as
    built. ``results`` are the engine's (or tracker's) results the segmentations were built from, in order."""
    if mask_format == "image":
        return
    for segmentation, result in zip(segmentations, results):
        header = segmentation.mask.header
        segmentation.mask = Image(header=header)
        if mask_format == "png":
            segmentation.mask_png = compact_mask(result.mask, result.bbox if result.found else None, header)


def compressed_overlay(rgb: np.ndarray, header: Header, quality: int = OVERLAY_JPEG_QUALITY) -> CompressedImage:
    """H x W x 3 RGB -> JPEG CompressedImage as image_transport's compressed publisher sends an rgb8 image."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of the overlay failed")
    message = CompressedImage(header=header, format=OVERLAY_JPEG_FORMAT)
    message.data = encoded.tobytes()
    return message


def compressed_mask(mask: np.ndarray, header: Header) -> CompressedImage:
    """Boolean H x W -> PNG CompressedImage as image_transport's compressed publisher sends a mono8 image."""
    message = CompressedImage(header=header, format=MASK_PNG_FORMAT)
    message.data = encode_mask_png(mask)
    return message
