"""3D centroid maths with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from mllmseg_ros.engine.depth import PinholeIntrinsics, centroid_3d, deproject, depth_to_metres

K = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]


def box_mask(height=480, width=640):
    mask = np.zeros((height, width), bool)
    mask[200:280, 400:480] = True  # centroid (439.5, 239.5)
    return mask


def test_deprojection_of_a_known_point():
    intrinsics = PinholeIntrinsics.from_k(K, 640, 480)
    assert deproject(319.5, 239.5, 2.0, intrinsics) == pytest.approx((0.0, 0.0, 2.0))
    assert deproject(819.5, 239.5, 2.0, intrinsics) == pytest.approx((2.0, 0.0, 2.0))


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_median_depth_ignores_zeros_nans_and_infs(encoding):
    mask = box_mask()
    depth = np.full(mask.shape, 1.5, np.float32)
    depth[mask] = 2.0
    depth[200:210, 400:480] = 0.0  # holes
    if encoding == "32FC1":
        depth[210:215, 400:480] = np.nan
        depth[215:220, 400:480] = np.inf
        depth_m = depth
    else:
        depth_m = depth_to_metres((depth * 1000).astype(np.uint16))
    result = centroid_3d(mask, (439.5, 239.5), depth_m, PinholeIntrinsics.from_k(K, 640, 480))
    assert result.status == "ok"
    assert result.point == pytest.approx((120 * 2.0 / 500, 0.0, 2.0), abs=1e-6)
    expected_samples = 80 * 80 - 10 * 80 - (10 * 80 if encoding == "32FC1" else 0)
    assert result.samples == expected_samples


def test_depth_of_another_resolution_is_scaled():
    mask = box_mask()
    depth = np.full((240, 320), 3.0, np.float32)  # half resolution
    result = centroid_3d(mask, (439.5, 239.5), depth, PinholeIntrinsics.from_k(K, 640, 480))
    assert result.point[2] == pytest.approx(3.0) and result.samples == 80 * 80


def test_intrinsics_of_another_resolution_are_scaled():
    half = PinholeIntrinsics(250.0, 250.0, 159.5, 119.5, 320, 240)
    full = half.scaled_to(640, 480)
    assert (full.fx, full.fy, full.cx, full.cy) == pytest.approx((500.0, 500.0, 319.5, 239.5))


@pytest.mark.parametrize(
    "depth, intrinsics, centroid, status",
    [
        (None, PinholeIntrinsics.from_k(K, 640, 480), (1.0, 1.0), "no depth image"),
        (np.ones((480, 640), np.float32), None, (1.0, 1.0), "no camera_info"),
        (np.zeros((480, 640), np.float32), PinholeIntrinsics.from_k(K, 640, 480), (1.0, 1.0), "no valid depth"),
        (np.ones((480, 640), np.float32), PinholeIntrinsics.from_k([0.0] * 9, 640, 480), (1.0, 1.0), "no camera_info"),
        (np.ones((480, 640), np.float32), PinholeIntrinsics.from_k(K, 640, 480), None, "not found"),
    ],
)
def test_reasons_when_there_is_no_3d_point(depth, intrinsics, centroid, status):
    result = centroid_3d(box_mask(), centroid, depth, intrinsics)
    assert result.point is None and status in result.status


def test_bad_depth_dtype():
    with pytest.raises(ValueError, match="uint16 or float"):
        depth_to_metres(np.zeros((2, 2), np.int8))
