"""3D centroid maths with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mllmseg_ros.engine.depth import PinholeIntrinsics, centroid_3d, deproject, depth_samples_in_mask, depth_to_metres

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
        (np.ones((480, 640), np.float32), PinholeIntrinsics.from_k([0.0] * 9, 640, 480), (1.0, 1.0), "camera_info unusable: fx = 0, fy = 0"),
        (np.ones((480, 640), np.float32), PinholeIntrinsics.from_k(K, 640, 480), None, "not found"),
    ],
)
def test_reasons_when_there_is_no_3d_point(depth, intrinsics, centroid, status):
    result = centroid_3d(box_mask(), centroid, depth, intrinsics)
    assert result.point is None and status in result.status


def test_bad_depth_dtype():
    with pytest.raises(ValueError, match="uint16 or float"):
        depth_to_metres(np.zeros((2, 2), np.int8))


@pytest.mark.parametrize("fx, reason", [(math.inf, "fx = inf"), (math.nan, "fx = nan"), (-500.0, "fx = -500")])
def test_unusable_intrinsics_give_no_point_and_say_why(fx, reason):
    intrinsics = PinholeIntrinsics(fx, 500.0, 319.5, 239.5, 640, 480)
    result = centroid_3d(box_mask(), (439.5, 239.5), np.ones((480, 640), np.float32), intrinsics)
    assert result.point is None and result.status.startswith("camera_info unusable: ") and reason in result.status


@pytest.mark.parametrize(
    "intrinsics, reason",
    [
        (PinholeIntrinsics(500.0, 500.0, math.nan, 239.5, 640, 480), "cx = nan"),
        (PinholeIntrinsics(500.0, 500.0, 319.5, 239.5, 0, 0), "image size 0x0"),
    ],
)
def test_intrinsics_problems(intrinsics, reason):
    assert reason in intrinsics.problem() and not intrinsics.valid
    assert PinholeIntrinsics.from_k(K, 640, 480).problem() == ""


def test_depth_of_another_aspect_ratio_is_refused_not_stretched():
    mask = box_mask()
    depth = np.full((360, 640), 2.0, np.float32)
    result = centroid_3d(mask, (439.5, 239.5), depth, PinholeIntrinsics.from_k(K, 640, 480))
    assert result.point is None and result.samples == 0
    assert result.status == "depth 640x360 has another aspect ratio than the colour image 640x480"
    with pytest.raises(ValueError, match="depth 640x360 has another aspect ratio"):
        depth_samples_in_mask(depth, mask)


def test_depth_of_nearly_the_same_aspect_ratio_is_scaled():
    # 848x480 depth for a 1280x720 image (a common RealSense pairing): 0.6 % apart, within the tolerance.
    mask = np.zeros((720, 1280), bool)
    mask[300:400, 600:700] = True
    intrinsics = PinholeIntrinsics(900.0, 900.0, 639.5, 359.5, 1280, 720)
    result = centroid_3d(mask, (649.5, 349.5), np.full((480, 848), 1.25, np.float32), intrinsics)
    assert result.status == "ok" and result.point[2] == pytest.approx(1.25)


def test_camera_info_of_another_aspect_ratio_is_refused():
    intrinsics = PinholeIntrinsics(500.0, 500.0, 319.5, 179.5, 640, 360)
    result = centroid_3d(box_mask(), (439.5, 239.5), np.ones((480, 640), np.float32), intrinsics)
    assert result.point is None
    assert result.status == "camera_info 640x360 has another aspect ratio than the colour image 640x480"


def test_16_bit_no_return_codes_are_no_distance():
    """65535 is a no-return code in some drivers' raw streams, not 65.5 m (nor is 0 a distance)."""
    raw = np.full((480, 640), 65535, np.uint16)
    raw[:, :320] = 0
    result = centroid_3d(np.ones((480, 640), bool), (319.5, 239.5), depth_to_metres(raw), PinholeIntrinsics.from_k(K, 640, 480))
    assert result.point is None and result.status == "no valid depth inside the mask"
    raw[200:280, 400:480] = 1250
    result = centroid_3d(box_mask(), (439.5, 239.5), depth_to_metres(raw), PinholeIntrinsics.from_k(K, 640, 480))
    assert result.point[2] == pytest.approx(1.25) and result.samples == 80 * 80


