"""The flow chain: each new frame measured against the previous one, and each frame the model is answering carried
along to the newest frame so that its answer, seconds later, lands where the target is now.

One dense optical flow per frame (OpenCV's DIS, on a grey image downscaled to ``FlowConfig.width``), from the new
frame back to the previous one. From it, fitted robustly (RANSAC) on samples spread over the whole frame, the
camera's own motion: a homography, exact for a planar scene or a camera that only turns, and the motion of the
scene's dominant plane otherwise; whatever else moves (an occluder, a hand) is an outlier. And the exposure's change:
per colour channel, the median brightness ratio of the same scene points on the two frames (auto-exposure and white
balance drift, which the flow itself does not mind but an appearance test would).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .config import FlowConfig
from .ops import coarse_positions, translation

CAMERA_SAMPLE_PX = 8  # the camera's motion is fitted on every 8th flow pixel each way (1200 samples on 320 x 240)
CAMERA_RANSAC_PX = 0.5  # a sample this far (flow pixels) from the fitted motion moves on its own
CAMERA_MIN_SAMPLES = 12  # below, the frame is too far out of the previous one to fit: only the median shift is taken
UNCLIPPED = (12.0, 243.0)  # grey levels: samples outside are near black or clipped and say nothing of the exposure
MIN_FLOW_SIDE = 32  # OpenCV's DIS crashes (segfault) on images shorter than this when they are wide: padded up to it
MAX_GAIN_STEP = 1.5  # an exposure change larger than this within one step is a fit gone wrong (a cut): ignored
ANSWER_FIT_PX = 1.5  # an answer's pixels, carried by the chain, farther than this from the fitted motion are not its
MIN_ANSWER_SAMPLES = 12  # fewer of an answer's pixels on the newest frame, or fewer fitting its motion: no motion


@dataclass
class FrameView:
    """A frame as the tracker uses it: as given (masks are published at this size) and at flow resolution."""

    image: np.ndarray  # H x W x 3 uint8 RGB (a grey H x W frame is taken as three equal channels)
    colour: np.ndarray  # h x w x 3 float32, flow resolution
    grey: np.ndarray  # h x w uint8, flow resolution

    @property
    def full_shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) at flow resolution."""
        return self.grey.shape[1], self.grey.shape[0]


def frame_view(image: np.ndarray, config: FlowConfig) -> FrameView:
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    height, width = image.shape[:2]
    scale = min(1.0, config.width / width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))  # DIS needs a few pixels to work on
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size != (width, height) else image
    return FrameView(image, small.astype(np.float32), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))


