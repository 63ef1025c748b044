"""The node with the shipped demo model and its real threshold (0.5) on a rendered table scene: the masks it publishes
are the named object's, the 3D centroid is the one computed by hand from that mask, the depth and the camera model
(fx != fy, principal point off the image centre) to the millimetre, depth_scale is applied, the overlay shows the
mask, and centroid_of_largest_component picks the larger part of a mask in two parts.

Most node tests pin the model's answer and use threshold 0 (every mask the whole frame); these look at the masks."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mllmseg_ros.data.scenes import make_scene
from mllmseg_ros.engine.postprocess import mask_iou
from mllmseg_ros.tools.demo import DEMO_MODEL
from ros_harness import connected, wait_for

SCENE = 9010  # the demo model answers its green bowl and blue box well (IoU 0.92 and 0.93 with the engine)
# A camera as drivers report it: fx != fy, the principal point away from the centre of the 320 x 240 image.
K = [300.0, 0.0, 171.0, 0.0, 240.0, 104.0, 0.0, 0.0, 1.0]
DEPTH_SCALE = 0.0005  # metres per 16UC1 unit (half millimetres), not the 0.001 default
FRAME_ID = "camera_optical"


@pytest.fixture(scope="module")
def scene():
    return make_scene(SCENE)


def image_msg(rgb: np.ndarray, stamp_ns: int):
    from sensor_msgs.msg import Image

    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = FRAME_ID
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def depth_units_msg(depth_m: np.ndarray, stamp_ns: int):
    from sensor_msgs.msg import Image

    units = np.round(depth_m / DEPTH_SCALE).astype(np.uint16)
    msg = Image(height=units.shape[0], width=units.shape[1], encoding="16UC1", step=units.shape[1] * 2)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = FRAME_ID
    msg.data = units.tobytes()
    return msg


def mask_of(segmentation) -> np.ndarray:
    image = segmentation.mask
    return np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width) > 0


class Feed:
    """Frames (each with its own depth image and camera_info) until the node answers ``command``."""

    def __init__(self, ros, node, image: np.ndarray, depth_m: np.ndarray | None = None) -> None:
        from sensor_msgs.msg import CameraInfo

        self.driver = ros.driver()
        self.node, self.image, self.depth_m = node, image, depth_m
        self.stamp_ns = 10**9
        self.info = CameraInfo(height=image.shape[0], width=image.shape[1], k=K)
        self.info.header.frame_id = FRAME_ID
        assert connected(node, self.driver)

    def answer(self, command: str, expression: str):
        """The first model answer for ``expression`` on a frame sent after ``command``."""
        sent_from = self.stamp_ns
        self.driver.send_command(command)

        def answered():
            for array in self.driver.model_answers:
                stamp = array.header.stamp.sec * 10**9 + array.header.stamp.nanosec
                if stamp > sent_from and [s.expression for s in array.segmentations] == [expression]:
                    return array
            self.stamp_ns += 100_000_000
            if self.depth_m is not None:
                self.driver.info.publish(self.info)
                self.driver.depth.publish(depth_units_msg(self.depth_m, self.stamp_ns))
            self.driver.image.publish(image_msg(self.image, self.stamp_ns))
            return None

        assert wait_for(lambda: answered() is not None, timeout=60, interval=0.3), self.driver.arrays[-3:]
        return answered()


def test_masks_are_the_named_objects_and_the_overlay_shows_them(ros, make_node, scene):
    from sensor_msgs.msg import Image

    node = make_node(DEMO_MODEL, tracking="off", use_depth=False)
    feed = Feed(ros, node, scene.image)
    overlays: list = []
    feed.driver.node.create_subscription(Image, "/mllmseg_node/overlay", overlays.append, 10)
    assert wait_for(lambda: node.streams[0].publisher.overlay.get_subscription_count() > 0)
    masks = {}
    for expression in ("the green bowl", "the blue box"):
        truth = scene.target_mask(next(e for e in scene.expressions if e.text == expression))
        array = feed.answer(f"pick up {expression}", expression)
        (segmentation,) = array.segmentations
        assert segmentation.found and segmentation.expression == expression
        mask = masks[expression] = mask_of(segmentation)
        assert mask_iou(mask, truth) > 0.8, expression  # the object's own pixels, a small part of the frame
        assert mask.sum() < 0.1 * mask.size
        ys, xs = np.nonzero(mask)
        assert (segmentation.centroid_px.x, segmentation.centroid_px.y) == pytest.approx((xs.mean(), ys.mean()), abs=1e-3)
        assert (segmentation.bbox.x_offset, segmentation.bbox.y_offset, segmentation.bbox.width, segmentation.bbox.height) \
            == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        # The overlay of this answer: the mask tinted, the image unchanged away from the mask, its box and label.
        stamp = array.header.stamp
        assert wait_for(lambda: any(o.header.stamp == stamp for o in overlays))
        overlay = next(o for o in overlays if o.header.stamp == stamp)
        drawn = np.frombuffer(bytes(overlay.data), np.uint8).reshape(overlay.height, overlay.width, 3)
        changed = np.any(drawn != scene.image, axis=2)
        inside = mask & ~cv2.dilate(np.uint8(~mask), np.ones((3, 3), np.uint8)).astype(bool)  # not on the box lines
        assert changed[inside].mean() > 0.9
        far = cv2.dilate(mask.astype(np.uint8), np.ones((41, 41), np.uint8)) == 0
        far[:40] = False  # the label above the box
        assert changed[far].mean() < 0.01
    assert mask_iou(masks["the green bowl"], masks["the blue box"]) < 0.05  # the mask moved with the command


def test_3d_centroid_to_the_millimetre_with_depth_scale(ros, make_node, scene):
    """x, y, z from the published mask, the depth image (in half millimetres, depth_scale 0.0005) and K with fx != fy
    and an off-centre principal point: the mask's pixel centroid deprojected at the median depth inside the mask."""
    depth_m = scene.depth_mm.astype(np.float64) / 1000.0
    node = make_node(DEMO_MODEL, tracking="off", depth_scale=DEPTH_SCALE)
    feed = Feed(ros, node, scene.image, depth_m)
    segmentation = feed.answer("the green bowl", "the green bowl").segmentations[0]
    mask = mask_of(segmentation)
    assert segmentation.found and segmentation.centroid_3d_valid, segmentation.centroid_3d_status
    ys, xs = np.nonzero(mask)
    z = float(np.median(np.round(depth_m[mask] / DEPTH_SCALE) * DEPTH_SCALE))
    fx, cx, fy, cy = K[0], K[2], K[4], K[5]
    expected = ((xs.mean() - cx) * z / fx, (ys.mean() - cy) * z / fy, z)
    assert abs(expected[0]) > 0.05 and abs(expected[1]) > 0.05  # off the optical axis in x and in y
    point = segmentation.centroid_3d
    assert (point.x, point.y, point.z) == pytest.approx(expected, abs=1e-3)
    assert segmentation.depth_samples == mask.sum()