def test_depth_limits_leave_out_impossible_values_and_say_so():
    from mllmseg_ros.engine.depth import DepthLimits

    depth = np.full((480, 640), 700.0, np.float32)  # millimetres read as metres
    result = centroid_3d(box_mask(), (439.5, 239.5), depth, PinholeIntrinsics.from_k(K, 640, 480), DepthLimits(0.1, 20.0))
    assert result.point is None and result.status == "no valid depth inside the mask (6400 values outside 0.1-20 m)"
    depth[200:240, 400:480] = 0.8  # half the mask measured, the rest beyond the far limit
    result = centroid_3d(box_mask(), (439.5, 239.5), depth, PinholeIntrinsics.from_k(K, 640, 480), DepthLimits(0.1, 20.0))
    assert result.point[2] == pytest.approx(0.8) and result.samples == 40 * 80


@pytest.mark.parametrize("values, millimetres", [
    ((590.0, 797.0), True),  # the table seen from 0.59-0.80 m, in mm
    ((0.59, 0.797), False),  # the same in metres
    ((25.0, 40.0), False),  # far, but not a thousandth of it: an outdoor scene in metres
    ((30000.0, 60000.0), False),  # a thousandth is beyond the far limit too: not plausibly millimetres
])
def test_float_depth_in_millimetres_is_recognised(values, millimetres):
    from mllmseg_ros.engine.depth import DepthLimits, float_depth_unit_problem

    depth = np.linspace(*values, 640 * 480, dtype=np.float32).reshape(480, 640)
    depth[::7, ::5] = np.nan  # holes do not change the verdict
    problem = float_depth_unit_problem(depth, DepthLimits(0.1, 20.0))
    assert bool(problem) is millimetres
    if millimetres:
        assert "looks like millimetres" in problem



# A camera as drivers report them: fx != fy, the principal point away from the image centre (K as in CameraInfo).
OFF_CENTRE_K = [600.0, 0.0, 330.0, 0.0, 400.0, 220.0, 0.0, 0.0, 1.0]


def off_centre_mask():
    mask = np.zeros((480, 640), bool)
    mask[100:140, 480:540] = True  # rows 100..139, columns 480..539: centroid (509.5, 119.5), up and to the right
    return mask


def test_an_off_centre_target_seen_by_a_camera_with_fx_not_fy_to_the_millimetre():
    """Worked by hand: x = (509.5 - 330) * 2 / 600 = 0.598333 m, y = (119.5 - 220) * 2 / 400 = -0.5025 m (above the
    optical axis), z = 2 m. y uses fy and cy (k[4], k[5]); x uses fx and cx (k[0], k[2])."""
    depth = np.full((480, 640), 3.0, np.float32)
    depth[off_centre_mask()] = 2.0
    intrinsics = PinholeIntrinsics.from_k(OFF_CENTRE_K, 640, 480)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (600.0, 400.0, 330.0, 220.0)
    result = centroid_3d(off_centre_mask(), (509.5, 119.5), depth, intrinsics)
    assert result.status == "ok" and result.samples == 40 * 60
    assert result.point == pytest.approx((0.598333, -0.5025, 2.0), abs=5e-4)
    # the same target 1.25 m away: x and y scale with the depth
    assert deproject(509.5, 119.5, 1.25, intrinsics) == pytest.approx((0.373958, -0.3140625, 1.25), abs=5e-4)
    # below and left of the principal point: both signs flip
    assert deproject(130.0, 420.0, 3.0, intrinsics) == pytest.approx((-1.0, 1.5, 3.0), abs=5e-4)


