"""Real photographs seen by a moving hand-held camera: tracking ground truth on image content nobody here drew.

A wall of photos (the target's photo in the middle, scikit-image's other bundled photos around it) is a plane, and a
camera looks at it along a path: pan, zoom, roll, perspective, hand-held shake, or a pan that takes the target out of
the view and back. Every frame is the wall warped by a known homography, so the target's mask on its photo
(``photo_targets.py``), warped the same way, is the truth. On top of the geometry, what a real camera adds: motion
blur (sub-frames averaged over the exposure), auto-exposure drift of +-20% and a white-balance drift (``drift``),
sensor noise, JPEG. In ``occlusion`` and ``own_colour`` sequences a board passes in front of the target and hides it
entirely for a while; in ``own_colour`` the board has the target's own colour.

Frames are rendered one at a time (``frames()``); the same seed always gives the same sequence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .photo_targets import PHOTOS, TARGETS, TEXTURES, PhotoTarget, load_photo, target_mask

KINDS = ("pan", "zoom", "rotate", "perspective", "shake", "exit", "occlusion", "own_colour")
GAP_PX = 12  # wall between the photos
SUB_FRAMES = 4  # motion blur: sub-frames averaged over the exposure
EXPOSURE = 0.5  # of the frame interval
OTHER_COLOURS = ((40, 70, 190), (232, 230, 222), (45, 45, 50), (40, 150, 60))  # occluders that are not the target's


@dataclass
class PhotoFrame:
    index: int
    time_s: float
    image: np.ndarray  # H x W x 3 uint8 RGB
    mask: np.ndarray  # H x W bool: the target's visible pixels
    in_view: float  # fraction of the target inside the image (before occlusion)
    visible: float  # fraction of the target visible (inside the image and not hidden)


@dataclass(frozen=True)
class _Board:
    """A board in front of the camera: it moves across the image on its own, unaffected by the camera's motion."""

    angle: float  # of its motion, radians
    centre_at_0: tuple[float, float]
    velocity: float  # pixels per second along ``angle``
    colour: tuple[int, int, int]
    texture: np.ndarray = field(repr=False)  # brightness factor over the board, fixed to it
    shape: np.ndarray = field(repr=False)  # 1 on the board (a rounded rectangle), across x along, float32


