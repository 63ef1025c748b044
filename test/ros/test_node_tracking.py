"""Tracking between model answers, in-process: a slow "model" that answers with the true mask of the frame it was
given (an oracle), and a camera whose view slides sideways, so every frame has a known answer."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from mllmseg_ros.engine.tracking import TrackerConfig
from ros_harness import connected, diagnostics_listener, is_model_answer, values_of, wait_for

HEIGHT, WIDTH = 120, 160
K = [150.0, 0.0, 79.5, 0.0, 150.0, 59.5, 0.0, 0.0, 1.0]
CAMERA_HZ = 20.0
SHIFT_PX = 1.5  # the view slides this far left per frame
MIN_IN_VIEW = TrackerConfig().occlusion.min_in_view


def _texture() -> np.ndarray:
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH * 4)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(noise, None, 40, 200, cv2.NORM_MINMAX).astype(np.uint8)


TEXTURE = _texture()
TARGET = np.zeros(TEXTURE.shape, bool)
TARGET[40:80, 105:145] = True  # a red box on the textured wall, 40 x 40, on the right: the view slides left


def scene(index: int, shift_px: float = SHIFT_PX) -> tuple[np.ndarray, np.ndarray]:
    """(RGB frame, true mask) of frame ``index``: the world moved ``index * shift_px`` pixels to the left."""
    matrix = np.float32([[1, 0, -index * shift_px], [0, 1, 0]])
    grey = cv2.warpAffine(TEXTURE, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(TARGET.astype(np.uint8), matrix, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST).astype(bool)
    rgb = np.dstack([grey] * 3)
    rgb[mask] = (rgb[mask] * 0.4 + np.array([150, 0, 0])).astype(np.uint8)  # red, still textured
    return rgb, mask


def red_pixels(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(int) - rgb[..., 1]) > 60


def depth_of_frame(index: int) -> float:
    return 1.0 + 0.01 * index  # each frame's own depth: a 3D answer shows which depth it came from


def oracle(node, delay_s: float) -> list:
    """The node's model becomes one that takes ``delay_s`` and answers with the red pixels of the frame it got."""
    from mllmseg_ros.engine import SegmentationResult, mask_geometry

    answered: list = []

    def segment_batch(images, expression_lists):
        time.sleep(delay_s)
        out = []
        for image, expressions in zip(images, expression_lists):
            mask = red_pixels(image)
            geometry = mask_geometry(mask)
            found = geometry.area > 0
            out.append([SegmentationResult(e, found, "SEG" if found else "REJ", 0.9, mask.astype(np.float32), mask,
                                           geometry.bbox, geometry.centroid, geometry.area) for e in expressions])
            answered.append(image)
        return out

    node.segmenter.segment_batch = segment_batch
    return answered


def messages(index: int):
    from sensor_msgs.msg import CameraInfo, Image

    stamp_ns = 1_000_000_000 + int(index * 1e9 / CAMERA_HZ)
    rgb, _ = scene(index)
    image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=rgb.tobytes())
    depth = Image(height=HEIGHT, width=WIDTH, encoding="16UC1", step=WIDTH * 2,
                  data=np.full((HEIGHT, WIDTH), round(depth_of_frame(index) * 1000), np.uint16).tobytes())
    info = CameraInfo(height=HEIGHT, width=WIDTH, k=K)
    for msg in (image, depth, info):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.header.frame_id = "camera_optical"
    return image, depth, info


def play(driver, frames: range, until=lambda: False) -> None:
    """Publish frames at camera rate: depth and camera_info first, so each frame finds its own depth."""
    started = time.monotonic()
    for count, index in enumerate(frames):
        image, depth, info = messages(index)
        driver.depth.publish(depth)
        driver.info.publish(info)
        driver.image.publish(image)
        if until():
            return
        time.sleep(max(0.0, started + (count + 1) / CAMERA_HZ - time.monotonic()))


def frame_index(array) -> int:
    stamp_ns = array.header.stamp.sec * 10**9 + array.header.stamp.nanosec
    return round((stamp_ns - 1_000_000_000) * CAMERA_HZ / 1e9)


def mask_of(segmentation) -> np.ndarray:
    image = segmentation.mask
    return np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width) > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def started(ros, make_node, checkpoint, delay_s: float, command: str = "the red cup", **params):
    # every frame unless a test says otherwise (the model runs on the CPU here, where the default rate is capped: its
    # own tests below)
    params.setdefault("track_rate_hz", 1000.0)
    node = make_node(checkpoint, threshold=0.0, **params)
    answered = oracle(node, delay_s)
    driver = ros.driver()
    assert connected(node, driver)
    driver.send_command(command)
    assert wait_for(lambda: node.target.current is not None)
    return node, driver, answered


