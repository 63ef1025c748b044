"""The target's colours against its surroundings, learnt on the model's frame: where its outline is now.

A colour histogram ratio (the target / a ring around it, on the model's frame) says per pixel how much more likely a
colour is the target's. Where the colours set the target apart (``distinct``, tested on pixels they were not learnt
on), they do two things the motion cannot:
- ``snap``: a plain target (a cup of one colour) gives the flow nothing to hold on to inside it, and the flow around
  it follows its background, which it leaves behind when it moves by itself; its carried shape is slid a pixel or
  two each frame to where it covers the most of its colours;
- ``segment``: a solid object turning in view changes its outline, which no homography of the model's mask follows;
  where its colours are found nowhere around it (``clean``), the published mask is its colours within
  ``ColourConfig.band_px`` of the carried mask. Always from the carried mask, never from the last published one: a
  like-coloured neighbour can take at most the band (masks grown a band per frame spread onto neighbours on real
  video; see docs/tracking.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..boxes import widened_box
from .config import ColourConfig

BINS = 16  # per RGB channel (4096 colours): fine enough for a coloured cup, coarse enough to be learnt from one frame
SPREAD_NOISE = 1e-3  # a colour the target never showed still has this weight (its histogram is never zero)
UNSEEN_SHARE = 0.3  # of the surroundings' colour model given to every colour alike (they are seen in part only)
EVIDENCE_LIMIT = 3.0  # nats: one pixel's say is capped, so a few strongly coloured pixels cannot pull the shape


def _codes(colour: np.ndarray) -> np.ndarray:
    """h x w x 3 (any type, 0..255) -> h x w bin index."""
    quantised = np.clip(colour, 0, 255).astype(np.uint16) // (256 // BINS)
    return (quantised[..., 0] * BINS + quantised[..., 1]) * BINS + quantised[..., 2]


def _spread(histogram: np.ndarray) -> np.ndarray:
    """Each bin shared with its 26 neighbours: shading and noise move a colour to the next bin."""
    cube = histogram.reshape(BINS, BINS, BINS).astype(np.float32)
    for axis in range(3):  # a 3 x 3 x 3 box filter as three 1-D passes
        padded = np.pad(cube, [(1, 1) if a == axis else (0, 0) for a in range(3)])
        cube = (np.take(padded, range(0, BINS), axis) + np.take(padded, range(1, BINS + 1), axis)
                + np.take(padded, range(2, BINS + 2), axis)) / 3
    return cube.ravel()


@dataclass
class TargetColours:
    log_ratio: np.ndarray  # per colour bin, log P(colour | target) / P(colour | surroundings)
    distinct: bool  # they tell target and ring pixels apart (ColourConfig.min_separation), on pixels not learnt on
    clean: bool  # ... almost all of them (ColourConfig.clean_separation): the target's colours are nowhere around it

    def evidence(self, colour: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """Per pixel of ``colour`` (h x w x 3 float32, exposure changed by ``gain`` since the model's frame), the
        target's evidence, capped at +-EVIDENCE_LIMIT."""
        return np.clip(self.log_ratio[_codes(colour / gain.astype(np.float32))], -EVIDENCE_LIMIT, EVIDENCE_LIMIT)


def learn(image: np.ndarray, mask: np.ndarray, config: ColourConfig) -> TargetColours:
    """The colours of ``mask`` (H x W bool) on ``image`` against a ring ``config.ring_px`` wide around it."""
    # only around the mask: a disc this wide is not separable, over a whole frame it is slow
    x0, y0, x1, y1 = widened_box(cv2.boundingRect(mask.view(np.uint8)), config.ring_px, mask.shape)
    mask = mask[y0:y1, x0:x1]
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.ring_px + 1,) * 2)
    ring = cv2.dilate(mask.view(np.uint8), disc).view(bool) & ~mask
    codes = _codes(image[y0:y1, x0:x1])
    # Told apart on pixels the histograms did not see (fitted on even rows, tested on odd ones): in-sample, a
    # histogram this fine tells apart even a target cut from the table's own cloth.
    even = np.zeros(mask.shape, bool)
    even[::2] = True
    held_out = _log_ratio(codes[mask & even], codes[ring & even])
    says = np.concatenate([held_out[codes[mask & ~even]] > 0, held_out[codes[ring & ~even]] < 0])
    separation = float(says.mean()) if says.size else 0.0
    return TargetColours(_log_ratio(codes[mask], codes[ring]), separation >= config.min_separation,
                         separation >= config.clean_separation)


def _log_ratio(target_codes: np.ndarray, around_codes: np.ndarray) -> np.ndarray:
    target = _spread(np.bincount(target_codes, minlength=BINS**3))
    around = _spread(np.bincount(around_codes, minlength=BINS**3))
    target = (target + SPREAD_NOISE) / (target.sum() + SPREAD_NOISE * BINS**3)
    # The whole target is seen, its surroundings only in part: a colour the target never showed is more likely
    # something else, so the surroundings get a uniform share.
    around = (1 - UNSEEN_SHARE) * around / max(float(around.sum()), 1.0) + UNSEEN_SHARE / BINS**3
    return np.log(target / around).astype(np.float32)


def segment(colours: TargetColours, carried: np.ndarray, image: np.ndarray, gain: np.ndarray, band_px: int) -> np.ndarray:
    """The pixels of the target's colours on ``image`` within ``band_px`` of ``carried`` (h x w bool, both crops
    reaching at least ``band_px`` past it), in parts that overlap ``carried``: its outline where its colours put it
    now, less what something of other colours hides."""
    near = cv2.dilate(carried.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1,) * 2))
    coloured = ((colours.evidence(image.astype(np.float32), gain) > 0) & near.view(bool)).view(np.uint8)
    coloured = cv2.morphologyEx(coloured, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # lone pixels of a like colour
    count, labels = cv2.connectedComponents(coloured)
    keep = np.zeros(count, bool)
    keep[labels[carried]] = True
    keep[0] = False
    return keep[labels]


def snap(colours: TargetColours, shape: np.ndarray, colour: np.ndarray, gain: np.ndarray, pad: tuple[int, int, int, int],
         radius: int, min_gain: float) -> np.ndarray | None:
    """(dx, dy) within ``radius`` that slides ``shape`` (h x w float32 0..1, the carried target) onto the most of its
    colours' evidence in ``colour``, the crop around it reaching ``radius`` further each way except where the image
    ends (``pad``: left, top, right, bottom pixels missing there, which count as not the target); None where no shift
    gains ``min_gain`` (nats per target pixel) over staying."""
    evidence = cv2.copyMakeBorder(colours.evidence(colour, gain), pad[1], pad[3], pad[0], pad[2], cv2.BORDER_CONSTANT,
                                  value=-EVIDENCE_LIMIT)
    scores = cv2.matchTemplate(evidence, shape, cv2.TM_CCORR) / max(float(shape.sum()), 1.0)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if best < scores[radius, radius] + min_gain or bx in (0, scores.shape[1] - 1) or by in (0, scores.shape[0] - 1):
        return None
    sub = np.zeros(2)
    for axis, (a, c) in enumerate(((scores[by, bx - 1], scores[by, bx + 1]), (scores[by - 1, bx], scores[by + 1, bx]))):
        curvature = a - 2 * best + c
        if curvature < -1e-6:  # a parabola through the three scores around the best: sub-pixel shift
            sub[axis] = min(max(0.5 * (a - c) / curvature, -0.5), 0.5)
    return np.array([bx - radius + sub[0], by - radius + sub[1]])
