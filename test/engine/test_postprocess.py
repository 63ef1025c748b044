"""From a probability map to what a robot uses, with known answers: resizing as the official evaluation does, the
mask's parts, box, centroid and area, confidence, and the device path (what a GPU runs) against the host path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mllmseg_ros.engine.postprocess import (found_confidence, largest_component, mask_geometry, masks_on_device,
                                            resize_probability)


def test_resize_is_the_official_bilinear_with_half_pixel_centres():
    probability = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    ours = resize_probability(probability, 48, 64)
    official = F.interpolate(torch.from_numpy(probability)[None, None], (48, 64), mode="bilinear", align_corners=False)[0, 0]
    assert ours.shape == (48, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, official.numpy(), atol=1e-5)


def test_a_map_of_the_image_size_is_kept_as_float32():
    probability = np.linspace(0, 1, 12, dtype=np.float64).reshape(3, 4)
    same = resize_probability(probability, 3, 4)
    assert same.dtype == np.float32 and np.array_equal(same, probability.astype(np.float32))


def test_largest_component_joins_diagonal_neighbours():
    """8-connected: a diagonal line is one part (6 px), larger than a 2 x 2 square elsewhere."""
    mask = np.zeros((20, 20), bool)
    for i in range(6):
        mask[10 + i, 10 + i] = True
    mask[0:2, 0:2] = True
    largest = largest_component(mask)
    assert largest.sum() == 6 and largest[10:16, 10:16].any() and not largest[0:2, 0:2].any()


def test_largest_component_picks_the_largest_whatever_its_label():
    mask = np.zeros((20, 30), bool)
    mask[0:2, 0:2] = True  # first label, 4 px
    mask[5:8, 5:8] = True  # 9 px
    mask[12:20, 20:30] = True  # last label, 80 px
    assert largest_component(mask).sum() == 80
    single = np.zeros((5, 5), bool)
    single[1:3, 1:3] = True
    assert np.array_equal(largest_component(single), single)
    assert not largest_component(np.zeros((5, 5), bool)).any()


def test_geometry_of_a_mask_away_from_the_origin():
    """The box and centroid are of the image, not of the box the moments are computed in."""
    mask = np.zeros((48, 64), bool)
    mask[30:40, 50:54] = True  # rows 30..39, columns 50..53
    mask[30, 49] = True  # one pixel more to the left
    geometry = mask_geometry(mask)
    assert geometry.area == 41 and geometry.bbox == (49, 30, 5, 10)
    assert geometry.centroid == pytest.approx(((40 * 51.5 + 49) / 41, (40 * 34.5 + 30) / 41))
    largest = mask_geometry(mask, centroid_of_largest_component=True)
    assert largest.centroid == pytest.approx(geometry.centroid)  # one part (the pixel touches the block)


def test_centroid_of_the_largest_part_away_from_the_origin():
    mask = np.zeros((48, 64), bool)
    mask[40:44, 50:60] = True  # 40 px, centre (54.5, 41.5)
    mask[10:12, 20:22] = True  # 4 px
    assert mask_geometry(mask, centroid_of_largest_component=True).centroid == pytest.approx((54.5, 41.5))


@pytest.mark.parametrize("seg, peak, empty, threshold, expected", [
    (0.9, 0.8, False, 0.5, 0.8),  # the map is the weaker part
    (0.7, 0.99, False, 0.5, 0.7),  # the decision is the weaker part
    (0.9, 0.8, True, 0.5, 0.5),  # an empty mask: its peak counts as at most the threshold
    (0.9, 0.8, True, 0.3, 0.3),
    (0.2, 0.8, True, 0.5, 0.2),
    (0.9, 0.45, True, 0.5, 0.45),
])
def test_confidence_is_the_weaker_of_decision_and_map(seg, peak, empty, threshold, expected):
    assert found_confidence(seg, peak, empty, threshold) == pytest.approx(expected)


def test_device_masks_of_known_maps():
    """Two 8 x 8 maps brought to 16 x 16 images and one kept at 8 x 8: masks, boxes and centroids exact; a map
    exactly at the threshold gives nothing; a rejected answer gives nothing whatever its map."""
    maps = torch.full((4, 8, 8), 0.1)
    maps[0, 2:4, 4:8] = 0.9  # upscaled x2: rows 4..7, columns 8..15 (the edge rows blend to 0.5 and below)
    maps[1, :, :] = 0.5  # at the threshold: not above it
    maps[2, 1:3, 1:2] = 0.9
    maps[3, 0:8, 0:8] = 0.9
    sizes = [(16, 16), (16, 16), (8, 8), (8, 8)]
    keep = torch.tensor([True, True, True, False])
    results = masks_on_device(maps, sizes, 0.5, keep)
    for (mask, geometry), size, k in zip(results, sizes, range(4)):
        host = resize_probability(maps[k].numpy(), *size) > 0.5 if keep[k] else np.zeros(size, bool)
        assert mask.shape == size and np.array_equal(mask, host), k
        expected = mask_geometry(host)
        assert (geometry.area, geometry.bbox) == (expected.area, expected.bbox), k
        assert geometry.centroid == (None if expected.centroid is None else pytest.approx(expected.centroid)), k
    assert results[0][1].area > 0 and results[0][1].bbox[0] >= 7
    assert results[1][1] == mask_geometry(np.zeros((16, 16), bool))
    assert results[2][1].bbox == (1, 1, 1, 2) and results[2][1].centroid == pytest.approx((1.0, 1.5))
    assert results[3][1].area == 0 and not results[3][0].any()


def test_device_geometry_of_a_mask_at_the_far_corner():
    """A mask ending on the last row and column: the box reaches the image edge exactly."""
    maps = torch.zeros(1, 6, 10)
    maps[0, 3:6, 7:10] = 1.0
    mask, geometry = masks_on_device(maps, [(6, 10)], 0.5, torch.tensor([True]))[0]
    assert geometry.area == 9 and geometry.bbox == (7, 3, 3, 3) and geometry.centroid == pytest.approx((8.0, 4.0))


def test_device_resize_of_a_ramp_is_the_hosts_half_pixel_resize():
    """A map rising left to right, brought to a size that is no multiple of it: where the mask starts depends on how
    the map's pixels are placed (half-pixel centres, as the host and the official evaluation have it)."""
    ramp = torch.linspace(0.0, 1.0, 8).repeat(8, 1)[None] * 0.98 + 0.011  # no resized value lands on 0.3 exactly
    mask, geometry = masks_on_device(ramp, [(5, 37)], 0.3, torch.tensor([True]))[0]
    host = resize_probability(ramp[0].numpy(), 5, 37) > 0.3
    assert np.array_equal(mask, host)
    aligned = F.interpolate(ramp[:, None], size=(5, 37), mode="bilinear", align_corners=True)[0, 0].numpy() > 0.3
    assert not np.array_equal(aligned, host)  # the placement matters for this map
    assert geometry.bbox == mask_geometry(host).bbox


def test_device_box_of_a_mask_whose_first_and_last_columns_hold_one_pixel():
    maps = torch.zeros(1, 9, 9)
    maps[0, 4, 1] = maps[0, 4, 7] = 1.0  # single pixels at the far left and right of a block
    maps[0, 2:7, 2:7] = 1.0
    _, geometry = masks_on_device(maps, [(9, 9)], 0.5, torch.tensor([True]))[0]
    assert geometry.bbox == (1, 2, 7, 5) == mask_geometry(maps[0].numpy() > 0.5).bbox


def test_geometry_by_default_is_of_the_whole_mask():
    """Callers that do not ask for the largest part (the evaluation's ground truth, say) get the whole mask's centroid."""
    mask = np.zeros((10, 20), bool)
    mask[2:6, 1:5] = True  # 16 pixels around (2.5, 3.5)
    mask[7:9, 15:17] = True  # 4 pixels around (15.5, 7.5)
    assert mask_geometry(mask).centroid == pytest.approx(((16 * 2.5 + 4 * 15.5) / 20, (16 * 3.5 + 4 * 7.5) / 20))