def by_source(driver):
    arrays = [a for a in driver.arrays if a.segmentations]
    return [a for a in arrays if is_model_answer(a)], [a for a in arrays if not is_model_answer(a)]


def test_frames_between_slow_answers_get_tracked_results_that_follow_the_target(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=1.0, tracking="on")
    play(driver, range(60))
    assert wait_for(lambda: len(by_source(driver)[1]) >= 20)
    model, tracked = by_source(driver)
    assert len(model) >= 2 and len(tracked) > 3 * len(model), (len(model), len(tracked))
    model_stamps = {frame_index(a) for a in model}
    ious, baseline = [], []
    for array in tracked:
        index = frame_index(array)
        [segmentation] = array.segmentations
        assert segmentation.found and segmentation.track_status == "tracking"
        assert 0.0 < segmentation.track_confidence <= 1.0
        # age: from the answered frame (a model frame, at most a few seconds older) to this one
        answered_index = index - round(segmentation.answer_age_s * CAMERA_HZ)
        assert answered_index in model_stamps and 0 < segmentation.answer_age_s < 3.0, (index, segmentation.answer_age_s)
        assert segmentation.centroid_3d_valid and segmentation.centroid_3d.z == pytest.approx(depth_of_frame(index), abs=1e-3)
        truth = scene(index)[1]
        ious.append(iou(mask_of(segmentation), truth))
        baseline.append(iou(scene(answered_index)[1], truth))  # the last model answer, repeated
    assert np.mean(ious) > 0.85 and min(ious) > 0.7, ious
    assert np.mean(baseline) < np.mean(ious) - 0.2, (np.mean(baseline), np.mean(ious))
    for array in model:
        [segmentation] = array.segmentations
        assert segmentation.track_confidence == 1.0 and segmentation.answer_age_s == 0.0 and segmentation.track_status == ""


def test_the_wait_for_a_frames_own_depth_ends_when_it_comes(ros, make_node, seg_checkpoint):
    """A depth pipeline a little behind the colour stream: each frame's depth comes 30 ms after it. Each tracked
    result has its own frame's depth (the previous frame's, 1 s earlier, is within the 4 s tolerance, so a result
    computed before its own depth came would take that one), and the wait ends when that depth comes:
    depth_sync_tolerance_s is how long a frame may wait, not how long it waits. The last frame, with no newer depth
    after it, included: every tracked result within 2 s of its frame (4 s had the wait run to its end)."""
    from mllmseg_ros.msg import SegmentationArray

    node, driver, _ = started(ros, make_node, seg_checkpoint, delay_s=1.5, tracking="on", depth_sync_tolerance_s=4.0)
    arrived: dict[int, float] = {}
    depths: dict[int, float] = {}

    def on_array(array) -> None:
        if array.segmentations and not is_model_answer(array):
            arrived.setdefault(array.header.stamp.sec, time.monotonic())
            segmentation = array.segmentations[0]
            depths[array.header.stamp.sec] = segmentation.centroid_3d.z if segmentation.centroid_3d_valid else -1.0

    driver.node.create_subscription(SegmentationArray, "/mllmseg_node/segmentations", on_array, 50)
    sent: dict[int, float] = {}
    for index in range(14):
        image, depth, info = messages(index)
        for msg in (image, depth, info):  # 1 s apart: the previous frame's depth is never within the tolerance
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1 + index, 0
        driver.info.publish(info)
        driver.image.publish(image)
        sent[1 + index] = time.monotonic()
        time.sleep(0.03)
        driver.depth.publish(depth)
        time.sleep(0.12)
    time.sleep(2.5)  # a full wait (4 s) would still be running for the last frame
    assert len(arrived) >= 4 and 14 in arrived, sorted(arrived)  # the last frame too
    late = {stamp: round(arrived[stamp] - sent[stamp], 2) for stamp in arrived if arrived[stamp] - sent[stamp] > 2.0}
    assert not late, late
    wrong = {stamp: z for stamp, z in depths.items() if abs(z - depth_of_frame(stamp - 1)) > 1e-3}
    assert not wrong, wrong  # each tracked frame's own depth


