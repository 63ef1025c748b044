"""What the engine decides from the model's outputs, with those outputs chosen: found, mask, box, centroid and
confidence for [SEG] and [REJ] answers, masks that are empty, exactly at the threshold, or in two parts. The model's
mask and answer logits are replaced by known ones; everything after them (the engine's own code) runs as in use, on
the host path and on the device path (the one a GPU takes), which must agree."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mllmseg_ros.engine import Segmenter, SegmenterOptions

STRONG = 6.0  # mask logit: sigmoid(6) = 0.9975 inside, sigmoid(-6) = 0.0025 outside
SEG_MARGIN = 3.0  # [SEG] logit minus [REJ] logit of a [SEG] answer: P([SEG]) = sigmoid(3) = 0.9526


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> Segmenter:
    from mllmseg_ros.training.checkpoint_builder import random_checkpoint

    folder = random_checkpoint(tmp_path_factory.mktemp("decision"), ["the red cup", "the blue bowl"], image_size=56,
                               vision_width=32, llm_width=32)
    return Segmenter.from_pretrained(folder)


class Answers:
    """Replaces the model's answer logits and mask logits with chosen ones, one per answer slot, in order."""

    def __init__(self, segmenter: Segmenter, monkeypatch) -> None:
        self.segmenter, self.tokens = segmenter, segmenter.config.tokens
        self.decisions: list[str | int] = []
        self.maps: list[np.ndarray] = []
        self.size = 0
        decode, logits_at = segmenter.model.decode_masks, segmenter.model.decision_logits_at

        def masks(*args):
            shape = decode(*args).shape
            self.size = shape[-1]
            return torch.tensor(np.stack([m(self.size) for m in self.maps]), dtype=torch.float32).reshape(shape)

        def decisions(states):
            logits = logits_at(states)
            vocabulary_max = logits.abs().max()
            for row, decision in enumerate(self.decisions):  # one token well above every other
                token = {"SEG": self.tokens.seg, "REJ": self.tokens.rej}.get(decision, decision)
                other = self.tokens.rej if token == self.tokens.seg else self.tokens.seg
                logits[row] = -vocabulary_max - 10
                logits[row, token] = vocabulary_max + 10
                if token in (self.tokens.seg, self.tokens.rej):
                    logits[row, other] = vocabulary_max + 10 - SEG_MARGIN
            return logits

        monkeypatch.setattr(segmenter.model, "decode_masks", masks)
        monkeypatch.setattr(segmenter.model, "decision_logits_at", decisions)

    def ask(self, *answers, threshold: float = 0.5, largest: bool = False, on_device: bool = False, size: int = 56):
        """``answers``: (decision, map maker S -> S x S logits). Results on a ``size`` x ``size`` image (the model's
        own map size needs no resize, so logits land on pixels exactly)."""
        self.decisions = [a[0] for a in answers]
        self.maps = [a[1] for a in answers]
        seg = self.segmenter
        seg.options = SegmenterOptions(threshold=threshold, centroid_of_largest_component=largest)
        seg.postprocess_on_device = on_device
        seg.reset_image()
        expressions = ["the red cup", "the blue bowl", "the red bowl"][: len(answers)]
        image = np.random.default_rng(len(answers)).integers(0, 255, (size, size, 3), dtype=np.uint8)
        return seg.segment(image, expressions)


@pytest.fixture()
def answers(segmenter, monkeypatch) -> Answers:
    return Answers(segmenter, monkeypatch)


def box(rows: slice, columns: slice, inside: float = STRONG, outside: float = -STRONG):
    def make(size: int) -> np.ndarray:
        logits = np.full((size, size), outside, np.float32)
        logits[rows, columns] = inside
        return logits

    return make


def two_parts(size: int) -> np.ndarray:
    """A 3 x 3 part at the top left and a 6 x 8 part lower right (rows 30-35, columns 40-47)."""
    logits = np.full((size, size), -STRONG, np.float32)
    logits[2:5, 2:5] = STRONG
    logits[30:36, 40:48] = STRONG
    return logits


