"""Synthetic tabletop scenes for training and testing: a robot's view of a table with 3-8 objects.

Each scene has a colour image, an aligned depth image (16UC1, mm, distance along the optical axis), pinhole
intrinsics, one visible-instance mask per object, and referring expressions of several kinds with their target (or no
target, for objects that are not on the table). ``make_scene(seed)`` always gives the same scene.

Geometry: a pinhole camera ``CAMERA_HEIGHT`` above the table, pitched down by ``CAMERA_PITCH``. World axes: x right,
y up from the table top, z forward. Objects are convex solids (boxes, cylinders, spheres, bowls) projected point by
point and drawn far to near, so nearer objects occlude farther ones in the image, the masks and the depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

CLASSES = ("cup", "bowl", "box", "ball", "bottle", "plate")
COLOURS = {
    "red": (200, 30, 30), "green": (40, 160, 60), "blue": (30, 70, 200), "yellow": (230, 200, 40),
    "orange": (240, 130, 30), "purple": (130, 50, 170), "white": (235, 235, 235), "black": (35, 35, 35),
}
SIZES = {  # (height, width) in metres before a per-object scale
    "cup": (0.10, 0.08), "bowl": (0.07, 0.16), "box": (0.12, 0.13), "ball": (0.09, 0.09),
    "bottle": (0.22, 0.07), "plate": (0.02, 0.22),
}
SCALE_RANGE = (0.8, 1.3)
COMMAND_PREFIXES = ("pick up", "grab", "take", "go to", "find", "bring me", "point at", "please pick up", "")
CAMERA_HEIGHT = 0.55
CAMERA_PITCH = math.radians(42)
TABLE_Z = (0.35, 1.05)  # forward range of object positions, m
TABLE_X = 0.38  # lateral half range at the nearest row, m (widens with distance)
WALL_Z = 1.7
MIN_VISIBLE = 0.5  # a target must show at least this fraction of itself
SPATIAL_MARGIN = 0.08  # "on the left/right": the next object of the class is at least this fraction of the width away
NEAREST_MARGIN = 0.08  # "closest to the camera": the next one is at least this many metres farther
CIRCLE_POINTS = 24


@dataclass(frozen=True)
class Camera:
    width: int = 320
    height: int = 240
    fov_deg: float = 62.0

    @property
    def focal(self) -> float:
        return self.width / 2 / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def k(self) -> list[float]:
        f = self.focal
        return [f, 0.0, (self.width - 1) / 2, 0.0, f, (self.height - 1) / 2, 0.0, 0.0, 1.0]

    def to_optical(self, points: np.ndarray) -> np.ndarray:
        """N x 3 world points -> N x 3 optical-frame points (x right, y down, z along the view)."""
        c, s = math.cos(CAMERA_PITCH), math.sin(CAMERA_PITCH)
        rel_y = points[:, 1] - CAMERA_HEIGHT
        z = points[:, 2]
        return np.stack([points[:, 0], -rel_y * c - z * s, -rel_y * s + z * c], axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        return project_optical(self.to_optical(points), self.focal, self.width, self.height)


def project_optical(optical: np.ndarray, focal: float, width: int, height: int) -> np.ndarray:
    """N x 3 optical-frame points -> N x 2 pixel coordinates of a centred pinhole camera."""
    return np.stack([focal * optical[:, 0] / optical[:, 2] + (width - 1) / 2,
                     focal * optical[:, 1] / optical[:, 2] + (height - 1) / 2], axis=1)


@dataclass
class SceneObject:
    cls: str
    colour: str
    x: float
    z: float
    scale: float
    mask: np.ndarray = field(repr=False, default=None)  # visible pixels, H x W bool
    full_area: int = 0  # pixels before occlusion

    @property
    def name(self) -> str:
        return f"{self.colour} {self.cls}"

    @property
    def size(self) -> tuple[float, float]:
        height, width = SIZES[self.cls]
        return height * self.scale, width * self.scale

    @property
    def visible_fraction(self) -> float:
        return float(self.mask.sum()) / self.full_area if self.full_area else 0.0


@dataclass
class Expression:
    text: str  # referring expression, as the model sees it
    command: str  # the same target as a spoken command
    target: int | None  # index into Scene.objects, None when the object is not in the scene
    kind: str  # "colour", "class", "spatial", "nearest", "size", "relational", "absent"


@dataclass
class Scene:
    seed: int
    image: np.ndarray  # H x W x 3 uint8 RGB
    depth_mm: np.ndarray  # H x W uint16, distance along the optical axis
    camera: Camera
    objects: list[SceneObject]
    expressions: list[Expression]

    def target_mask(self, expression: Expression) -> np.ndarray:
        if expression.target is None:
            return np.zeros(self.image.shape[:2], bool)
        return self.objects[expression.target].mask


# --- drawing ------------------------------------------------------------------------------------------------------
def _circle(cx: float, y: float, cz: float, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, CIRCLE_POINTS, endpoint=False)
    return np.stack([cx + radius * np.cos(angles), np.full_like(angles, y), cz + radius * np.sin(angles)], axis=1)


def _solid_points(obj: SceneObject) -> tuple[np.ndarray, np.ndarray | None]:
    """3D points whose projected convex hull is the silhouette, and the points of a lighter/darker top face."""
    height, width = obj.size
    r = width / 2
    if obj.cls == "box":
        dx = dz = r
        corners = np.array([[obj.x + sx * dx, y, obj.z + sz * dz] for sx in (-1, 1) for sz in (-1, 1) for y in (0.0, height)])
        top = np.array([[obj.x + sx * dx, height, obj.z + sz * dz] for sx, sz in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
        return corners, top
    if obj.cls == "ball":
        return None, None  # drawn as a disc
    if obj.cls == "bowl":
        body = np.concatenate([_circle(obj.x, height, obj.z, r), _circle(obj.x, 0.0, obj.z, r * 0.45)])
        return body, _circle(obj.x, height, obj.z, r)
    if obj.cls == "bottle":
        body = np.concatenate([_circle(obj.x, 0.0, obj.z, r), _circle(obj.x, height * 0.65, obj.z, r),
                               _circle(obj.x, height, obj.z, r * 0.35)])
        return body, None
    # cup and plate: cylinders
    body = np.concatenate([_circle(obj.x, 0.0, obj.z, r * (0.85 if obj.cls == "cup" else 1.0)), _circle(obj.x, height, obj.z, r)])
    return body, _circle(obj.x, height, obj.z, r)


def _draw_object(
    obj: SceneObject, camera: Camera, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, np.ndarray], float]:
    """(mask H x W bool, (first row, colour of the object's rows: rows x W x 3 float), depth in m) of one object in
    isolation."""
    h, w = camera.height, camera.width
    mask = np.zeros((h, w), np.uint8)
    top_mask = np.zeros((h, w), np.uint8)
    height, width = obj.size
    centre = np.array([[obj.x, height / 2, obj.z]])
    depth = float(camera.to_optical(centre)[0, 2])
    base_colour = np.array(COLOURS[obj.colour], np.float32)
    if obj.cls == "ball":
        (u, v), = camera.project(np.array([[obj.x, width / 2, obj.z]]))
        radius = camera.focal * (width / 2) / depth
        cv2.circle(mask, (int(round(u)), int(round(v))), max(1, int(round(radius))), 1, -1)
    else:
        body, top = _solid_points(obj)
        hull = cv2.convexHull(np.round(camera.project(body)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
        if top is not None:
            cv2.fillConvexPoly(top_mask, cv2.convexHull(np.round(camera.project(top)).astype(np.int32)), 1)
        if obj.cls == "cup":  # a handle on the right
            (u, v), = camera.project(np.array([[obj.x + width * 0.55, height * 0.55, obj.z]]))
            size = max(1, int(round(camera.focal * height * 0.22 / depth)))
            cv2.ellipse(mask, (int(round(u)), int(round(v))), (max(1, size // 2), size), 0, 0, 360, 1, max(1, size // 3))
    rows = np.flatnonzero(mask.any(axis=1))
    # The colour layer covers only the object's rows (its pixels are all the caller copies).
    y0, y1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
    layer = np.zeros((y1 - y0, w, 3), np.float32)
    if len(rows):
        # Light from above: brighter at the top of the object, darker at the bottom, plus a lighter or darker top face.
        shade = np.linspace(1.12, 0.72, max(1, y1 - y0))[:, None, None]
        layer[:] = base_colour * shade
        face = 0.65 if obj.cls in ("cup", "bowl") else 1.18  # openings look dark, lids and plate tops light
        layer[top_mask[y0:y1].astype(bool)] *= face
        layer *= rng.uniform(0.9, 1.1)
    return mask.astype(bool), (y0, layer), depth


def _background(camera: Camera, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Table and wall colour (H x W x 3 float) and their depth along the optical axis (H x W float, m)."""
    h, w, f = camera.height, camera.width, camera.focal
    # Everything but the wood grain depends on the row only: computed per row (H x 1) and broadcast over the columns.
    v = np.arange(h, dtype=np.float32)[:, None]
    u = np.arange(w, dtype=np.float32)[None, :]
    dy = (v - (h - 1) / 2) / f  # the ray's vertical slope; its lateral slope does not change where it meets the table
    c, s = math.cos(CAMERA_PITCH), math.sin(CAMERA_PITCH)
    world_y, world_z = -dy * c - s, -dy * s + c  # world direction of each pixel's ray (optical z = 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = np.where(world_y < 0, -CAMERA_HEIGHT / world_y, np.inf)
        t_wall = np.where(world_z > 0, WALL_Z / world_z, np.inf)
    on_table = (t_table * world_z <= WALL_Z) & np.isfinite(t_table)
    depth = np.broadcast_to(np.where(on_table, t_table, t_wall), (h, w)).copy()
    wood = np.array([150, 105, 65], np.float32) * rng.uniform(0.8, 1.2, 3)
    wall = np.array([205, 205, 210], np.float32) * rng.uniform(0.85, 1.1)
    grain = 1 + 0.06 * np.sin(u / rng.uniform(3, 9) + rng.uniform(0, 6))[..., None]
    colour = np.where(on_table[..., None], wood * grain, wall * (1 - 0.15 * v[..., None] / h))
    return colour, depth


# --- scenes -------------------------------------------------------------------------------------------------------
def _place_objects(rng: np.random.Generator, camera: Camera, count: int) -> list[SceneObject]:
    objects: list[SceneObject] = []
    for _ in range(200):
        if len(objects) == count:
            break
        z = rng.uniform(*TABLE_Z)
        half = TABLE_X * (0.6 + 0.5 * (z - TABLE_Z[0]) / (TABLE_Z[1] - TABLE_Z[0]))
        candidate = SceneObject(cls=str(rng.choice(CLASSES)), colour=str(rng.choice(list(COLOURS))),
                                x=rng.uniform(-half, half), z=z, scale=rng.uniform(*SCALE_RANGE))
        radius = candidate.size[1] / 2
        if any(math.hypot(candidate.x - o.x, candidate.z - o.z) < radius + o.size[1] / 2 + 0.02 for o in objects):
            continue  # solids may hide each other in the image, never intersect
        if any(o.name == candidate.name for o in objects) and rng.random() < 0.7:
            continue  # duplicates happen, but rarely
        objects.append(candidate)
    return objects


def make_scene(seed: int, camera: Camera = Camera(), min_objects: int = 3, max_objects: int = 8) -> Scene:
    """A scene and its expressions; absent objects are named by a colour and class the scene lacks ("the purple
    bottle")."""
    rng = np.random.default_rng(seed)
    objects = _place_objects(rng, camera, int(rng.integers(min_objects, max_objects + 1)))
    colour, depth = _background(camera, rng)
    occupied = np.zeros((camera.height, camera.width), bool)
    drawn = [(obj, *_draw_object(obj, camera, rng)) for obj in objects]
    # Near to far: a pixel belongs to the nearest object covering it.
    for obj, mask, (first_row, layer), obj_depth in sorted(drawn, key=lambda item: item[3]):
        visible = mask & ~occupied
        obj.mask, obj.full_area = visible, int(mask.sum())
        rows = slice(first_row, first_row + len(layer))
        colour[rows][visible[rows]] = layer[visible[rows]]
        depth[visible] = obj_depth
        occupied |= mask
    brightness = rng.uniform(0.8, 1.15)
    noise = rng.normal(0, 4.0, colour.shape)
    image = np.clip(colour * brightness + noise, 0, 255).astype(np.uint8)
    depth_mm = np.clip(np.nan_to_num(depth * 1000, posinf=0), 0, 65535).astype(np.uint16)
    scene = Scene(seed, image, depth_mm, camera, objects, [])
    scene.expressions = referring_expressions(scene, rng)
    return scene


# --- language -------------------------------------------------------------------------------------------------------
def referring_expressions(scene: Scene, rng: np.random.Generator) -> list[Expression]:
    """Unambiguous expressions for the visible objects, of several kinds, plus a few naming absent objects."""
    objects = scene.objects
    names = [o.name for o in objects]
    classes = [o.cls for o in objects]
    targets = [i for i, o in enumerate(objects) if o.visible_fraction >= MIN_VISIBLE and o.mask.sum() >= 30]
    # Mean column of each object's visible pixels (NaN for an object hidden entirely behind nearer ones; a new NaN
    # object each, as the mean of no pixels was before, so sorting treats them the same way).
    centre_u = [float(np.nonzero(o.mask)[1].mean()) if o.mask.any() else float("nan") for o in objects]
    found: list[Expression] = []

    def add(text: str, target: int | None, kind: str) -> None:
        prefix = str(rng.choice(COMMAND_PREFIXES))
        found.append(Expression(text, f"{prefix} {text}".strip(), target, kind))

    for i in targets:
        obj = objects[i]
        same_class = [j for j, c in enumerate(classes) if c == obj.cls]
        if names.count(obj.name) == 1:
            add(f"the {obj.name}", i, "colour")
        if len(same_class) == 1:
            add(f"the {obj.cls}", i, "class")
            continue
        # A fully hidden object's centre is NaN: its comparisons are false, so it drops the left/right expression
        # rather than giving a wrong one. Kept as is so the shipped demo model's training data stays reproducible.
        us = sorted((centre_u[j], j) for j in same_class)
        margin = SPATIAL_MARGIN * scene.camera.width
        if us[0][1] == i and us[1][0] - us[0][0] >= margin:
            add(f"the {obj.cls} on the left", i, "spatial")
        if us[-1][1] == i and us[-1][0] - us[-2][0] >= margin:
            add(f"the {obj.cls} on the right", i, "spatial")
        zs = sorted((objects[j].z, j) for j in same_class)
        if zs[0][1] == i and zs[1][0] - zs[0][0] >= NEAREST_MARGIN:
            add(f"the {obj.cls} closest to the camera", i, "nearest")
        scales = sorted(objects[j].scale for j in same_class)
        if obj.scale == scales[-1] and scales[-1] > 1.15 * scales[-2]:
            add(f"the largest {obj.cls}", i, "size")
        if obj.scale == scales[0] and scales[1] > 1.15 * scales[0]:
            add(f"the smallest {obj.cls}", i, "size")
    for j, ref in enumerate(objects):  # "the ball next to the green box"
        if names.count(ref.name) != 1:
            continue
        others = [i for i in range(len(objects)) if i != j]
        if not others:
            continue
        nearest = min(others, key=lambda i: math.hypot(objects[i].x - ref.x, objects[i].z - ref.z))
        same = [i for i in others if objects[i].cls == objects[nearest].cls]
        distance = lambda i: math.hypot(objects[i].x - ref.x, objects[i].z - ref.z)  # noqa: E731
        second = min((distance(i) for i in same if i != nearest), default=math.inf)
        if nearest in targets and second > 1.5 * distance(nearest):
            add(f"the {objects[nearest].cls} next to the {ref.name}", nearest, "relational")
    present = set(names)
    absent = [f"{c} {k}" for c in COLOURS for k in CLASSES if f"{c} {k}" not in present]
    for name in rng.choice(absent, size=min(2, len(absent)), replace=False):
        add(f"the {name}", None, "absent")
    return found

