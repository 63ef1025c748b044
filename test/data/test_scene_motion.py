"""Moving-camera sequences: determinism, geometry that agrees with the camera pose, and the events tracking needs
(the target leaving the view, the target hidden by a passing box)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mllmseg_ros.data.scene_motion import CameraPose, PosedCamera, make_motion_sequence
from mllmseg_ros.data.scenes import Camera
from mllmseg_ros.engine.depth import PinholeIntrinsics, centroid_3d, depth_to_metres

SMALL = dict(width=160, height=120, seconds=2.0, fps=10.0)


def test_posed_camera_at_rest_is_the_scene_camera():
    points = np.array([[0.1, 0.05, 0.6], [-0.2, 0.0, 1.0], [0.0, 0.3, 1.5]])
    scene_camera, posed = Camera(320, 240), PosedCamera(320, 240)
    assert np.allclose(posed.to_optical(points), scene_camera.to_optical(points))
    assert np.allclose(posed.project(points), scene_camera.project(points)) and posed.k == scene_camera.k


@pytest.mark.parametrize("pose", [CameraPose(yaw=0.3), CameraPose(x=0.2, z=0.1, pitch=0.5), CameraPose(yaw=-0.2, y=0.4)])
def test_rays_to_world_inverts_to_optical(pose):
    camera = PosedCamera(pose=pose)
    directions = np.array([[0.1, -0.2, 1.0], [-0.3, 0.25, 1.0]])
    world_points = camera.rays_to_world(directions) * 2.0 + np.array([pose.x, pose.y, pose.z])
    assert np.allclose(camera.to_optical(world_points), directions * 2.0)


def test_yaw_moves_the_view_the_right_way():
    point = np.array([[0.0, 0.0, 1.0]])
    straight, turned_right = PosedCamera(), PosedCamera(pose=CameraPose(yaw=math.radians(10)))
    assert turned_right.project(point)[0, 0] < straight.project(point)[0, 0]  # the world moves left in the image


def test_same_seed_same_sequence():
    a, b = make_motion_sequence(3, "pan", **SMALL), make_motion_sequence(3, "pan", **SMALL)
    fa, fb = a.frame(7), b.frame(7)
    assert np.array_equal(fa.image, fb.image) and np.array_equal(fa.depth_mm, fb.depth_mm)
    assert a.expression == b.expression and a.target == b.target
    assert not np.array_equal(fa.image, make_motion_sequence(4, "pan", **SMALL).frame(7).image)


@pytest.mark.parametrize("kind", ["pan", "sideways", "forward", "occlusion"])
def test_frames_are_consistent(kind):
    sequence = make_motion_sequence(11, kind, **SMALL)
    intrinsics = PinholeIntrinsics.from_k(sequence.k, 160, 120)
    images, located_centres = [], 0
    for frame in sequence.frames():
        union = np.sum(frame.masks, axis=0)
        assert union.max() <= 1  # visible masks never overlap
        images.append(frame.image)
        for index, mask in enumerate(frame.masks):
            if not mask.any():
                continue
            assert len(np.unique(frame.depth_mm[mask])) == 1  # one depth per object, as in scenes.py
            # the true centre seen from this pose lies where the object's pixels are
            located = centroid_3d(mask, tuple(np.argwhere(mask)[:, ::-1].mean(0)), depth_to_metres(frame.depth_mm), intrinsics)
            if frame.in_view[index] > 0.99 and mask.sum() > 40:
                assert located.point is not None, (kind, frame.index, index, located.reason)  # one valid depth
                assert abs(located.point[0] - frame.centres[index][0]) < 0.06, (kind, frame.index, index)
                located_centres += 1
    assert located_centres >= len(images)  # the check above ran (at least one whole object a frame)
    assert not np.array_equal(images[0], images[len(images) // 2])  # the view changes


def test_exit_sequence_loses_the_target():
    sequence = make_motion_sequence(5, "exit", **SMALL)
    in_view = [frame.in_view[sequence.target] for frame in sequence.frames()]
    assert in_view[0] > 0.95 and in_view[-1] == 0.0
    assert all(later <= earlier + 0.02 for earlier, later in zip(in_view, in_view[1:]))  # it leaves and stays out


def test_occlusion_sequence_hides_the_target_for_a_while():
    sequence = make_motion_sequence(5, "occlusion", width=160, height=120, seconds=4.0, fps=10.0)
    first = sequence.frame(0).masks[sequence.target].sum()
    visible = [frame.masks[sequence.target].sum() / first for frame in sequence.frames()]
    assert min(visible) < 0.3 and visible[0] == 1.0 and visible[-1] > 0.5


def test_still_camera_and_still_objects_differ_by_sensor_noise_only():
    still = make_motion_sequence(2, "still", moving_fraction=0.0, **SMALL)
    a, b = still.frame(0), still.frame(5)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 6  # only sensor noise
    assert np.array_equal(a.depth_mm, b.depth_mm)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        make_motion_sequence(0, "spin")
