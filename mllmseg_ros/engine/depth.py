"""3D centroids from a depth image and pinhole intrinsics. Pure numpy, no ROS."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Relative difference of width/height ratios still taken as the same picture (848x480 depth for 1280x720 is 0.6 %).
ASPECT_RATIO_TOLERANCE = 0.01
# 16-bit depth codes that are no measurement: 0 (no return, the convention of REP 118 drivers) and 65535 (saturated /
# out of range in some drivers' raw streams). Neither is a distance.
NO_RETURN_16BIT = (0, 65535)


@dataclass(frozen=True)
class DepthLimits:
    """The distances a depth value may have to count as a measurement (metres, inclusive). Values outside are noise,
    a no-return code read as a distance, or a unit mix-up (millimetres in a metre image)."""

    min_m: float = 0.1
    max_m: float = 20.0

    def describe(self) -> str:
        return f"{self.min_m:g}-{self.max_m:g} m"


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Camera matrix of the image the pixels refer to (sensor_msgs/CameraInfo K: fx 0 cx / 0 fy cy / 0 0 1)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k, width: int, height: int) -> "PinholeIntrinsics":
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))

    def scaled_to(self, width: int, height: int) -> "PinholeIntrinsics":
        """The same camera seen at another resolution (e.g. camera_info of a differently sized stream)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        # Pixel centres sit at +0.5: scale the centre-referenced principal point.
        return PinholeIntrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def problem(self) -> str:
        """Why no point can be deprojected with these numbers ("" when they are usable)."""
        problems = [f"{name} = {value:g}" for name, value in (("fx", self.fx), ("fy", self.fy))
                    if not (math.isfinite(value) and value > 0)]
        if problems:
            return f"{', '.join(problems)}: the focal lengths must be finite and positive"
        problems = [f"{name} = {value:g}" for name, value in (("cx", self.cx), ("cy", self.cy)) if not math.isfinite(value)]
        if problems:
            return f"{', '.join(problems)}: the principal point must be finite"
        if self.width <= 0 or self.height <= 0:
            return f"image size {self.width}x{self.height}: the size the intrinsics refer to is needed to scale them"
        return ""

    @property
    def valid(self) -> bool:
        return not self.problem()


def depth_to_metres(depth: np.ndarray, scale: float = 0.001) -> np.ndarray:
    """uint16 depth (``scale`` metres per unit, 1 mm by default) or float depth in metres -> float32 metres. The 16-bit
    no-return codes (``NO_RETURN_16BIT``) become 0, which no later step counts as a distance."""
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) * np.float32(scale)
        metres[depth == 65535] = 0.0
        return metres
    if depth.dtype in (np.float32, np.float64):
        return depth.astype(np.float32, copy=False)
    raise ValueError(f"depth must be uint16 or float, got {depth.dtype}")


def aspect_ratio_mismatch(what: str, size: tuple[int, int], image_size: tuple[int, int]) -> str:
    """"" when a ``what`` of ``size`` (width, height) can be scaled onto the colour image of ``image_size``, else the
    reason: scaling a picture of another aspect ratio would stretch it, and give points that are silently wrong."""
    (width, height), (image_width, image_height) = size, image_size
    ratio, image_ratio = width / height, image_width / image_height
    if abs(ratio - image_ratio) > ASPECT_RATIO_TOLERANCE * image_ratio:
        return f"{what} {width}x{height} has another aspect ratio than the colour image {image_width}x{image_height}"
    return ""


def float_depth_unit_problem(depth_m: np.ndarray, limits: DepthLimits) -> str:
    """Why a float (32FC1) depth image is not in metres ("" when it may be): its typical value lies beyond the far
    limit while a thousandth of it lies within the limits, as millimetres would (REP 118: float depth is metres).
    Decided on about 4000 pixels taken at an odd stride through the image (so rows are sampled at shifting columns),
    which costs little on every image."""
    sample = depth_m.reshape(-1)[:: (depth_m.size // 4096) | 1]
    values = sample[np.isfinite(sample) & (sample > 0)]
    if values.size == 0:
        return ""
    typical = float(np.median(values))
    if typical > limits.max_m and limits.min_m <= typical / 1000.0 <= limits.max_m:
        return (f"32FC1 depth looks like millimetres (median {typical:g}; float depth must be metres, REP 118): "
                "publish 16UC1 millimetres or 32FC1 metres")
    return ""


def depth_samples_in_mask(depth_m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Measured depth values (finite, > 0) under ``mask``. A depth image of another
    size but the same aspect ratio is resized to the mask's size with nearest-neighbour sampling, so no depth is
    invented across object edges; one of another aspect ratio is a ValueError."""
    if depth_m.shape != mask.shape:
        if reason := aspect_ratio_mismatch("depth", depth_m.shape[::-1], mask.shape[::-1]):
            raise ValueError(reason)
        depth_m = cv2.resize(depth_m, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    values = depth_m[mask]
    return values[np.isfinite(values) & (values > 0)]


def deproject(u: float, v: float, z: float, intrinsics: PinholeIntrinsics) -> tuple[float, float, float]:
    """Pixel (u, v) at depth z metres -> (x, y, z) in the optical frame (x right, y down, z forward)."""
    return ((u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z)


@dataclass(frozen=True)
class Centroid3D:
    point: tuple[float, float, float] | None
    samples: int
    status: str  # "ok" or the reason there is no point


def centroid_3d(
    mask: np.ndarray, centroid_px: tuple[float, float] | None, depth_m: np.ndarray | None,
    intrinsics: PinholeIntrinsics | None, limits: DepthLimits | None = None,
) -> Centroid3D:
    """Median valid depth inside the mask (within ``limits`` when given), placed at the mask's pixel centroid.
    ``status`` says why there is no point: no target, no depth, no or unusable intrinsics, a depth image / camera
    model of another aspect ratio, or no measurement (within the limits) inside the mask."""
    if centroid_px is None:
        return Centroid3D(None, 0, "target not found")
    if depth_m is None:
        return Centroid3D(None, 0, "no depth image")
    if intrinsics is None:
        return Centroid3D(None, 0, "no camera_info")
    if problem := intrinsics.problem():
        return Centroid3D(None, 0, f"camera_info unusable: {problem}")
    image_size = (mask.shape[1], mask.shape[0])
    for what, size in (("depth", (depth_m.shape[1], depth_m.shape[0])), ("camera_info", (intrinsics.width, intrinsics.height))):
        if reason := aspect_ratio_mismatch(what, size, image_size):
            return Centroid3D(None, 0, reason)
    measured = depth_samples_in_mask(depth_m, mask)
    samples = measured if limits is None else measured[(measured >= limits.min_m) & (measured <= limits.max_m)]
    if samples.size == 0:
        outside = f" ({measured.size} values outside {limits.describe()})" if limits and measured.size else ""
        return Centroid3D(None, 0, f"no valid depth inside the mask{outside}")
    z = float(np.median(samples))
    intrinsics = intrinsics.scaled_to(mask.shape[1], mask.shape[0])
    return Centroid3D(deproject(centroid_px[0], centroid_px[1], z, intrinsics), int(samples.size), "ok")