def test_a_half_resolution_camera_info_and_depth_give_the_full_resolution_point():
    """camera_info and depth of a 320 x 240 stream for a 640 x 480 colour image (the principal point scaled about
    pixel centres: (330 + 0.5) / 2 - 0.5 = 164.75): the same point as with the full-resolution K."""
    half = PinholeIntrinsics.from_k([300.0, 0.0, 164.75, 0.0, 200.0, 109.75, 0.0, 0.0, 1.0], 320, 240)
    full = half.scaled_to(640, 480)
    assert (full.fx, full.fy, full.cx, full.cy, full.width, full.height) == (600.0, 400.0, 330.0, 220.0, 640, 480)
    depth = np.full((240, 320), 2.0, np.float32)
    result = centroid_3d(off_centre_mask(), (509.5, 119.5), depth, half)
    assert result.point == pytest.approx((0.598333, -0.5025, 2.0), abs=5e-4)


def test_depth_is_scaled_without_inventing_values_across_an_edge():
    """Nearest-neighbour scaling: a half-resolution depth image of a 1 m object before a 3 m wall gives only 1 m and
    3 m under a mask across the edge (a blend would put 2 m where nothing is)."""
    depth = np.full((240, 320), 3.0, np.float32)
    depth[:, :160] = 1.0
    mask = np.zeros((480, 640), bool)
    mask[:, 300:340] = True
    assert set(np.unique(depth_samples_in_mask(depth, mask)).tolist()) == {1.0, 3.0}


def test_16_bit_depth_in_metres_of_any_scale_as_float32():
    raw = np.array([[0, 4000, 65535, 1]], np.uint16)
    metres = depth_to_metres(raw, scale=0.00025)  # a quarter millimetre per unit (RealSense L515)
    assert metres.dtype == np.float32
    assert metres.tolist() == [[0.0, 1.0, 0.0, pytest.approx(0.00025)]]  # 65535 is no return: 0, not NaN
    assert depth_to_metres(np.array([[1.5, np.nan]], np.float64)).dtype == np.float32


@pytest.mark.parametrize("fx, fy, usable", [(0.5, 0.5, True), (500.0, 0.0, False), (0.0, 500.0, False)])
def test_any_positive_focal_length_is_usable(fx, fy, usable):
    assert PinholeIntrinsics(fx, fy, 1.0, 1.0, 4, 4).valid is usable


@pytest.mark.parametrize("width, height, usable", [(640, 0, False), (0, 480, False), (1, 1, True), (-1, 480, False)])
def test_intrinsics_need_the_size_they_refer_to(width, height, usable):
    intrinsics = PinholeIntrinsics(500.0, 500.0, 0.0, 0.0, width, height)
    assert intrinsics.valid is usable
    if not usable:
        assert intrinsics.problem() == f"image size {width}x{height}: the size the intrinsics refer to is needed to scale them"


def test_every_bad_number_of_the_principal_point_is_named():
    intrinsics = PinholeIntrinsics(500.0, 500.0, math.nan, math.inf, 640, 480)
    assert intrinsics.problem() == "cx = nan, cy = inf: the principal point must be finite"
    intrinsics = PinholeIntrinsics(500.0, 500.0, 0.0, math.nan, 640, 480)
    assert intrinsics.problem() == "cy = nan: the principal point must be finite"