def test_an_answer_is_brought_to_the_newest_frame_at_once(ros, make_node, seg_checkpoint):
    """Right after each model answer (to a frame taken a second earlier) comes a tracked result for the newest frame."""
    # every 5th frame on schedule: most frames skipped, yet the view slides only 7.5 px between tracked ones
    node, driver, _ = started(ros, make_node, seg_checkpoint, delay_s=1.0, tracking="on", track_rate_hz=CAMERA_HZ / 5)
    play(driver, range(50))
    assert wait_for(lambda: len(by_source(driver)[0]) >= 2)
    arrays = list(driver.arrays)
    after_answers = [arrays[i + 1] for i, a in enumerate(arrays[:-1]) if a.segmentations[0].source == 0]
    assert after_answers
    for array in after_answers:
        [segmentation] = array.segmentations
        assert segmentation.source == segmentation.SOURCE_TRACKED and segmentation.answer_age_s > 0.5
        assert iou(mask_of(segmentation), scene(frame_index(array))[1]) > 0.8


def test_tracking_off_publishes_model_answers_only(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=0.5, tracking="off")
    play(driver, range(30))
    assert wait_for(lambda: len(by_source(driver)[0]) >= 2)
    assert by_source(driver)[1] == []


def test_once_mode_never_tracks(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=0.3, tracking="on", mode="once")
    play(driver, range(20))
    assert wait_for(lambda: len(by_source(driver)[0]) == 1)
    time.sleep(0.3)
    model, tracked = by_source(driver)
    assert len(model) == 1 and tracked == []


def test_by_default_a_model_slower_than_the_camera_only_is_tracked(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=0.0)
    assert node.settings.tracking == "auto"
    play(driver, range(40))  # the oracle answers in a few ms: every frame gets a model answer, nothing to track
    assert wait_for(lambda: len(by_source(driver)[0]) >= 20)
    fast_tracked = len(by_source(driver)[1])
    assert fast_tracked <= 3, fast_tracked  # at most before auto has seen the model's speed
    oracle(node, 0.6)
    play(driver, range(40, 90))
    assert wait_for(lambda: len(by_source(driver)[1]) >= fast_tracked + 10)


def test_target_leaving_the_view_is_dropped_with_the_reason(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=0.2, tracking="on")
    play(driver, range(3))
    assert wait_for(lambda: len(by_source(driver)[0]) >= 1)
    oracle(node, 10.0)  # the model's next answer comes far too late: tracking alone sees the target go
    play(driver, range(3, 3 + 120), until=lambda: any(not a.segmentations[0].found for a in by_source(driver)[1]))
    assert wait_for(lambda: any(not a.segmentations[0].found for a in by_source(driver)[1]), timeout=5.0)
    tracked = by_source(driver)[1]
    dropped = next(a for a in tracked if not a.segmentations[0].found)
    assert dropped.segmentations[0].track_status == "left the view"
    assert not dropped.segmentations[0].centroid_3d_valid and dropped.segmentations[0].area == 0
    left = next(i for i in range(200) if scene(i)[1].sum() < MIN_IN_VIEW * TARGET.sum())  # most of it is out
    assert abs(frame_index(dropped) - left) <= 3, (frame_index(dropped), left)
    for array in tracked:  # what was kept before it left was the target
        [segmentation] = array.segmentations
        if segmentation.found:
            assert iou(mask_of(segmentation), scene(frame_index(array))[1]) > 0.7


def test_a_new_command_or_a_stop_discards_the_track(ros, make_node, seg_checkpoint):
    node, driver, answered = started(ros, make_node, seg_checkpoint, delay_s=0.4, tracking="on")
    play(driver, range(20))
    assert wait_for(lambda: len(by_source(driver)[1]) >= 3)
    driver.send_command("stop")
    assert wait_for(lambda: node.target.current is None)
    time.sleep(0.2)
    count = len(driver.arrays)
    play(driver, range(20, 30))
    time.sleep(0.3)
    assert len(driver.arrays) == count  # no target: nothing tracked, nothing answered
    oracle(node, 1.5)
    driver.send_command("the blue bowl")
    assert wait_for(lambda: node.target.current is not None)
    count = len(driver.arrays)
    play(driver, range(30, 70), until=lambda: len(driver.arrays) > count + 3)
    assert wait_for(lambda: len(driver.arrays) > count + 3)
    new = list(driver.arrays)[count:]
    first_model = next(i for i, a in enumerate(new) if a.segmentations[0].source == 0)
    assert all(a.command == "the blue bowl" for a in new)
    assert first_model == 0  # before the new command's first answer, no result rests on the old one