def test_centroid_of_largest_component(ros, make_node, scene):
    """A second, smaller green bowl pasted into the scene: the mask has two parts. The parameter (changed at run time)
    moves the centroid from the whole mask's to the larger part's."""
    from rclpy.parameter import Parameter

    image = scene.image.copy()
    copy = cv2.resize(scene.image[55:109, 197:269], None, fx=0.7, fy=0.7)
    image[150:150 + copy.shape[0], 20:20 + copy.shape[1]] = copy
    node = make_node(DEMO_MODEL, tracking="off", use_depth=False)
    feed = Feed(ros, node, image)
    centroids = {}
    for largest in (False, True):
        assert node.set_parameters([Parameter("centroid_of_largest_component", value=largest)])[0].successful
        segmentation = feed.answer(f"{'grab' if largest else 'pick up'} the green bowl", "the green bowl").segmentations[0]
        mask = mask_of(segmentation)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        areas = sorted(stats[1:, cv2.CC_STAT_AREA], reverse=True)
        assert count - 1 >= 2 and areas[1] > 200, areas  # two real parts
        part = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        ys, xs = np.nonzero(part if largest else mask)
        centroids[largest] = (segmentation.centroid_px.x, segmentation.centroid_px.y)
        assert centroids[largest] == pytest.approx((xs.mean(), ys.mean()), abs=1e-3)
    assert np.hypot(*np.subtract(centroids[True], centroids[False])) > 20