def dis_flow(dis, new: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """DIS flow from ``new`` to ``earlier`` (h x w uint8 each, one size): for each pixel of ``new``, the offset to where it
    is on ``earlier``. Images smaller than MIN_FLOW_SIDE either way are padded with their edge first (OpenCV 4-5 DIS
    crashes or raises on short wide images, e.g. 80 x 24) and the flow cut back to their size."""
    height, width = new.shape
    pad_y, pad_x = max(0, MIN_FLOW_SIDE - height), max(0, MIN_FLOW_SIDE - width)
    if pad_y or pad_x:
        new = cv2.copyMakeBorder(new, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        earlier = cv2.copyMakeBorder(earlier, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    return dis.calc(np.ascontiguousarray(new), np.ascontiguousarray(earlier), None)[:height, :width]


@dataclass
class Step:
    """How one frame follows another (flow pixels)."""

    backward: np.ndarray  # h x w x 2: for each new pixel, the offset to where it was on the earlier frame
    camera: np.ndarray  # 3 x 3: earlier pixel -> new pixel, the scene's dominant motion
    gain: np.ndarray  # (3,): new brightness / earlier brightness, per channel
    agreement: float = 1.0  # share of the flow samples the camera's motion explains (a cut to another scene: ~0.03)


class FlowField:
    """Dense flow between frames and what it says about the camera (one per tracker: DIS keeps buffers)."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self._dis = cv2.DISOpticalFlow_create(config.preset)
        self._samples: np.ndarray | None = None  # (N, 2) int flow pixels the camera's motion is fitted on

    def step(self, earlier: FrameView, new: FrameView) -> Step:
        if earlier.grey.shape != new.grey.shape:
            raise ValueError(f"frames of two sizes: {earlier.grey.shape} and {new.grey.shape}")
        backward = dis_flow(self._dis, new.grey, earlier.grey)
        samples = self._grid(new.grey.shape)
        at_new = samples.astype(np.float32)
        at_earlier = at_new + backward[samples[:, 1], samples[:, 0]]
        height, width = new.grey.shape
        inside = ((at_earlier[:, 0] >= 0) & (at_earlier[:, 0] <= width - 1)
                  & (at_earlier[:, 1] >= 0) & (at_earlier[:, 1] <= height - 1))
        camera, inliers = fit_homography(at_earlier[inside], at_new[inside], CAMERA_RANSAC_PX)
        used = np.flatnonzero(inside)[inliers]
        gain = brightness_ratio(earlier.colour, at_earlier[used], new.colour, at_new[used])
        return Step(backward, camera, gain, len(inliers) / max(1, int(inside.sum())))

    def _grid(self, shape: tuple[int, int]) -> np.ndarray:
        if self._samples is None or self._samples.max(0)[1] >= shape[0] or self._samples.max(0)[0] >= shape[1]:
            half = CAMERA_SAMPLE_PX // 2
            ys, xs = np.mgrid[half:shape[0]:CAMERA_SAMPLE_PX, half:shape[1]:CAMERA_SAMPLE_PX]
            self._samples = np.stack([xs.ravel(), ys.ravel()], axis=1)
        return self._samples


def fit_homography(earlier: np.ndarray, new: np.ndarray, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(3 x 3 earlier -> new, index of the samples that agree with it): a robust fit, or the median shift where too
    few samples are left (then all of them count)."""
    if len(earlier) >= CAMERA_MIN_SAMPLES:
        homography, inliers = cv2.findHomography(earlier, new, cv2.RANSAC, threshold_px, maxIters=500, confidence=0.995)
        if homography is not None and np.isfinite(homography).all() and abs(homography[2, 2]) > 1e-9:
            return homography / homography[2, 2], np.flatnonzero(inliers.ravel())
    if len(earlier) == 0:
        return np.eye(3), np.zeros(0, int)
    shift = np.median(new - earlier, axis=0)
    return translation(float(shift[0]), float(shift[1])), np.arange(len(earlier))


def brightness_ratio(earlier: np.ndarray, at_earlier: np.ndarray, new: np.ndarray, at_new: np.ndarray) -> np.ndarray:
    """Per channel, the median ratio of ``new`` to ``earlier`` (h x w x 3 float32) at corresponding points."""
    if len(at_new) < CAMERA_MIN_SAMPLES:
        return np.ones(3)
    then = earlier[np.round(at_earlier[:, 1]).astype(int), np.round(at_earlier[:, 0]).astype(int)]
    now = new[at_new[:, 1].astype(int), at_new[:, 0].astype(int)]
    gains = np.ones(3)
    for channel in range(3):
        usable = ((then[:, channel] > UNCLIPPED[0]) & (then[:, channel] < UNCLIPPED[1])
                  & (now[:, channel] > UNCLIPPED[0]) & (now[:, channel] < UNCLIPPED[1]))
        if usable.sum() >= CAMERA_MIN_SAMPLES:
            ratio = float(np.median(now[usable, channel] / then[usable, channel]))
            if 1 / MAX_GAIN_STEP < ratio < MAX_GAIN_STEP:
                gains[channel] = ratio
    return gains


@dataclass
class Pending:
    """A frame the model is answering, carried to the newest frame: where each newest pixel was on it, how the camera
    moved since, how the exposure changed."""

    source: FrameView
    stride: int  # map_xy holds every stride-th newest pixel: the answer needs only a sample of the target's pixels
    map_xy: np.ndarray | None = None  # (h / stride) x (w / stride) x 2: source position of newest pixel (j, i) * stride
    camera: np.ndarray = field(default_factory=lambda: np.eye(3))  # source pixel -> newest pixel
    gain: np.ndarray = field(default_factory=lambda: np.ones(3))  # newest brightness / source brightness
    steps: int = 0
    seen: dict = field(default_factory=dict)  # per target followed on the source frame, the share of it the tracker
    #                                           saw there (0: hidden or out of view)

    def start_at(self, grid: np.ndarray) -> None:
        """The source is the newest frame itself."""
        self.map_xy, self.steps = np.ascontiguousarray(grid[::self.stride, ::self.stride]), 0
        self.camera, self.gain = np.eye(3), np.ones(3)

    def carrying(self, mask: np.ndarray) -> np.ndarray | None:
        """The homography that best carries ``mask`` (an answer on the source frame, flow pixels) as the chain moved
        its pixels (None: too few of them are on the newest frame)."""
        source = self.map_xy
        height, width = mask.shape
        columns, rows = np.round(source[..., 0]).astype(int), np.round(source[..., 1]).astype(int)
        inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
        on_target = np.zeros(inside.shape, bool)
        on_target[inside] = mask[rows[inside], columns[inside]] > 0
        ys, xs = np.nonzero(on_target)
        if len(xs) < MIN_ANSWER_SAMPLES:
            return None
        newest = np.stack([xs, ys], axis=1).astype(np.float32) * self.stride
        homography, inliers = fit_homography(source[ys, xs].astype(np.float32), newest, ANSWER_FIT_PX)
        return homography if len(inliers) >= MIN_ANSWER_SAMPLES else None

    def advance(self, step: Step, grid: np.ndarray, flow: FlowField, new: FrameView) -> None:
        """One more frame: compose ``step`` (whose earlier frame was the newest so far) onto the chain."""
        if self.map_xy is None:  # the source frame was never a tracker frame: one direct step from it
            direct = flow.step(self.source, new)
            self.map_xy = np.ascontiguousarray((grid + direct.backward)[::self.stride, ::self.stride])
            self.camera, self.gain = direct.camera, direct.gain
        else:  # new pixel -> previous frame (the step) -> source (the old map, sampled there)
            positions = coarse_positions(grid + step.backward, self.stride)
            self.map_xy = cv2.remap(self.map_xy, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            self.camera, self.gain = step.camera @ self.camera, self.gain * step.gain
        self.steps += 1
