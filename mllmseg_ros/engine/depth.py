"""3D centroids from a depth image and pinhole intrinsics. Pure numpy, no ROS."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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

    @property
    def valid(self) -> bool:
        return self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0


def depth_to_metres(depth: np.ndarray, scale: float = 0.001) -> np.ndarray:
    """uint16 depth (``scale`` metres per unit, 1 mm by default) or float depth in metres -> float32 metres."""
    if depth.dtype == np.uint16:
        return depth.astype(np.float32) * np.float32(scale)
    if depth.dtype in (np.float32, np.float64):
        return depth.astype(np.float32, copy=False)
    raise ValueError(f"depth must be uint16 or float, got {depth.dtype}")


def depth_samples_in_mask(depth_m: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Valid depth values (finite, > 0) under ``mask``. A depth image of another size is resized to the mask's size
    with nearest-neighbour sampling, so no depth is invented across object edges."""
    if depth_m.shape != mask.shape:
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
    mask: np.ndarray, centroid_px: tuple[float, float] | None, depth_m: np.ndarray | None, intrinsics: PinholeIntrinsics | None
) -> Centroid3D:
    """Median valid depth inside the mask, placed at the mask's pixel centroid."""
    if centroid_px is None:
        return Centroid3D(None, 0, "target not found")
    if depth_m is None:
        return Centroid3D(None, 0, "no depth image")
    if intrinsics is None or not intrinsics.valid:
        return Centroid3D(None, 0, "no camera_info")
    samples = depth_samples_in_mask(depth_m, mask)
    if samples.size == 0:
        return Centroid3D(None, 0, "no valid depth inside the mask")
    z = float(np.median(samples))
    intrinsics = intrinsics.scaled_to(mask.shape[1], mask.shape[0])
    return Centroid3D(deproject(centroid_px[0], centroid_px[1], z, intrinsics), int(samples.size), "ok")