def _disc_behind_board(step: int) -> tuple[np.ndarray, np.ndarray]:
    """A red disc on a textured table, a white board sweeping over it from the left: (image, the disc's whole mask)."""
    rng = np.random.default_rng(3)
    table = cv2.GaussianBlur(rng.uniform(60, 200, (240, 320)).astype(np.float32), (0, 0), 3).astype(np.uint8)
    image = np.dstack([table] * 3)
    whole = np.zeros((240, 320), np.uint8)
    cv2.circle(whole, (160, 120), 25, 1, -1)
    image[whole.astype(bool)] = (200, 30, 30)
    image[:, max(0, -80 + 8 * step):max(0, 10 + 8 * step)] = 235
    return image, whole.astype(bool)


def test_on_the_cpu_frames_are_tracked_at_an_even_rate_by_default(ros, make_node, seg_checkpoint):
    """With the model on the CPU and track_rate_hz 0 (the default), at most TRACK_RATE_ON_CPU_HZ tracked results a
    second (7.5 of a 20 fps camera's frames: every 2nd or 3rd, never two in a row), plus the fresh answer carried to
    the newest frame; /diagnostics says the rate in force."""
    from mllmseg_ros.ros.params import TRACK_RATE_ON_CPU_HZ

    statuses = diagnostics_listener(ros)
    node, driver, _ = started(ros, make_node, seg_checkpoint, delay_s=1.0, tracking="on", track_rate_hz=0.0)
    assert node.settings.device == "cpu" and node.settings.track_rate_hz == 0.0
    play(driver, range(80))
    assert wait_for(lambda: len(by_source(driver)[0]) >= 3)
    time.sleep(0.3)
    model, tracked = by_source(driver)
    answered = {frame_index(array) for array in model}
    carried = sorted({frame_index(array) for array in tracked})  # a fresh answer may be published on a frame again
    seconds = 80 / CAMERA_HZ
    assert TRACK_RATE_ON_CPU_HZ * seconds * 0.6 <= len(tracked) <= TRACK_RATE_ON_CPU_HZ * seconds + len(model) + 1, carried
    # A fresh answer is published at once on the newest frame, off the schedule: the first tracked result after each
    # model answer (the model may take that frame or, on a busy machine, one that arrived a moment later)
    arrays = [a for a in driver.arrays if a.segmentations]
    fresh = {frame_index(b) for a, b in zip(arrays, arrays[1:]) if is_model_answer(a) and not is_model_answer(b)}
    # between answers, no two neighbouring frames
    off_schedule = answered | fresh
    gaps = [b - a for a, b in zip(carried, carried[1:]) if not off_schedule & {a - 1, a, b - 1, b}]
    assert gaps and min(gaps) >= 2 and max(gaps) <= 4, carried
    assert wait_for(lambda: any(float(values_of(status).get("track_rate_hz", 0)) == TRACK_RATE_ON_CPU_HZ
                                for status in list(statuses)))


def test_a_rate_given_holds_and_one_above_the_camera_rate_tracks_every_frame(ros, make_node, seg_checkpoint):
    node, driver, _ = started(ros, make_node, seg_checkpoint, delay_s=1.0, tracking="on", track_rate_hz=100.0)
    play(driver, range(40))
    assert wait_for(lambda: len(by_source(driver)[0]) >= 1)
    time.sleep(0.3)
    carried = sorted(frame_index(array) for array in by_source(driver)[1])
    first = carried[0]
    assert len(carried) >= 0.9 * (39 - first), carried  # a busy test machine may drop a frame now and then


def test_due_frames_are_evenly_spaced_despite_arrival_jitter():
    """7.5 Hz of a 15 fps camera whose frames arrive up to 12 ms early or late: every 2nd frame exactly; 5 Hz every
    3rd; 10 Hz every 1st or 2nd frame, at most 10 a second; 0: all of them."""
    from mllmseg_ros.engine.tracking import MaskTracker
    from mllmseg_ros.ros.tracking import TrackingWorker, _CameraTrack

    jitter = np.random.default_rng(5).uniform(-0.012, 0.012, 300)
    for rate, expected_gaps in ((7.5, {2}), (5.0, {3}), (10.0, {1, 2}), (0.0, {1})):
        camera = _CameraTrack(MaskTracker())
        due = []
        for index in range(300):
            received = 100.0 + index / 15.0 + jitter[index]
            camera.arrivals.append(received)
            if TrackingWorker._due(camera, received, rate):
                due.append(index)
        gaps = {b - a for a, b in zip(due, due[1:])}
        assert gaps == expected_gaps, (rate, sorted(gaps))
        if rate:
            assert len(due) <= rate * 300 / 15.0 + 1, (rate, len(due))


