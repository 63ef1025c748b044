"""The tracker's small numeric helpers: exact answers on known inputs."""
from __future__ import annotations

import numpy as np
import pytest

from mllmseg_ros.engine.tracking_ops import affine_fit, coarse_positions


def test_affine_fit_recovers_a_known_affine_map():
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 320, 200), rng.integers(0, 240, 200)
    truth = np.array([[1.02, 0.05], [-0.03, 0.98], [4.5, -2.0]])  # [x, y, 1] @ truth
    values = np.stack([xs, ys, np.ones_like(xs)], axis=1) @ truth
    np.testing.assert_allclose(affine_fit(xs, ys, values), truth, atol=1e-9)


def test_affine_fit_of_points_on_a_line_is_finite():
    xs = np.arange(20)
    ys = np.full(20, 7)  # one row: the y-term is not determined
    fit = affine_fit(xs, ys, np.stack([xs + 3.0, ys - 1.0], axis=1))
    assert np.isfinite(fit).all()
    np.testing.assert_allclose(np.stack([xs, ys, np.ones_like(xs)], axis=1) @ fit, np.stack([xs + 3.0, ys - 1.0], axis=1),
                               atol=1e-9)


@pytest.mark.parametrize("shape", [(240, 320), (241, 321), (180, 320), (9, 8)])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_every_stride_pixel_of_a_map_in_coarse_units(shape, stride):
    values = np.random.default_rng(1).uniform(-50, 400, (*shape, 2)).astype(np.float32)
    picked = coarse_positions(values, stride)
    assert picked.dtype == np.float32
    assert np.array_equal(picked, values[::stride, ::stride] / np.float32(stride))
