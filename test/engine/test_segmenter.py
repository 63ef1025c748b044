"""Engine results: parity with the official masks, cache and batch equivalence, geometry, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mllmseg_ros.engine import Segmenter, mask_geometry
from mllmseg_ros.engine.postprocess import largest_component

CACHE_ATOL = 1e-5
PARITY_ATOL = 1e-4


@pytest.fixture(scope="module")
def segmenter(golden_checkpoint) -> Segmenter:
    return Segmenter.from_pretrained(golden_checkpoint)


def golden_image(golden_dir, name):
    return np.load(golden_dir / "inputs" / f"{name}_uint8.npy")


def official_resize(pred_mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """How the official evaluation brings a 448 map to the image size."""
    return F.interpolate(torch.from_numpy(pred_mask)[None, None], (height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def test_prompt_ids_match_golden_input_ids(segmenter, golden_dir):
    ids = segmenter.prompt_ids(["the red cup"])
    assert ids.dtype == torch.long and ids.shape[0] == 1
    assert ids[0].tolist() == np.load(golden_dir / "cases" / "B_single_seg" / "input_ids.npy")[0].tolist()


@pytest.mark.parametrize(
    "case, image, expressions, decisions",
    [
        ("A_seg_rej", "image0", ["the red cup", "the blue plate"], ["SEG", "REJ"]),
        ("B_single_seg", "image1", ["the red cup"], ["REJ"]),
        ("C_nonsquare_seg", "image2_nonsquare", ["man in white shirt"], ["SEG"]),
    ],
)
def test_results_match_official_masks_at_image_size(segmenter, golden_dir, case, image, expressions, decisions):
    frame = golden_image(golden_dir, image)
    results = segmenter.segment(frame, expressions)
    assert [r.expression for r in results] == expressions
    assert [r.decision for r in results] == decisions
    golden = np.load(golden_dir / "cases" / case / "pred_masks.npy")[0]
    first = results[0]
    assert first.probability.shape == frame.shape[:2]
    np.testing.assert_allclose(first.probability, official_resize(golden, *frame.shape[:2]), atol=PARITY_ATOL, rtol=0)
    for result in results:
        if result.decision == "REJ":
            assert not result.found and not result.mask.any() and result.area == 0 and result.bbox is None
        else:
            assert np.array_equal(result.mask, result.probability > 0.5)
            assert result.found == bool(result.mask.any())


def test_seg_probability_is_the_seg_vs_rej_softmax(segmenter, golden_dir):
    logits = np.load(golden_dir / "cases" / "A_seg_rej" / "llm_logits_at_decisions.npy")
    results = segmenter.segment(golden_image(golden_dir, "image0"), ["the red cup", "the blue plate"])
    seg_id, rej_id = segmenter.config.tokens.seg, segmenter.config.tokens.rej
    for result, row in zip(results, logits):
        expected = 1 / (1 + np.exp(-(row[seg_id] - row[rej_id])))
        assert result.seg_probability == pytest.approx(expected, abs=1e-4)
    assert results[0].seg_probability > 0.5 > results[1].seg_probability


def test_confidence_is_the_probability_the_target_is_found(segmenter, golden_dir):
    """One meaning for found and not-found alike: the smaller of P([SEG]) and the map's peak, so at the default
    threshold a found target has it above 0.5 and a target not found below."""
    results = segmenter.segment(golden_image(golden_dir, "image0"), ["the red cup", "the blue plate"])
    for result in results:
        peak = float(result.probability_map.max()) if result.area else min(float(result.probability_map.max()), 0.5)
        assert result.confidence == pytest.approx(min(result.seg_probability, peak))
        assert result.probability.max() <= result.probability_map.max() + 1e-6  # resizing never exceeds the peak
        assert 0.0 <= result.confidence <= 1.0
        assert result.found == (result.confidence > 0.5), (result.decision, result.area, result.confidence)


def test_an_empty_mask_after_seg_is_not_a_confident_answer(segmenter, golden_dir, monkeypatch):
    """[SEG], but no pixel above the threshold: found is false, and so must the confidence say (it was P([SEG]),
    0.94 here, a 'not found' that a planner thresholding confidence took for a find)."""
    decode = segmenter.model.decode_masks
    monkeypatch.setattr(segmenter.model, "decode_masks", lambda *args: decode(*args) * 0.0 - 3.0)  # peak 0.047
    segmenter.reset_image()
    result = segmenter.segment(golden_image(golden_dir, "image0"), ["the red cup"])[0]
    segmenter.reset_image()
    assert result.decision == "SEG" and result.seg_probability > 0.9
    assert not result.found and result.area == 0
    assert result.confidence == pytest.approx(1 / (1 + np.exp(3.0)), abs=1e-6)


def test_cached_equals_uncached(segmenter, golden_dir):
    frame = golden_image(golden_dir, "image2_nonsquare")
    expressions = ["man in white shirt", "the dog on the left", "a cup"]
    segmenter.reset_image()
    cached = segmenter.segment(frame, expressions)
    cached_again = segmenter.segment(frame, expressions)  # served from the frame cache
    uncached = segmenter.segment(frame, expressions, cache=False)
    for a, b, c in zip(cached, cached_again, uncached):
        assert a.decision == b.decision == c.decision
        np.testing.assert_allclose(a.probability, c.probability, atol=CACHE_ATOL, rtol=0)
        np.testing.assert_allclose(b.probability, c.probability, atol=CACHE_ATOL, rtol=0)
        assert a.confidence == pytest.approx(c.confidence, abs=1e-5)


def test_second_question_on_a_frame_does_not_reencode(segmenter, golden_dir, monkeypatch):
    frame = golden_image(golden_dir, "image0")
    segmenter.segment(frame, ["the red cup"])
    calls = []
    monkeypatch.setattr(segmenter.model, "extract_image_features", lambda *a: calls.append(a))
    segmenter.segment(frame, ["the blue plate"])
    segmenter.segment(frame.copy(), ["a cup on the left"])  # same pixels, another array
    assert calls == []


def test_first_question_runs_the_llm_once_and_keeps_a_prefix_cache(segmenter, golden_dir, monkeypatch):
    frame = golden_image(golden_dir, "image2_nonsquare")
    backbone = segmenter.model.language_model.model
    passes = []
    original = backbone.forward
    monkeypatch.setattr(backbone, "forward", lambda *a, **k: passes.append(1) or original(*a, **k))
    frames, fused = segmenter.encode_and_query([frame], [["man in white shirt", "a cup"]])
    assert len(passes) == 1
    assert frames.cache.get_seq_length() == len(segmenter._prefix_ids)
    # The kept frame answers a new question exactly as a frame from encode() does, and as the official single pass.
    later = segmenter.query(frames, [["the dog on the left"]])[0]
    reference = segmenter.query(segmenter.encode([frame]), [["the dog on the left"]])[0]
    uncached = segmenter.segment(frame, ["the dog on the left"], cache=False)
    for a, b, c in zip(later, reference, uncached):
        assert a.decision == b.decision == c.decision
        np.testing.assert_allclose(a.probability, b.probability, atol=CACHE_ATOL, rtol=0)
        np.testing.assert_allclose(a.probability, c.probability, atol=CACHE_ATOL, rtol=0)
    for a, c in zip(fused[0], segmenter.segment(frame, ["man in white shirt", "a cup"], cache=False)):
        np.testing.assert_allclose(a.probability, c.probability, atol=CACHE_ATOL, rtol=0)


def test_a_frame_changed_in_place_is_encoded_again(segmenter, golden_dir, monkeypatch):
    buffer = golden_image(golden_dir, "image0").copy()
    segmenter.segment(buffer, ["the red cup"])
    buffer[:10] = 0  # a camera driver reusing its buffer for the next frame
    calls = []
    original = segmenter.model.extract_image_features
    monkeypatch.setattr(segmenter.model, "extract_image_features", lambda *a: calls.append(1) or original(*a))
    segmenter.segment(buffer, ["the red cup"])
    assert calls == [1]


def test_batched_frames_equal_single_frames(segmenter, golden_dir):
    frames = [golden_image(golden_dir, "image0"), golden_image(golden_dir, "image2_nonsquare")]
    expressions = [["the red cup", "the blue plate"], ["man in white shirt"]]
    batched = segmenter.segment_batch(frames, expressions)
    for frame, exprs, batch_results in zip(frames, expressions, batched):
        single = segmenter.segment(frame, exprs, cache=False)
        assert [r.decision for r in batch_results] == [r.decision for r in single]
        for a, b in zip(batch_results, single):
            assert a.probability.shape == frame.shape[:2]
            np.testing.assert_allclose(a.probability, b.probability, atol=CACHE_ATOL, rtol=0)


def test_command_reports_the_expression_used(segmenter, golden_dir):
    results = segmenter.segment_command(golden_image(golden_dir, "image0"), "Pick up the RED cup!; go to the blue plate")
    assert [r.expression for r in results] == ["the red cup", "the blue plate"]


def test_bgr_input_gives_the_rgb_result(segmenter, golden_dir):
    frame = golden_image(golden_dir, "image0")
    rgb = segmenter.segment(frame, ["the red cup"])[0]
    bgr = segmenter.segment(np.ascontiguousarray(frame[:, :, ::-1]), ["the red cup"], color="bgr")[0]
    np.testing.assert_allclose(rgb.probability, bgr.probability, atol=1e-6)


@pytest.mark.parametrize("expressions", [[""], ["   "], [" . "], [], [3]])
def test_bad_expressions_are_rejected(segmenter, golden_dir, expressions):
    with pytest.raises(ValueError):
        segmenter.segment(golden_image(golden_dir, "image0"), expressions)


def test_over_long_expressions_are_rejected_not_truncated(segmenter):
    words = " ".join(["cup"] * 40000)
    with pytest.raises(ValueError, match="more than the model's context"):
        segmenter.prompt_ids([words])


def test_bad_images_are_rejected(segmenter):
    with pytest.raises(ValueError, match="uint8"):
        segmenter.segment(np.zeros((8, 8, 3), np.float64), ["a cup"])


def test_geometry_of_a_known_mask():
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:16] = True  # 4 x 6 rectangle: rows 5..8, cols 10..15
    geometry = mask_geometry(mask)
    assert geometry.area == 24
    assert geometry.bbox == (10, 5, 6, 4)
    assert geometry.centroid == pytest.approx((12.5, 6.5))


def test_centroid_of_largest_component():
    mask = np.zeros((20, 30), bool)
    mask[0:2, 0:2] = True  # 4 px blob at (0.5, 0.5)
    mask[10:14, 20:24] = True  # 16 px blob at (21.5, 11.5)
    assert mask_geometry(mask).centroid == pytest.approx(((4 * 0.5 + 16 * 21.5) / 20, (4 * 0.5 + 16 * 11.5) / 20))
    assert mask_geometry(mask, centroid_of_largest_component=True).centroid == pytest.approx((21.5, 11.5))
    assert mask_geometry(mask, centroid_of_largest_component=True).bbox == (0, 0, 24, 14)  # box of the whole mask
    assert largest_component(mask).sum() == 16


def test_empty_mask_geometry():
    geometry = mask_geometry(np.zeros((5, 5), bool))
    assert (geometry.area, geometry.bbox, geometry.centroid) == (0, None, None)


def test_threshold_is_configurable(golden_checkpoint, golden_dir):
    from mllmseg_ros.engine import SegmenterOptions

    frame = golden_image(golden_dir, "image0")
    areas = []
    for threshold in (0.3, 0.5, 0.7):
        seg = Segmenter.from_pretrained(golden_checkpoint, options=SegmenterOptions(threshold=threshold))
        result = seg.segment(frame, ["the red cup"])[0]
        assert np.array_equal(result.mask, result.probability > threshold)
        areas.append(result.area)
    assert areas[0] >= areas[1] >= areas[2] and areas[0] > areas[2]


def test_masks_on_device_equal_the_host_path_on_the_same_maps():
    """The torch post-processing (used on a GPU) against resize + threshold + mask_geometry on the host, for maps of
    several images of two sizes (a square one needs no resize), one answer rejected and one map below threshold."""
    from mllmseg_ros.engine.postprocess import masks_on_device, resize_probability

    generator = torch.Generator().manual_seed(3)
    square = torch.rand(5, 28, 28, generator=generator)
    square = F.avg_pool2d(square[:, None], 5, stride=1, padding=2)[:, 0]  # smooth blobs, as a decoder's maps are
    square[3] *= 0.4  # nothing above the threshold: an empty mask
    sizes = [(48, 64), (48, 64), (28, 28), (37, 91), (37, 91)]
    keep = torch.tensor([True, False, True, True, True])
    ours = masks_on_device(square, sizes, 0.5, keep)
    compared_pixels = differing_pixels = 0
    for k, ((mask, geometry), size) in enumerate(zip(ours, sizes)):
        probability = resize_probability(square[k].numpy(), *size)
        expected = probability > 0.5 if keep[k] else np.zeros(size, dtype=bool)
        assert mask.shape == size and mask.dtype == bool
        differing_pixels += int((mask != expected).sum())
        compared_pixels += mask.size
        # Off the threshold's float32 rounding the masks agree exactly; the geometry is the mask's own.
        host = mask_geometry(mask)
        assert (geometry.area, geometry.bbox) == (host.area, host.bbox)
        assert geometry.centroid == (None if host.centroid is None else pytest.approx(host.centroid, abs=1e-9))
    assert differing_pixels <= compared_pixels * 1e-4
    assert ours[1][1].area == 0 and ours[1][1].bbox is None and ours[3][1].area == 0
    assert all(geometry.area > 0 for k, (_, geometry) in enumerate(ours) if k not in (1, 3))


@pytest.mark.parametrize("largest", [False, True])
def test_device_postprocessing_gives_the_host_results(golden_checkpoint, golden_dir, largest):
    """The engine's post-processing where the model runs (on a GPU by default) forced on the CPU: the same answers."""
    host, device = Segmenter.from_pretrained(golden_checkpoint), Segmenter.from_pretrained(golden_checkpoint)
    device.postprocess_on_device = True
    for seg in (host, device):
        seg.options.centroid_of_largest_component = largest
        seg.options.threshold = 0.45  # some golden maps sit near 0.5 everywhere: a threshold that cuts them in parts
    frames = [golden_image(golden_dir, "image0"), golden_image(golden_dir, "image2_nonsquare")]
    expressions = [["the red cup", "the blue plate"], ["man in white shirt"]]
    for ours, theirs in zip(device.segment_batch(frames, expressions), host.segment_batch(frames, expressions)):
        for a, b in zip(ours, theirs):
            assert (a.expression, a.decision, a.found) == (b.expression, b.decision, b.found)
            assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
            assert np.array_equal(a.mask, b.mask)
            assert (a.area, a.bbox) == (b.area, b.bbox) and a.centroid == pytest.approx(b.centroid)
            # the square map kept by the device path is brought to the image's size when read
            np.testing.assert_allclose(a.probability, b.probability, atol=1e-6, rtol=0)
    assert any(r.found for results in host.segment_batch(frames, expressions) for r in results)