@pytest.mark.parametrize("centroid, depth, intrinsics, status", [
    (None, np.ones((480, 640), np.float32), PinholeIntrinsics.from_k(K, 640, 480), "target not found"),
    ((1.0, 1.0), None, PinholeIntrinsics.from_k(K, 640, 480), "no depth image"),
    ((1.0, 1.0), np.ones((480, 640), np.float32), None, "no camera_info"),
    ((1.0, 1.0), np.ones((480, 640), np.float32), PinholeIntrinsics(0.0, 500.0, 1.0, 1.0, 640, 480),
     "camera_info unusable: fx = 0: the focal lengths must be finite and positive"),
    ((1.0, 1.0), np.zeros((480, 640), np.float32), PinholeIntrinsics.from_k(K, 640, 480), "no valid depth inside the mask"),
])
def test_no_point_has_no_samples_and_an_exact_reason(centroid, depth, intrinsics, status):
    from mllmseg_ros.engine.depth import DepthLimits

    for limits in (None, DepthLimits()):  # limits add a count only when values were measured outside them
        result = centroid_3d(box_mask(), centroid, depth, intrinsics, limits)
        assert (result.point, result.samples, result.status) == (None, 0, status)


def test_depth_limits_are_inclusive():
    from mllmseg_ros.engine.depth import DepthLimits

    for value in (0.25, 4.0):
        depth = np.full((480, 640), value, np.float32)
        result = centroid_3d(box_mask(), (439.5, 239.5), depth, PinholeIntrinsics.from_k(K, 640, 480), DepthLimits(0.25, 4.0))
        assert result.status == "ok" and result.point[2] == value


def test_millimetres_at_the_limits_are_recognised_and_the_warning_says_what_to_do():
    """A table 0.1 m away and a wall 20 m away, written in millimetres (100, 20000): both beyond the far limit, and a
    thousandth of each within the limits, inclusive."""
    from mllmseg_ros.engine.depth import DepthLimits, float_depth_unit_problem

    for value in (100.0, 20000.0):
        problem = float_depth_unit_problem(np.full((480, 640), value, np.float32), DepthLimits(0.1, 20.0))
        assert problem == (f"32FC1 depth looks like millimetres (median {value:g}; float depth must be metres, REP "
                           "118): publish 16UC1 millimetres or 32FC1 metres")


def test_holes_do_not_decide_the_depth_unit():
    """No-return pixels (0, NaN, inf) are left out before the typical value is taken: millimetres behind 70 % holes
    are still millimetres, and an image of holes only says nothing."""
    from mllmseg_ros.engine.depth import DepthLimits, float_depth_unit_problem

    limits = DepthLimits(0.1, 20.0)
    for hole in (0.0, np.nan, np.inf):
        depth = np.full((480, 640), 750.0, np.float32)
        depth[: int(480 * 0.7)] = hole
        assert "looks like millimetres" in float_depth_unit_problem(depth, limits), hole
    assert float_depth_unit_problem(np.full((480, 640), np.nan, np.float32), limits) == ""
    assert float_depth_unit_problem(np.zeros((480, 640), np.float32), limits) == ""


def test_a_small_sparse_depth_image_is_read_at_every_pixel():
    """64 x 48 (fewer pixels than the sample): every pixel is read, so one measured pixel at an odd index decides."""
    from mllmseg_ros.engine.depth import DepthLimits, float_depth_unit_problem

    depth = np.full((48, 64), np.nan, np.float32)
    depth[0, 1] = 800.0
    assert "looks like millimetres" in float_depth_unit_problem(depth, DepthLimits(0.1, 20.0))

def test_near_metres_with_far_outliers_are_not_millimetres():
    """A table 0.5 m away in metres, with a minority of stray far values (150, past the far limit): the median is
    taken over every measured value, not only those above 1, so the image is metres (values under 1 m count)."""
    from mllmseg_ros.engine.depth import DepthLimits, float_depth_unit_problem

    depth = np.full((480, 640), 0.5, np.float32)
    depth[: int(480 * 0.3)] = 150.0
    assert float_depth_unit_problem(depth, DepthLimits(0.1, 20.0)) == ""
    depth[: int(480 * 0.7)] = 150.0  # the far values are now the typical value: millimetres (0.15 m)
    assert "looks like millimetres" in float_depth_unit_problem(depth, DepthLimits(0.1, 20.0))
