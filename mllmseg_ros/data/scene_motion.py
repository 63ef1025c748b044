"""Synthetic tabletop sequences seen from a moving camera, with objects that move: ground truth for tracking.

The table scene of ``scenes.py`` (same objects, same drawing) rendered frame by frame from a camera that pans, slides
sideways or moves forward, while some objects slide across the table (one of them, in ``occlusion`` sequences, in
front of the target). Each frame has its colour image, depth, and per object the visible mask, the fraction of the
object inside the image and the object's true 3D centre in the camera's optical frame.

Unlike ``scenes.py`` the table and the wall carry a texture fixed in the world (wood grain and blotches), so a moving
camera sees the background move with the geometry, as a real one does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .scenes import CAMERA_HEIGHT, CAMERA_PITCH, WALL_Z, SceneObject, _draw_object, _place_objects, project_optical

KINDS = ("pan", "sideways", "forward", "exit", "occlusion", "still")
TEXTURE_M_PER_PX = 0.004  # world texture resolution
TEXTURE_SIZE_M = 4.0  # the table/wall texture covers this many metres each way


@dataclass(frozen=True)
class CameraPose:
    """Camera position (world metres: x right, y up from the table, z forward) and orientation (yaw right, pitch
    down, radians)."""

    x: float = 0.0
    y: float = CAMERA_HEIGHT
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = CAMERA_PITCH


@dataclass(frozen=True)
class PosedCamera:
    """A pinhole camera at ``pose``; ``pad`` extra pixels on every side let an object be drawn whole when it is
    partly out of the image (its in-view fraction)."""

    width: int = 640
    height: int = 480
    fov_deg: float = 62.0
    pose: CameraPose = CameraPose()
    pad: int = 0

    @property
    def focal(self) -> float:
        return (self.width - 2 * self.pad) / 2 / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def k(self) -> list[float]:
        f = self.focal
        return [f, 0.0, (self.width - 1) / 2, 0.0, f, (self.height - 1) / 2, 0.0, 0.0, 1.0]

    def padded(self, pad: int) -> "PosedCamera":
        return PosedCamera(self.width + 2 * pad, self.height + 2 * pad, self.fov_deg, self.pose, pad)

    def to_optical(self, points: np.ndarray) -> np.ndarray:
        """N x 3 world points -> N x 3 optical-frame points (x right, y down, z along the view)."""
        pose = self.pose
        rel = points - np.array([pose.x, pose.y, pose.z])
        cy, sy = math.cos(pose.yaw), math.sin(pose.yaw)
        x, z = cy * rel[:, 0] - sy * rel[:, 2], sy * rel[:, 0] + cy * rel[:, 2]  # turn the world by -yaw
        c, s = math.cos(pose.pitch), math.sin(pose.pitch)
        return np.stack([x, -rel[:, 1] * c - z * s, -rel[:, 1] * s + z * c], axis=1)

    def rays_to_world(self, optical: np.ndarray) -> np.ndarray:
        """... x 3 optical-frame directions -> world directions (the inverse rotation of ``to_optical``)."""
        c, s = math.cos(self.pose.pitch), math.sin(self.pose.pitch)
        ox, oy, oz = optical[..., 0], optical[..., 1], optical[..., 2]
        # the pitch rotation of to_optical is its own inverse; then undo the yaw
        world_y = -oy * c - oz * s
        z_yawed = -oy * s + oz * c
        cy, sy = math.cos(self.pose.yaw), math.sin(self.pose.yaw)
        return np.stack([cy * ox + sy * z_yawed, world_y, -sy * ox + cy * z_yawed], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        return project_optical(self.to_optical(points), self.focal, self.width, self.height)


@dataclass
class MotionFrame:
    """One frame of a sequence; lists are indexed like ``MotionSequence.objects``."""

    index: int
    time_s: float
    image: np.ndarray  # H x W x 3 uint8 RGB
    depth_mm: np.ndarray  # H x W uint16, distance along the optical axis
    pose: CameraPose
    masks: list[np.ndarray]  # visible pixels of each object, H x W bool
    in_view: list[float]  # fraction of each object's silhouette inside the image (before occlusion by others)
    centres: np.ndarray  # N x 3, each object's true centre in the optical frame, metres


@dataclass
class MotionSequence:
    seed: int
    kind: str  # one of KINDS
    fps: float
    frame_count: int
    camera: PosedCamera  # size and intrinsics (the pose changes per frame)
    objects: list[SceneObject]  # positions at time 0 (``velocities`` move them)
    velocities: np.ndarray  # N x 2, (x, z) metres per second on the table
    target: int  # index of the object the sequence is about
    expression: str  # "the <colour> <class>" of the target
    poses: list[CameraPose] = field(repr=False, default_factory=list)
    _look: dict = field(repr=False, default_factory=dict)

    @property
    def k(self) -> list[float]:
        return self.camera.k

    def frames(self):
        """The frames in order (rendered one by one: a sequence of 640 x 480 frames does not fit in memory whole)."""
        for index in range(self.frame_count):
            yield self.frame(index)

    def frame(self, index: int) -> MotionFrame:
        time_s = index / self.fps
        pose = self.poses[index]
        camera = PosedCamera(self.camera.width, self.camera.height, self.camera.fov_deg, pose)
        objects = [_moved(obj, velocity, time_s) for obj, velocity in zip(self.objects, self.velocities)]
        image, depth_mm, masks, in_view = _render(camera, objects, self._look, np.random.default_rng((self.seed, index)))
        centres = camera.to_optical(np.array([[o.x, o.size[0] / 2, o.z] for o in objects]))
        return MotionFrame(index, time_s, image, depth_mm, pose, masks, in_view, centres)


def _moved(obj: SceneObject, velocity: np.ndarray, time_s: float) -> SceneObject:
    return SceneObject(obj.cls, obj.colour, obj.x + velocity[0] * time_s, obj.z + velocity[1] * time_s, obj.scale)


# --- the world: textured table and wall ---------------------------------------------------------------------------
def _texture(rng: np.random.Generator) -> np.ndarray:
    """A brightness factor around 1 (float32, TEXTURE_SIZE_M square): large blotches and a fine grain."""
    n = int(TEXTURE_SIZE_M / TEXTURE_M_PER_PX)
    blotches = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), 8)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), 1.5)
    return 1 + 0.10 * blotches / blotches.std() + 0.06 * fine / fine.std()


def _sample(texture: np.ndarray, a: np.ndarray, b: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
    """Texture value at world coordinates (a, b) metres; ``origin`` is the texture's corner."""
    map_a = ((a - origin[0]) / TEXTURE_M_PER_PX).astype(np.float32)
    map_b = ((b - origin[1]) / TEXTURE_M_PER_PX).astype(np.float32)
    return cv2.remap(texture, map_a, map_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _background(camera: PosedCamera, look: dict) -> tuple[np.ndarray, np.ndarray]:
    """Table and wall colour (H x W x 3 float) and depth along the optical axis (H x W float, m) from ``camera``."""
    h, w, f, pose = camera.height, camera.width, camera.focal, camera.pose
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    rays = camera.rays_to_world(np.dstack([(u - (w - 1) / 2) / f, (v - (h - 1) / 2) / f, np.ones_like(u)]))
    world_x, world_y, world_z = rays[..., 0], rays[..., 1], rays[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = np.where(world_y < 0, -pose.y / world_y, np.inf)  # optical z of a ray is 1: t is the depth
        t_wall = np.where(world_z > 0, (WALL_Z - pose.z) / world_z, np.inf)
    table_z = pose.z + t_table * world_z
    on_table = np.isfinite(t_table) & (table_z <= WALL_Z)
    depth = np.where(on_table, t_table, t_wall)
    depth = np.where(np.isfinite(depth), depth, 0.0)
    table_x = np.where(on_table, pose.x + t_table * world_x, 0.0)
    wall_x = np.where(np.isfinite(t_wall), pose.x + t_wall * world_x, 0.0)
    wall_y = np.where(np.isfinite(t_wall), pose.y + t_wall * world_y, 0.0)
    grain = 1 + 0.06 * np.sin(table_x / look["grain_period_m"] + look["grain_phase"])
    table = look["wood"] * (grain * _sample(look["table"], table_x, np.where(on_table, table_z, 0.0), (-2.0, -0.5)))[..., None]
    wall = look["wall"] * (_sample(look["wall_texture"], wall_x, wall_y, (-2.0, -1.0)) * (1 - 0.1 * np.clip(wall_y, 0, 2)))[..., None]
    return np.where(on_table[..., None], table, wall), depth


def _render(camera: PosedCamera, objects: list[SceneObject], look: dict, noise_rng: np.random.Generator):
    """(image, depth_mm, visible masks, in-view fractions) of ``objects`` seen by ``camera``."""
    h, w = camera.height, camera.width
    pad = look["pad"]
    padded = camera.padded(pad)
    colour, depth = _background(camera, look)
    occupied = np.zeros((h, w), bool)
    masks, in_view = [np.zeros((h, w), bool) for _ in objects], [0.0] * len(objects)
    drawn = []
    for index, obj in enumerate(objects):
        if padded.to_optical(np.array([[obj.x, obj.size[0] / 2, obj.z]]))[0, 2] < 0.1:
            continue  # behind the camera
        # the same look every frame: the object's own random numbers, not the frame's
        whole, (first_row, layer), obj_depth = _draw_object(obj, padded, np.random.default_rng(look["seeds"][index]))
        inside = whole[pad:pad + h, pad:pad + w]
        in_view[index] = float(inside.sum() / whole.sum()) if whole.any() else 0.0
        rows = np.zeros((h, w, 3), np.float32)
        top, bottom = max(first_row, pad), min(first_row + len(layer), pad + h)
        if bottom > top:
            rows[top - pad:bottom - pad] = layer[top - first_row:bottom - first_row, pad:pad + w]
        drawn.append((index, inside, rows, obj_depth))
    for index, inside, rows, obj_depth in sorted(drawn, key=lambda item: item[3]):  # near to far
        visible = inside & ~occupied
        masks[index] = visible
        colour[visible] = rows[visible]
        depth[visible] = obj_depth
        occupied |= inside
    noise = noise_rng.normal(0, 3.0, colour.shape)
    image = np.clip(colour * look["brightness"] + noise, 0, 255).astype(np.uint8)
    depth_mm = np.clip(depth * 1000, 0, 65535).astype(np.uint16)
    return image, depth_mm, masks, in_view


# --- sequences ----------------------------------------------------------------------------------------------------
def _poses(kind: str, frame_count: int, fps: float, target_side: float) -> list[CameraPose]:
    """Camera trajectory of each kind; ``target_side`` is -1 / +1 when the target is left / right of the view."""
    duration = frame_count / fps
    poses = []
    for index in range(frame_count):
        t = index / fps
        phase = 2 * math.pi * t / max(duration, 1e-6)
        if kind == "pan":
            poses.append(CameraPose(yaw=math.radians(12) * math.sin(phase)))
        elif kind == "sideways":
            poses.append(CameraPose(x=0.15 * math.sin(phase)))
        elif kind == "forward":
            poses.append(CameraPose(z=0.25 * t / duration, y=CAMERA_HEIGHT - 0.05 * t / duration))
        elif kind == "exit":  # turn away from the target until it is out of the view
            poses.append(CameraPose(yaw=-target_side * math.radians(50) * t / duration))
        elif kind == "occlusion":
            poses.append(CameraPose(yaw=math.radians(4) * math.sin(phase)))
        else:
            poses.append(CameraPose())
    return poses


def make_motion_sequence(seed: int, kind: str = "pan", seconds: float = 4.0, fps: float = 15.0, width: int = 640,
                         height: int = 480, moving_fraction: float = 0.4) -> MotionSequence:
    """A sequence of ``kind`` (see KINDS); the same seed always gives the same sequence."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    camera = PosedCamera(width, height)
    objects = _place_objects(rng, camera, int(rng.integers(3, 7)))
    look = {"pad": width // 2, "seeds": [int(s) for s in rng.integers(0, 2**31, len(objects) + 1)],
            "table": _texture(rng), "wall_texture": _texture(rng),
            "wood": np.array([150, 105, 65], np.float32) * rng.uniform(0.8, 1.2, 3),
            "wall": np.array([205, 205, 210], np.float32) * rng.uniform(0.85, 1.1),
            "grain_period_m": float(rng.uniform(0.008, 0.024)), "grain_phase": float(rng.uniform(0, 6)),
            "brightness": float(rng.uniform(0.85, 1.1))}
    first = _render(camera, objects, look, np.random.default_rng(0))
    names = [o.name for o in objects]
    candidates = [i for i, o in enumerate(objects) if names.count(o.name) == 1 and first[2][i].sum() >= 0.004 * width * height
                  and first[3][i] > 0.95]
    # the object nearest the middle of the view: what a robot would be looking at (and what stays in view longest)
    distance = [np.hypot(*(np.argwhere(first[2][i]).mean(0) - (height / 2, width / 2))) for i in candidates]
    target = int(candidates[int(np.argmin(distance))]) if candidates else int(np.argmax([m.sum() for m in first[2]]))
    velocities = np.zeros((len(objects), 2))
    for index in range(len(objects)):
        if rng.random() < moving_fraction:
            velocities[index] = rng.uniform(-0.06, 0.06, 2)
    if kind == "occlusion":  # a box slides across in front of the target, from one side to the other
        target_obj = objects[target]
        side = 1.0 if rng.random() < 0.5 else -1.0
        start_x = target_obj.x + side * 0.3
        occluder = SceneObject("box", "white" if target_obj.colour != "white" else "black", start_x,
                               max(0.2, target_obj.z - 0.15), 1.3)
        objects.append(occluder)
        look["seeds"].append(int(rng.integers(0, 2**31)))
        velocities = np.vstack([velocities, [[-side * 0.6 / seconds, 0.0]]])
        velocities[target] = 0.0
    centre_u = np.nonzero(first[2][target])[1].mean() if first[2][target].any() else width / 2
    frame_count = int(round(seconds * fps))
    poses = _poses(kind, frame_count, fps, -1.0 if centre_u < width / 2 else 1.0)
    return MotionSequence(seed, kind, fps, frame_count, camera, objects, velocities, target,
                          f"the {objects[target].name}", poses, look)