@pytest.mark.parametrize("on_device", [False, True])
def test_a_seg_answer_with_a_mask_is_found_where_the_mask_is(answers, on_device):
    result = answers.ask(("SEG", box(slice(10, 20), slice(30, 46))), on_device=on_device)[0]
    assert (result.decision, result.found) == ("SEG", True)
    assert result.mask.shape == (56, 56) and result.mask.sum() == result.area == 10 * 16
    assert result.mask[10:20, 30:46].all()
    assert result.bbox == (30, 10, 16, 10)
    assert result.centroid == pytest.approx((37.5, 14.5))
    assert result.seg_probability == pytest.approx(sigmoid(SEG_MARGIN), abs=1e-5)
    assert result.confidence == pytest.approx(min(sigmoid(SEG_MARGIN), sigmoid(STRONG)), abs=1e-5)
    assert result.probability.shape == (56, 56)


@pytest.mark.parametrize("on_device", [False, True])
def test_a_seg_answer_with_an_empty_mask_is_not_found(answers, on_device):
    """README: found is [SEG] and a non-empty mask. A [SEG] whose map stays below the threshold everywhere (peak 0.3)
    is not found, and its confidence is the map's peak, below 0.5."""
    result = answers.ask(("SEG", box(slice(0, 5), slice(0, 5), inside=-0.85)), on_device=on_device)[0]
    assert (result.decision, result.found, result.area, result.bbox, result.centroid) == ("SEG", False, 0, None, None)
    assert not result.mask.any()
    assert result.confidence == pytest.approx(sigmoid(-0.85), abs=1e-5) and result.confidence < 0.5


@pytest.mark.parametrize("on_device", [False, True])
def test_a_rej_answer_is_never_found_even_with_a_strong_mask(answers, on_device):
    result = answers.ask(("REJ", box(slice(10, 20), slice(10, 20))), on_device=on_device)[0]
    assert (result.decision, result.found, result.area, result.bbox, result.centroid) == ("REJ", False, 0, None, None)
    assert result.mask.shape == (56, 56) and result.mask.dtype == bool and not result.mask.any()
    assert result.seg_probability == pytest.approx(sigmoid(-SEG_MARGIN), abs=1e-5)
    assert result.confidence == pytest.approx(sigmoid(-SEG_MARGIN), abs=1e-5)  # min(P([SEG]), peak 0.9975)


@pytest.mark.parametrize("on_device", [False, True])
def test_a_one_pixel_mask_is_found(answers, on_device):
    result = answers.ask(("SEG", box(slice(5, 6), slice(7, 8))), on_device=on_device)[0]
    assert (result.found, result.area, result.bbox, result.centroid) == (True, 1, (7, 5, 1, 1), (7.0, 5.0))


@pytest.mark.parametrize("on_device", [False, True])
def test_a_peak_lost_in_the_resize_counts_at_most_the_threshold(answers, on_device):
    """One pixel of the model's map at 0.8, the image twice the map's size: bilinear upscaling spreads it below 0.5,
    so the mask is empty. Confidence counts the peak as at most the threshold (0.5), not 0.8."""
    hot = box(slice(20, 21), slice(30, 31), inside=math.log(0.8 / 0.2))
    result = answers.ask(("SEG", hot), on_device=on_device, size=112)[0]
    assert (result.decision, result.found, result.area) == ("SEG", False, 0)
    assert result.confidence == pytest.approx(0.5)


def test_on_a_cpu_the_masks_are_made_on_the_host_unless_asked(answers, monkeypatch):
    from mllmseg_ros.engine import segmenter as segmenter_module

    made_on_device = []
    original = segmenter_module.masks_on_device
    monkeypatch.setattr(segmenter_module, "masks_on_device", lambda *a: made_on_device.append(1) or original(*a))
    assert answers.ask(("SEG", box(slice(0, 4), slice(0, 4))), on_device=None)[0].area == 16
    assert made_on_device == []  # postprocess_on_device None: the device path only for CUDA tensors
    assert answers.ask(("SEG", box(slice(0, 4), slice(0, 4))), on_device=True)[0].area == 16
    assert made_on_device == [1]


def test_an_answer_that_is_neither_seg_nor_rej_counts_as_seg(answers):
    """The official code: only [REJ] rejects."""
    other = 5
    result = answers.ask((other, box(slice(0, 4), slice(0, 4))))[0]
    assert (result.decision, result.found, result.area) == ("SEG", True, 16)