@dataclass
class PhotoSequence:
    target: PhotoTarget
    kind: str
    seed: int
    fps: float
    frame_count: int
    width: int
    height: int
    drift: bool
    _wall: np.ndarray = field(repr=False)
    _truth: np.ndarray = field(repr=False)  # the target's mask on the wall
    _path: dict = field(repr=False)
    _board: _Board | None = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return f"{self.target.photo}-{self.target.name.replace(' ', '_')}-{self.kind}-{self.seed}"

    @property
    def expression(self) -> str:
        return self.target.expression

    def frames(self):
        for index in range(self.frame_count):
            yield self.frame(index)

    def frame(self, index: int) -> PhotoFrame:
        time_s = index / self.fps
        size = (self.width, self.height)
        exposure = EXPOSURE / self.fps
        image = np.zeros((self.height, self.width, 3), np.float32)
        for k in range(SUB_FRAMES):  # motion blur: the camera and the board move during the exposure
            t = time_s + exposure * ((k + 0.5) / SUB_FRAMES - 0.5)
            sub = cv2.warpPerspective(self._wall, self._homography(t), size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REFLECT)
            cv2.accumulate(sub, image)
            if self._board is not None:
                self._draw_board(image, t, sub)
        image *= np.float32(1 / SUB_FRAMES)
        rng = np.random.default_rng((self.seed, index, 7))
        if self.drift:  # auto-exposure and white balance wander (highlights clip)
            path = self._path
            gain = 1 + 0.2 * math.sin(2 * math.pi * time_s / path["exposure_period"] + path["exposure_phase"])
            balance = [gain * (1 + 0.07 * math.sin(2 * math.pi * time_s / path["balance_period"] + phase))
                       for phase in path["balance_phase"]]
            cv2.multiply(image, (*balance, 0.0), dst=image)
        # sensor noise: read noise and shot noise growing with the signal
        sigma = cv2.sqrt(cv2.add(cv2.multiply(np.clip(image, 0, 255), 0.25), 4.0))
        image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
        image = np.clip(image, 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self._path["jpeg_quality"]])
        image = np.ascontiguousarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1])
        mask, in_view, total = self._truth_at(time_s)
        if self._board is not None:
            mask &= self._board_cover(time_s)[0] < 0.5
        return PhotoFrame(index, time_s, image, mask, in_view, float(mask.sum()) / total if total else 0.0)

    # --- geometry -----------------------------------------------------------------------------------------------
    def _homography(self, t: float) -> np.ndarray:
        """3 x 3 map from output pixels to wall pixels at time ``t``."""
        p = self._path
        cx, cy, scale, roll, tilt_x, tilt_y = _view(p, self.kind, t)
        out_centre = np.array([[1, 0, -(self.width - 1) / 2], [0, 1, -(self.height - 1) / 2], [0, 0, 1]])
        perspective = np.array([[1, 0, 0], [0, 1, 0], [tilt_x, tilt_y, 1]])
        c, s = math.cos(roll), math.sin(roll)
        similarity = np.array([[scale * c, -scale * s, cx], [scale * s, scale * c, cy], [0, 0, 1]])
        return similarity @ perspective @ out_centre

    def _truth_at(self, t: float) -> tuple[np.ndarray, float, float]:
        """(the target's mask in the image, the fraction of it inside the image, its whole area in image pixels)."""
        homography = self._homography(t)
        warped = cv2.warpPerspective(self._truth.view(np.uint8) * np.uint8(255), homography, (self.width, self.height),
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP) >= 128
        points = self._path["truth_points"]
        projected = cv2.perspectiveTransform(points[:, None, :], np.linalg.inv(homography))[:, 0]
        inside = ((projected[:, 0] >= -0.5) & (projected[:, 0] < self.width - 0.5)
                  & (projected[:, 1] >= -0.5) & (projected[:, 1] < self.height - 0.5))
        in_view = float(inside.mean())
        total = float(warped.sum()) / in_view if in_view > 0 else 0.0
        return warped, in_view, total

    def _board_cover(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(the board's coverage 0..1 of each image pixel at time ``t``, its board-to-image affine map)."""
        board = self._board
        length, across = board.shape.shape[1], board.shape.shape[0]
        c, s = math.cos(board.angle), math.sin(board.angle)
        x, y = board.centre_at_0[0] + board.velocity * t * c, board.centre_at_0[1] + board.velocity * t * s
        # board pixel (u, v) -> image: rotated by the angle about the board's centre, then moved to (x, y)
        matrix = np.float32([[c, -s, x - c * length / 2 + s * across / 2], [s, c, y - s * length / 2 - c * across / 2]])
        return cv2.warpAffine(board.shape, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR), matrix

    def _draw_board(self, image: np.ndarray, t: float, sub: np.ndarray) -> None:
        """Replace this sub-frame's share of ``image`` (``sub`` was added) by the board where it covers it."""
        cover, matrix = self._board_cover(t)
        x, y, w, h = cv2.boundingRect((cover > 0).view(np.uint8))
        if w == 0:
            return
        region = (slice(y, y + h), slice(x, x + w))
        shading = cv2.warpAffine(self._board.texture, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR)[region]
        board = shading[..., None] * np.float32(self._board.colour)
        weight = cover[region][..., None]
        image[region] += weight * (board - sub[region].astype(np.float32))


def _smooth_step(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _view(p: dict, kind: str, t: float) -> tuple[float, float, float, float, float, float]:
    """(wall x, wall y of the view's centre, wall pixels per image pixel, roll, perspective x, y) at time ``t``."""
    scale, roll, tilt_x, tilt_y = p["scale"], 0.0, 0.0, 0.0
    dx, dy = 0.0, 0.0  # image pixels the view moves by
    wave = [math.sin(2 * math.pi * t / period + phase) for period, phase in zip(p["periods"], p["phases"])]
    if kind == "pan":
        dx, dy = p["amplitude"] * wave[0], 0.4 * p["amplitude"] * wave[1]
    elif kind == "zoom":
        scale *= math.exp(0.45 * wave[0])
        dx, dy = 25 * wave[1], 15 * wave[2]
    elif kind == "rotate":
        roll = math.radians(p["roll_deg"]) * wave[0]
        dx = 30 * wave[1]
    elif kind == "perspective":
        tilt_x, tilt_y = 0.0006 * wave[0], 0.0005 * wave[1]
        dx, dy = 50 * wave[2], 20 * wave[1]
    elif kind == "exit":  # out of the view along the way there, held there, then back
        out = _smooth_step((t - 1.5) / 1.5) - _smooth_step((t - p["return_s"]) / 1.5)
        dx, dy = p["exit"][0] * out, p["exit"][1] * out
    elif kind in ("occlusion", "own_colour"):
        dx, dy = 30 * wave[0], 12 * wave[1]
    shake = p["shake_px"] * (3.0 if kind == "shake" else 1.0)
    dx += shake * sum(math.sin(2 * math.pi * f * t + ph) for f, ph in zip(p["shake_hz"], p["shake_phase"][:3])) / 2
    dy += shake * sum(math.sin(2 * math.pi * f * t + ph) for f, ph in zip(p["shake_hz"], p["shake_phase"][3:])) / 2
    roll += math.radians(0.3 * (3.0 if kind == "shake" else 1.0)) * math.sin(2 * math.pi * p["shake_hz"][0] * t)
    # the view moves by (dx, dy) image pixels: the wall by as many times its scale
    return p["centre"][0] + dx * scale, p["centre"][1] + dy * scale, scale, roll, tilt_x, tilt_y


def _wall(target: PhotoTarget, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(a 3 x 3 wall of photos with the target's in the middle, the target's mask on it)."""
    photo = load_photo(target.photo)
    height, width = photo.shape[:2]
    others = [name for name in PHOTOS if name != target.photo] + list(TEXTURES)
    picks = rng.choice(len(others), 8, replace=len(others) < 8)
    wall_colour = np.float32([200, 195, 185]) * rng.uniform(0.85, 1.05)
    wall_h, wall_w = 3 * height + 4 * GAP_PX, 3 * width + 4 * GAP_PX
    noise = cv2.GaussianBlur(rng.normal(0, 1, (wall_h, wall_w)).astype(np.float32), (0, 0), 2)
    wall = np.clip(wall_colour * (1 + 0.04 * noise[..., None]), 0, 255).astype(np.uint8)
    tiles = iter(picks)
    for row in range(3):
        for col in range(3):
            y, x = GAP_PX + row * (height + GAP_PX), GAP_PX + col * (width + GAP_PX)
            if (row, col) == (1, 1):
                tile = photo
            else:  # another photo, resized to cover the cell and cropped
                other = load_photo(others[next(tiles)])
                factor = max(height / other.shape[0], width / other.shape[1])
                other = cv2.resize(other, (math.ceil(other.shape[1] * factor), math.ceil(other.shape[0] * factor)),
                                   interpolation=cv2.INTER_AREA)
                tile = other[:height, :width]
            wall[y:y + height, x:x + width] = tile
    truth = np.zeros((wall_h, wall_w), bool)
    truth[GAP_PX + height + GAP_PX:GAP_PX + 2 * height + GAP_PX, GAP_PX + width + GAP_PX:GAP_PX + 2 * width + GAP_PX] = \
        target_mask(target, photo)
    return wall, truth


def make_photo_sequence(target: str | PhotoTarget, kind: str = "pan", seed: int = 0, seconds: float = 10.0, fps: float = 15.0,
                        width: int = 640, height: int = 480, drift: bool = True) -> PhotoSequence:
    """A sequence of ``kind`` (see KINDS) about ``target`` (a key of photo_targets.TARGETS, e.g. "chelsea/pupil")."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    target = TARGETS[target] if isinstance(target, str) else target
    rng = np.random.default_rng((seed, KINDS.index(kind), sum(map(ord, target.key))))
    wall, truth = _wall(target, rng)
    ys, xs = np.nonzero(truth)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    # the target spans 90-170 image pixels, magnified at most 2.5 times (the photos are small)
    scale = float(np.clip(extent / rng.uniform(90, 170), 0.4, 1.2)) * min(1.0, width / 640)
    offset = rng.uniform(-0.12, 0.12, 2) * (width, height)
    keep = np.linspace(0, len(xs) - 1, min(len(xs), 4000)).astype(int)
    half = np.array([xs.max() - xs.min(), ys.max() - ys.min()]) / scale / 2  # the target's half size in image pixels
    direction = rng.choice([-1.0, 1.0])
    horizontal = rng.random() < 0.7
    exit_px = (direction * (width / 2 + abs(offset[0]) + half[0] + 40), 0.0) if horizontal else \
        (0.0, direction * (height / 2 + abs(offset[1]) + half[1] + 40))
    path = {
        "scale": scale, "centre": (xs.mean() - offset[0] * scale, ys.mean() - offset[1] * scale),
        "periods": rng.uniform(5, 9, 3), "phases": rng.uniform(0, 2 * math.pi, 3), "amplitude": rng.uniform(80, 150),
        "roll_deg": rng.uniform(20, 35), "exit": exit_px, "return_s": rng.uniform(4.0, 5.5),
        "shake_px": rng.uniform(1.5, 3.0), "shake_hz": rng.uniform(1.5, 5.0, 3), "shake_phase": rng.uniform(0, 2 * math.pi, 6),
        "exposure_period": rng.uniform(4, 8), "exposure_phase": rng.uniform(0, 2 * math.pi),
        "balance_period": rng.uniform(5, 10), "balance_phase": rng.uniform(0, 2 * math.pi, 3),
        "jpeg_quality": int(rng.integers(70, 91)),
        "truth_points": np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32),
    }
    sequence = PhotoSequence(target, kind, seed, fps, int(round(seconds * fps)), width, height, drift, wall, truth, path)
    if kind in ("occlusion", "own_colour"):
        sequence._board = _pass_over(sequence, rng, half, seconds)
    return sequence


def _pass_over(sequence: PhotoSequence, rng: np.random.Generator, half: np.ndarray, seconds: float) -> _Board:
    """A board that passes over the target and hides it entirely for 0.6-1.2 s around a time mid-sequence."""
    t_mid = rng.uniform(0.4, 0.6) * seconds
    homography = sequence._homography(t_mid)
    centre = cv2.perspectiveTransform(sequence._path["truth_points"].mean(0)[None, None, :], np.linalg.inv(homography))[0, 0]
    angle = rng.uniform(-0.4, 0.4) + (math.pi if rng.random() < 0.5 else 0.0)
    extent = 2 * float(np.hypot(*half))  # the target's diagonal: covered whatever the board's direction
    length, across = extent * 1.3 + 40, extent * 1.25 + 40  # room for the camera's own motion meanwhile
    velocity = (length - extent) / rng.uniform(0.6, 1.2)
    target = sequence.target
    if sequence.kind == "own_colour":
        colour = tuple(int(v) for v in np.median(load_photo(target.photo)[target_mask(target, load_photo(target.photo))], axis=0))
    else:
        photo = load_photo(target.photo)
        median = np.median(photo[target_mask(target, photo)], axis=0)
        choices = [c for c in OTHER_COLOURS if np.linalg.norm(np.subtract(c, median)) > 80]
        colour = choices[int(rng.integers(len(choices)))]
    grain = cv2.GaussianBlur(rng.normal(0, 1, (int(across), int(length))).astype(np.float32), (0, 0), 3)
    shading = np.linspace(0.92, 1.08, int(length), dtype=np.float32)[None, :]
    texture = shading * (1 + 0.05 * grain / max(float(grain.std()), 1e-6))
    start = (centre[0] - velocity * t_mid * math.cos(angle), centre[1] - velocity * t_mid * math.sin(angle))
    return _Board(angle, start, velocity, colour, texture, _rounded_rectangle(int(length), int(across)))


def _rounded_rectangle(length: int, across: int) -> np.ndarray:
    shape = np.zeros((across, length), np.float32)
    radius = int(min(length, across) * 0.15)
    cv2.rectangle(shape, (radius, 0), (length - 1 - radius, across - 1), 1.0, -1)
    cv2.rectangle(shape, (0, radius), (length - 1, across - 1 - radius), 1.0, -1)
    for x, y in ((radius, radius), (length - 1 - radius, radius), (radius, across - 1 - radius),
                 (length - 1 - radius, across - 1 - radius)):
        cv2.circle(shape, (x, y), radius, 1.0, -1)
    return shape
