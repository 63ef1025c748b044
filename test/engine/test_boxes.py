from __future__ import annotations

from mllmseg_ros.engine.boxes import widened_box


def test_widened_box_grows_on_every_side_inside_the_image():
    assert widened_box((10, 20, 5, 6), 3, (100, 80)) == (7, 17, 18, 29)


def test_widened_box_is_clamped_to_the_image():
    assert widened_box((1, 2, 5, 6), 4, (10, 8, 3)) == (0, 0, 8, 10)


def test_widened_box_takes_separate_margins_across_and_down():
    assert widened_box((10, 10, 2, 2), (1, 5), (100, 100)) == (9, 5, 13, 17)