@pytest.mark.parametrize("on_device", [False, True])
def test_a_pixel_exactly_at_the_threshold_is_not_in_the_mask(answers, on_device):
    """mask = probability > threshold: logit 0 is probability 0.5 exactly; at threshold 0.5 those pixels are out, at
    0.49 in. A 4 x 4 block at 0.5 beside a 2 x 2 block clearly above."""
    def at_threshold(size: int) -> np.ndarray:
        logits = np.full((size, size), -STRONG, np.float32)
        logits[20:24, 20:24] = 0.0
        logits[40:42, 10:12] = STRONG
        return logits

    strict = answers.ask(("SEG", at_threshold), threshold=0.5, on_device=on_device)[0]
    assert strict.area == 4 and strict.bbox == (10, 40, 2, 2)
    lower = answers.ask(("SEG", at_threshold), threshold=0.49, on_device=on_device)[0]
    assert lower.area == 4 + 16 and lower.mask[20:24, 20:24].all()
    only_half = answers.ask(("SEG", box(slice(0, 3), slice(0, 3), inside=0.0)), threshold=0.5, on_device=on_device)[0]
    assert not only_half.found and only_half.area == 0
    assert only_half.confidence == pytest.approx(0.5, abs=1e-6) and not only_half.confidence > 0.5


@pytest.mark.parametrize("on_device", [False, True])
def test_the_threshold_moves_the_mask_edge(answers, on_device):
    """A ramp of probabilities across columns: the threshold picks where the mask starts."""
    def ramp(size: int) -> np.ndarray:
        probability = np.tile(np.linspace(0.05, 0.95, size, dtype=np.float32), (size, 1))
        return np.log(probability / (1 - probability))

    low = answers.ask(("SEG", ramp), threshold=0.3, on_device=on_device)[0]
    high = answers.ask(("SEG", ramp), threshold=0.7, on_device=on_device)[0]
    columns = np.linspace(0.05, 0.95, 56)
    assert low.bbox[0] == int(np.argmax(columns > 0.3)) and high.bbox[0] == int(np.argmax(columns > 0.7))
    assert low.area == 56 * int((columns > 0.3).sum()) and high.area == 56 * int((columns > 0.7).sum())


@pytest.mark.parametrize("on_device", [False, True])
def test_centroid_of_the_largest_part_when_asked(answers, on_device):
    whole = answers.ask(("SEG", two_parts), on_device=on_device)[0]
    assert whole.area == 9 + 48 and whole.bbox == (2, 2, 46, 34)
    assert whole.centroid == pytest.approx(((9 * 3 + 48 * 43.5) / 57, (9 * 3 + 48 * 32.5) / 57))
    largest = answers.ask(("SEG", two_parts), largest=True, on_device=on_device)[0]
    assert largest.centroid == pytest.approx((43.5, 32.5))
    assert (largest.area, largest.bbox) == (whole.area, whole.bbox)  # the mask and its box stay whole


@pytest.mark.parametrize("on_device", [False, True])
def test_each_answer_of_a_command_keeps_its_own_decision_and_mask(answers, on_device):
    results = answers.ask(("REJ", box(slice(0, 10), slice(0, 10))), ("SEG", box(slice(30, 34), slice(5, 9))),
                          ("SEG", box(slice(0, 2), slice(0, 2), inside=-3.0)), on_device=on_device)
    assert [r.expression for r in results] == ["the red cup", "the blue bowl", "the red bowl"]
    assert [(r.decision, r.found, r.area) for r in results] == [("REJ", False, 0), ("SEG", True, 16), ("SEG", False, 0)]
    assert results[1].bbox == (5, 30, 4, 4)
    assert [r.confidence > 0.5 for r in results] == [False, True, False]


def test_a_map_resized_to_the_image_keeps_its_place(answers):
    """The model's square map brought to a larger image: the mask lands on the same part of the picture."""
    result = answers.ask(("SEG", box(slice(14, 28), slice(28, 56))), size=112)[0]
    assert result.mask.shape == (112, 112)
    x, y, w, h = result.bbox
    assert (x, y) == pytest.approx((56, 28), abs=1) and (w, h) == pytest.approx((56, 28), abs=2)
    assert result.centroid == pytest.approx((83.5, 41.5), abs=1.0)
