"""Which depth image and camera model give a colour frame its 3D answer, and when none may.

A 3D centroid reads the depth at the mask's pixels, so the depth image must be registered to the colour image: the
same camera (frame_id), pixel for pixel (same aspect; a scaled size is fine). A RealSense's raw depth beside its
colour stream is neither, and gives plausible, wrong points. So does a depth image paired by a stamp that many depth
images share (stamps all 0, a paused /clock), or 32FC1 depth in millimetres. Each of these gives 2D results with the
reason in ``centroid_3d_status`` instead of a point.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..engine.depth import DepthLimits, float_depth_unit_problem
from .conversions import depth_image_to_metres, intrinsics_from_camera_info, stamp_seconds

if TYPE_CHECKING:
    from .buffers import Frame
    from .camera_stream import CameraStream
    from .params import NodeSettings

NOT_REGISTERED = "depth is not registered to the colour camera"


def same_frame(a: str, b: str) -> bool:
    """tf2 ignores a leading slash in frame ids."""
    return a.lstrip("/") == b.lstrip("/")


def registration_problem(image_frame: str, depth_frame: str, setting: str) -> str:
    """Why depth in ``depth_frame`` must not be read at the colour image's pixels ("" when it may), under the
    ``depth_registered`` setting (auto: the frame ids say it; true: the user says it is; false: never)."""
    if setting == "true" or (setting == "auto" and same_frame(image_frame, depth_frame)):
        return ""
    if setting == "false":
        return f"{NOT_REGISTERED} (depth_registered: false)"
    return (f"{NOT_REGISTERED}: the depth image's frame_id {depth_frame!r} is not the colour image's "
            f"{image_frame!r}. Use depth aligned to the colour image (RealSense: aligned_depth_to_color; docs/node.md, "
            "'Cameras'), or set depth_registered:=true if it is registered")


def camera_info_problem(image_frame: str, info_frame: str, setting: str) -> str:
    """Why a camera_info is not the colour camera's ("" when it may be): K must be the camera of the pixels."""
    if setting != "auto" or not info_frame or not image_frame or same_frame(image_frame, info_frame):
        return ""
    return (f"camera_info is of frame_id {info_frame!r}, not the colour image's {image_frame!r}: remap camera_info "
            "to the colour camera's")


def stamp_problem(frame: "Frame", depth_stamps_alike: int, depth_stamp: float) -> str:
    """Why the frame's stamp cannot pick its depth image ("" when it can): it repeats the previous frame's, or the
    paired depth image's stamp is shared by others."""
    if frame.stamp_repeated:
        return (f"image stamps repeat ({frame.stamp:.3f} s, as the frame before): depth cannot be paired by stamp "
                "(check the camera driver's clock, or /clock with use_sim_time)")
    if depth_stamps_alike > 1:
        return (f"{depth_stamps_alike} depth images share the stamp {depth_stamp:.3f} s: cannot tell which one "
                "belongs to this frame (check the depth driver's clock, or /clock with use_sim_time)")
    return ""


def depth_in_limits(depth_m: np.ndarray, limits: DepthLimits) -> np.ndarray:
    """``depth_m`` with every value outside ``limits`` made NaN (no measurement), in place."""
    with np.errstate(invalid="ignore"):
        depth_m[(depth_m < limits.min_m) | (depth_m > limits.max_m)] = np.nan
    return depth_m


def depth_for(stream: "CameraStream", frame: "Frame", settings: "NodeSettings"):
    """(depth in metres within the depth limits or None, intrinsics or None, reason: "" when a 3D answer may be
    computed, else why not) for ``frame``."""
    if not settings.use_depth:
        return None, None, "depth disabled"
    tolerance = settings.depth_sync_tolerance_s
    # Depth images are offered to a frame only while it waits in the slot or is in flight; its own one may have
    # come after a newer frame took the slot (tracking, a late depth stream), or it never waited (a service request).
    if (nearest := stream.depth.nearest(frame.stamp)) is not None:
        frame.offer_depth(*nearest)
    msg, gap = frame.paired_depth(tolerance)
    camera_info = frame.camera_info or stream.camera_info
    intrinsics, info_reason = None, "no camera_info"
    if camera_info is not None:
        try:
            intrinsics, info_reason = intrinsics_from_camera_info(camera_info), ""
        except ValueError as exc:  # received, but no camera model can be made of it
            info_reason = f"camera_info unusable: {exc}"
        image_frame = frame.header.frame_id
        info_reason = info_reason or camera_info_problem(image_frame, camera_info.header.frame_id, settings.depth_registered)
    if msg is None:
        if frame.depth is None and len(stream.depth) == 0:
            return None, intrinsics, "no depth image"
        return None, intrinsics, f"no depth image within the stamp tolerance of {tolerance:g} s (nearest {gap:.3f} s away)"
    depth_stamp = stamp_seconds(msg.header)
    problem = (registration_problem(frame.header.frame_id, msg.header.frame_id, settings.depth_registered)
               or stamp_problem(frame, stream.depth.count_at(depth_stamp), depth_stamp) or info_reason)
    if problem:
        stream.depth_problem(problem)
        return None, None, problem
    limits = DepthLimits(settings.min_depth_m, settings.max_depth_m)
    try:
        depth_m = depth_image_to_metres(msg, settings.depth_scale)
        if msg.encoding == "32FC1" and (units := float_depth_unit_problem(depth_m, limits)):
            raise ValueError(units)
    except ValueError as exc:
        stream.depth_problem(f"bad depth image: {exc}")
        return None, intrinsics, f"bad depth image: {exc}"
    return depth_in_limits(depth_m, limits), intrinsics, ""