def test_the_cpu_rate_applies_to_the_cpu_only():
    from types import SimpleNamespace

    from mllmseg_ros.ros.params import TRACK_RATE_ON_CPU_HZ
    from mllmseg_ros.ros.tracking import TrackingWorker

    assert TrackingWorker.rate_hz(SimpleNamespace(track_rate_hz=0.0, device="cpu")) == TRACK_RATE_ON_CPU_HZ
    assert TrackingWorker.rate_hz(SimpleNamespace(track_rate_hz=0.0, device="cuda:0")) == 0.0
    assert TrackingWorker.rate_hz(SimpleNamespace(track_rate_hz=3.0, device="cpu")) == 3.0
    assert TrackingWorker.rate_hz(SimpleNamespace(track_rate_hz=30.0, device="cuda")) == 30.0


@pytest.mark.parametrize("same_command", [True, False])
def test_a_not_found_answer_about_a_hidden_target_keeps_the_earlier_answers_age(same_command):
    """The model said "not found" about a frame on which the tracker held the target hidden behind a board: the
    track goes on, and its results keep the earlier answer's stamp and confidence (answer_age_s counts from there).
    An answer to another command is never mixed with the old track."""
    from types import SimpleNamespace

    from mllmseg_ros.ros.buffers import Frame
    from mllmseg_ros.ros.tracking import TrackingWorker, frame_key

    settings = SimpleNamespace(mode="continuous", tracking="on", track_min_confidence=0.5)
    worker = TrackingWorker(settings=lambda: settings, target=None, streams=list, report=print, logger=None)
    stream = SimpleNamespace(latest=None)
    tracker = worker._camera(stream).tracker
    frames = [Frame(_disc_behind_board(step)[0], None, received=float(step), stamp=100.0 + step) for step in range(40)]

    def answer(mask):
        return [SimpleNamespace(found=mask is not None, mask=mask, expression="the red cup",
                                confidence=0.9 if mask is not None else 0.2)]

    tracker.add_frame(frames[0].rgb, frame_key(frames[0]))
    tracker.remember(frames[0].rgb, frame_key(frames[0]))
    worker.model_answered(stream, frames[0], SimpleNamespace(serial=1), answer(_disc_behind_board(0)[1]))
    hidden = None
    for step in range(1, 39):
        [state] = tracker.add_frame(frames[step].rgb, frame_key(frames[step]))
        image, whole = _disc_behind_board(step)
        if not (image[whole] == (200, 30, 30)).all(axis=1).any():  # the board covers all of it
            assert not state.found and state.reason == "occluded"
            hidden = step
            break
    assert hidden is not None
    tracker.remember(frames[hidden].rgb, frame_key(frames[hidden]))
    tracker.add_frame(frames[hidden + 1].rgb, frame_key(frames[hidden + 1]))
    worker.model_answered(stream, frames[hidden], SimpleNamespace(serial=1 if same_command else 2), answer(None))
    answer_now = worker._camera(stream).answer
    if same_command:
        assert answer_now.stamps == [100.0] and answer_now.confidences == [0.9]
        assert tracker.results()[0].reason == "occluded"
    else:
        assert answer_now.stamps == [frames[hidden].stamp] and answer_now.confidences == [0.2]
        assert tracker.results()[0].reason == "not found by the model"


def test_tracked_results_in_the_compact_mask_format(ros, make_node, seg_checkpoint):
    """mask_format png (docs/remote.md) changes how masks travel, nothing else: tracked masks decode to the carried
    ones, and confidence is P(target found) as in the full-size form (the answer's, at most the track's; 0 when lost)."""
    from mllmseg_ros.ros.compact import segmentation_mask

    node, driver, _ = started(ros, make_node, seg_checkpoint, delay_s=1.0, tracking="on", mask_format="png")
    play(driver, range(40))
    assert wait_for(lambda: len(by_source(driver)[1]) >= 10)
    model, tracked = by_source(driver)
    assert model and tracked
    for array in model + tracked:
        [segmentation] = array.segmentations
        assert len(segmentation.mask.data) == 0 and (segmentation.image_width, segmentation.image_height) == (WIDTH, HEIGHT)
        if not segmentation.found:
            assert segmentation.confidence == 0.0 and not segmentation_mask(segmentation).any()
            continue
        assert segmentation.confidence == pytest.approx(min(0.9, segmentation.track_confidence), abs=1e-6)
        assert iou(segmentation_mask(segmentation), scene(frame_index(array))[1]) > 0.7
