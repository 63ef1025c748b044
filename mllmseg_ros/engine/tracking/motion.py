"""The target's own motion: where the flow says its pixels went this frame, and where its look says they are.

A track carries a homography from the model's frame to the newest frame. Each frame it moves with the camera
(``flow.Step.camera``) unless the flow on the target says otherwise: an object nearer than the scene's dominant plane
(parallax) or one that moves by itself. Then the step is the motion fitted robustly to the target's own flow
samples (RANSAC: the part of it an occluder drags along is left out).

Dense flow is smooth: on a small plain object sliding over a textured table it follows the table, so each frame the
target's look is also searched for near where the flow put it (masked template matching on the grey frame, after the
exposure change): where it matches clearly better a little further on, the target moves there.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..boxes import widened_box
from .appearance import GREY, Reference
from .colours import snap
from .flow import FrameView, Step, dis_flow
from .ops import bounds, project, translation, warp_into

MAX_STEP_SAMPLES = 300  # of the target's pixels, for its step's fit: enough for a robust affine fit
MIN_STEP_SAMPLES = 12  # fewer (a target almost gone): the camera's step alone
TARGET_RANSAC_PX = 1.0  # a target pixel this far (flow pixels) from its fitted motion belongs to something else
CAMERA_AGREES_PX = 0.35  # median distance (flow pixels) at which the target's flow is the camera's own motion
OWN_SHIFT_PX = 0.75  # a matched shift smaller than this is the flow's own error, not motion
OWN_SHIFT_GAIN = 0.7  # ... and one that does not lower the match cost to this share of staying is noise


SNAP_MIN_GAIN = 0.02  # nats per target pixel a shift onto the target's colours must gain over staying put
ALIGN_MARGIN_PX = 6  # the aligned region reaches this far around the target (flow pixels): room for the flow
ALIGN_MIN_PX = 12  # a region smaller than this each way is too small for DIS
ALIGN_MIN_INLIERS = 0.5  # a fit agreeing with fewer of a target's pixels than this is not trusted (in sight)
ALIGN_MAX_PX = 6.0  # a correction moving the target farther than this is a mismatch, not drift


def step_of_target(reference: Reference, homography: np.ndarray, step: Step, size: tuple[int, int]) -> np.ndarray:
    """The target's motion from the previous frame to this one (3 x 3, flow pixels): the camera's, unless the flow
    on the target's pixels clearly says otherwise."""
    samples = reference.samples
    if len(samples) > MAX_STEP_SAMPLES:
        samples = samples[np.linspace(0, len(samples) - 1, MAX_STEP_SAMPLES).astype(int)]
    now = project(step.camera @ homography, samples)  # where the camera's motion alone puts them
    inside = (now[:, 0] >= 0) & (now[:, 0] <= size[0] - 1) & (now[:, 1] >= 0) & (now[:, 1] <= size[1] - 1)
    now = now[inside]
    if len(now) < MIN_STEP_SAMPLES:
        return step.camera
    backward = cv2.remap(step.backward, now[:, None, :], None, cv2.INTER_LINEAR)[:, 0, :]
    before = now + backward
    camera_error = np.median(np.linalg.norm(project(step.camera, before) - now, axis=1))
    if camera_error <= CAMERA_AGREES_PX:
        return step.camera
    fit, inliers = cv2.estimateAffine2D(before, now, method=cv2.RANSAC, ransacReprojThreshold=TARGET_RANSAC_PX,
                                        maxIters=100, refineIters=3)
    if fit is None or inliers is None or inliers.sum() < MIN_STEP_SAMPLES:
        return step.camera
    own = np.vstack([fit, [0.0, 0.0, 1.0]])
    own_error = np.median(np.linalg.norm(project(own, before) - now, axis=1))
    return own if own_error < camera_error else step.camera


def own_shift(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView, radius: int
              ) -> np.ndarray | None:
    """(dx, dy) flow pixels that move the target onto its look from the model's frame, searched within ``radius``;
    None where staying put matches as well (within the flow's error) or the search does not fit the image."""
    region = bounds(homography, reference.box, view.size)
    if region is None or radius < 1:
        return None
    x0, y0, x1, y1 = region
    width, height = view.size
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    weights = warp_into(reference.mask.astype(np.float32), homography, region)
    if weights.sum() < 6:
        return None
    template = warp_into(reference.grey, homography, region) * np.float32(gain @ GREY)
    # the search window, cut at the image's edge: (left, top) is how far it reaches before the region
    sx0, sy0, sx1, sy1 = widened_box((x0, y0, x1 - x0, y1 - y0), radius, (height, width))
    left, top = x0 - sx0, y0 - sy0
    search = view.grey[sy0:sy1, sx0:sx1].astype(np.float32)
    costs = cv2.matchTemplate(search, template, cv2.TM_SQDIFF, mask=weights)
    best, _, (bx, by), _ = cv2.minMaxLoc(costs)
    stay = float(costs[top, left])
    last_x, last_y = costs.shape[1] - 1, costs.shape[0] - 1
    if (bx == 0 and left == radius) or (by == 0 and top == radius) or (bx == last_x and x1 + radius <= width) \
            or (by == last_y and y1 + radius <= height):
        return None  # the best place is on the search's edge (not the image's): no optimum within it, stay put
    sub = np.zeros(2)
    for axis, (a, c) in enumerate(((costs[by, bx - 1], costs[by, bx + 1]) if 0 < bx < last_x else (best, best),
                                   (costs[by - 1, bx], costs[by + 1, bx]) if 0 < by < last_y else (best, best))):
        curvature = a - 2 * best + c
        if curvature > 1e-6:  # a parabola through the three costs around the best: sub-pixel shift
            sub[axis] = min(max(0.5 * (a - c) / curvature, -0.5), 0.5)
    shift = np.array([bx - left + sub[0], by - top + sub[1]])
    if np.abs(shift).max() <= OWN_SHIFT_PX or best > OWN_SHIFT_GAIN * stay:
        return None
    return shift


