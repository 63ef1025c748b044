"""The tracker's small numeric helpers: exact answers on known inputs."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mllmseg_ros.engine.tracking.flow import fit_homography
from mllmseg_ros.engine.tracking.ops import coarse_positions


def test_fit_homography_recovers_a_known_homography_despite_outliers():
    rng = np.random.default_rng(0)
    earlier = rng.uniform(0, 320, (300, 2)).astype(np.float32)
    truth = np.array([[1.02, 0.05, 4.5], [-0.03, 0.98, -2.0], [1e-4, -2e-4, 1.0]])
    moved = cv2.perspectiveTransform(earlier[None], truth)[0]
    moved[:30] += rng.uniform(5, 20, (30, 2)).astype(np.float32)  # a tenth moves on its own
    fitted, inliers = fit_homography(earlier, moved, 0.5)
    np.testing.assert_allclose(fitted, truth, atol=1e-3)
    assert set(inliers) == set(range(30, 300))


def test_fit_homography_of_too_few_points_is_their_median_shift():
    earlier = np.float32([[10, 10], [20, 30], [40, 5]])
    fitted, inliers = fit_homography(earlier, earlier + np.float32([3, -1]), 0.5)
    np.testing.assert_allclose(fitted, [[1, 0, 3], [0, 1, -1], [0, 0, 1]], atol=1e-6)
    assert len(inliers) == 3


@pytest.mark.parametrize("shape", [(240, 320), (241, 321), (180, 320), (9, 8)])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_every_stride_pixel_of_a_map_in_coarse_units(shape, stride):
    values = np.random.default_rng(1).uniform(-50, 400, (*shape, 2)).astype(np.float32)
    picked = coarse_positions(values, stride)
    assert picked.dtype == np.float32
    assert np.array_equal(picked, values[::stride, ::stride] / np.float32(stride))