def aligned(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView,
            min_share: float = ALIGN_MIN_INLIERS) -> np.ndarray:
    """``homography`` corrected by aligning the target's look on the model's frame, warped by it, with the new frame:
    a dense flow between the two on the target's region, and the homography fitted robustly to it on the target's
    pixels (``shown``: those seen on the new frame, bool over the region ``bounds`` gives with ALIGN_MARGIN_PX). The
    motion composed frame by frame drifts by a fraction of a pixel per frame; this holds the mask on the target.
    Taken where at least ``min_share`` of the target's pixels agree with the fit (the rest may be hidden)."""
    region = bounds(homography, reference.box, view.size, margin=ALIGN_MARGIN_PX)
    if region is None:
        return homography
    x0, y0, x1, y1 = region
    if x1 - x0 < ALIGN_MIN_PX or y1 - y0 < ALIGN_MIN_PX:
        return homography
    luminance = float(gain @ GREY)
    expected = np.clip(warp_into(reference.grey, homography, region) * luminance, 0, 255).astype(np.uint8)
    # the target's textured pixels only: on a plain one the flow is spread from around it (its background, which
    # moves otherwise when the target moves by itself)
    target = warp_into(reference.textured, homography, region, cv2.INTER_NEAREST).view(bool)
    whole = warp_into(reference.mask, homography, region, cv2.INTER_NEAREST)
    target |= (whole & ~cv2.erode(whole, np.ones((5, 5), np.uint8))).view(bool)  # its outline moves with it
    ys, xs = np.nonzero(target)
    if len(xs) < MIN_STEP_SAMPLES:
        return homography
    if len(xs) > MAX_STEP_SAMPLES:
        keep = np.linspace(0, len(xs) - 1, MAX_STEP_SAMPLES).astype(int)
        ys, xs = ys[keep], xs[keep]
    # A new DIS object for each region: one reused on images of another size gives other (not reproducible) results
    flow = dis_flow(cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST), view.grey[y0:y1, x0:x1], expected)
    now = np.stack([xs, ys], axis=1).astype(np.float32)
    expected_at = now + flow[ys, xs]
    fit, inliers = cv2.estimateAffine2D(expected_at, now, method=cv2.RANSAC, ransacReprojThreshold=TARGET_RANSAC_PX,
                                        maxIters=100, refineIters=3)
    if fit is None or inliers is None or inliers.sum() < max(MIN_STEP_SAMPLES, min_share * len(xs)):
        return homography
    correction = translation(x0, y0) @ np.vstack([fit, [0.0, 0.0, 1.0]]) @ translation(-x0, -y0)
    centre = project(homography, reference.samples.mean(0, keepdims=True))
    if np.linalg.norm(project(correction, centre) - centre) > ALIGN_MAX_PX:
        return homography
    return correction @ homography


def snapped(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView, radius: int) -> np.ndarray:
    """``homography`` moved by at most ``radius`` (flow pixels) to where the carried shape covers the most of the
    target's colours (``colours.snap``), where they set it apart: the flow inside a plain target is spread from
    around it, its outline is where its colours end."""
    region = bounds(homography, reference.box, view.size)
    if not reference.colours.clean or region is None or radius < 1:
        return homography
    x0, y0, x1, y1 = region
    width, height = view.size
    pad = (max(0, radius - x0), max(0, radius - y0), max(0, x1 + radius - width), max(0, y1 + radius - height))
    shape = warp_into(reference.mask.astype(np.float32), homography, region)
    cx0, cy0, cx1, cy1 = widened_box((x0, y0, x1 - x0, y1 - y0), radius, (height, width))
    crop = view.colour[cy0:cy1, cx0:cx1]
    return shifted(homography, snap(reference.colours, shape, crop, gain, pad, radius, SNAP_MIN_GAIN))


def shifted(homography: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    return homography if shift is None else translation(float(shift[0]), float(shift[1])) @ homography
