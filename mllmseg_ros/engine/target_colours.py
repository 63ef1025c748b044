"""The target's colours against its surroundings, from the model's frame: sharpens a mask carried by motion alone.

A mask moved by optical flow keeps the model's outline but not the target's: the flow is smooth across the target's
edge, so over seconds the mask slides onto the table beside it and loses the part a passing object hides. The model's
frame says which colours are the target's (under its mask) and which are its surroundings' (a ring around it); on a
new frame, each pixel near the carried mask is the target's where its colour and the carried mask together say so.

A colour histogram is the one appearance cue cheap enough for every frame on 2 CPU cores (well under a millisecond
for a 640 x 480 frame's target region), and robust to the target turning or changing scale, which templates are not.
Where the target's colours do not set it apart from its surroundings (a grey box on a grey table), nothing is
sharpened and the carried mask stays as it is (``distinct`` False).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ColourConfig", "TargetColours"]


@dataclass(frozen=True)
class ColourConfig:
    bins: int = 16  # per RGB channel
    ring_px: int = 30  # the surroundings: this far around the model's mask (full-resolution pixels)
    band_px: int = 12  # a carried mask is sharpened at most this far in or out
    prior_sigma_px: float = 6.0  # how far from the carried outline its say fades (Gaussian sigma)
    prior_limit: float = 0.98  # the carried mask's say as a probability: never certain, so colour can overrule it
    unseen_share: float = 0.3  # of the surroundings' colour model given to every colour alike
    relocate_below: float = 0.4  # a carried mask with less of it on the target's colours is looked for nearby
    min_relocation_gain: float = 0.2  # ... and moved only where this much more of it lands on them
    min_separation: float = 0.75  # on the model's own frame, at least this share of target and ring pixels must be
    #                               told apart by colour, or the colours are not used


def _codes(image: np.ndarray, bins: int) -> np.ndarray:
    """H x W x 3 uint8 -> H x W histogram bin index."""
    quantised = (image // (256 // bins)).astype(np.uint16 if bins**3 <= 65536 else np.int32)  # half the memory traffic
    return (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]


def _spread(histogram: np.ndarray, bins: int) -> np.ndarray:
    """Each bin's count shared with its 26 neighbours: shading and sensor noise move a colour to the next bin."""
    cube = np.pad(histogram.reshape(bins, bins, bins), 1)
    out = np.zeros((bins, bins, bins), np.float32)
    for dr in range(3):
        for dg in range(3):
            for db in range(3):
                out += cube[dr:dr + bins, dg:dg + bins, db:db + bins]
    return out.ravel() / 27


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A 0/1 uint8 mask blurred by a Gaussian of ``sigma`` pixels, as float32. Blurred at half resolution and brought
    back: a blur this wide is smooth at that scale (the values differ from the full-resolution blur's in the third
    decimal), at a fraction of its cost."""
    height, width = mask.shape
    half = cv2.resize(mask.astype(np.float32), ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(half, (0, 0), sigma / 2), (width, height), interpolation=cv2.INTER_LINEAR)


def _rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.dstack([image] * 3)


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of ``mask`` (a disc), outside it; dilated only around the mask (a disc this wide is not
    separable: over the whole frame it took 5 ms)."""
    ring = np.zeros_like(mask)
    if not mask.any():
        return ring
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    x0, y0 = max(0, x - width), max(0, y - width)
    x1, y1 = min(mask.shape[1], x + w + width), min(mask.shape[0], y + h + width)
    region = mask[y0:y1, x0:x1]
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring[y0:y1, x0:x1] = cv2.dilate(region.astype(np.uint8), disc).astype(bool) & ~region
    return ring


class TargetColours:
    """Log-likelihood ratio (target / surroundings) per colour bin, learned on the model's frame."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, config: ColourConfig = ColourConfig()) -> None:
        self.config = config
        codes = _codes(_rgb(image), config.bins)
        ring = _ring(mask, config.ring_px)
        # Told apart on pixels the histograms did not see (fitted on even rows, tested on odd ones): in-sample, a
        # histogram with this many bins tells apart even a target cut from the table's own cloth.
        even = np.zeros(mask.shape, bool)
        even[::2] = True
        held_out = self._log_ratio(codes[mask & even], codes[ring & even])
        target_says, around_says = held_out[codes[mask & ~even]] > 0, held_out[codes[ring & ~even]] < 0
        self.separation = float(np.concatenate([target_says, around_says]).mean()) if target_says.size and around_says.size else 0.0
        self.distinct = self.separation >= config.min_separation
        self.log_ratio = self._log_ratio(codes[mask], codes[ring])
        self._target_share = float((self.log_ratio[codes[mask]] > 0).mean()) if mask.any() else 0.0

    def _log_ratio(self, target_codes: np.ndarray, around_codes: np.ndarray) -> np.ndarray:
        bins = self.config.bins
        target = _spread(np.bincount(target_codes, minlength=bins**3).astype(np.float32), bins)
        around = _spread(np.bincount(around_codes, minlength=bins**3).astype(np.float32), bins)
        # The whole target is seen, its surroundings only in part: a colour the target never showed is more likely
        # something else (an occluder, a part of the scene not in the ring), so the surroundings get a uniform share.
        target = (target + 1e-3) / (target.sum() + 1e-3 * bins**3)
        around = (1 - self.config.unseen_share) * around / max(float(around.sum()), 1.0) + self.config.unseen_share / bins**3
        return np.log(target / around).astype(np.float32)

    def sharpen(self, image: np.ndarray, carried: np.ndarray, also: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """(mask, visible): ``carried`` (H x W bool) with each pixel within ``band_px`` of its outline decided by its
        colour in ``image`` as well, and the share of ``carried`` whose colour still says target, against that share
        on the model's frame (1.0 when the colours are not ``distinct``). ``also``: more pixels that may be the
        target (counted in the prior, not in ``visible``). Only the parts connected to the prior's core are kept: a
        like-coloured object nearby is not taken in."""
        config = self.config
        if not self.distinct or not carried.any():
            return carried, 1.0
        prior_mask = carried if also is None else carried | also
        height, width = carried.shape
        x, y, w, h = cv2.boundingRect(prior_mask.view(np.uint8))
        pad = 2 * config.band_px
        x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(width, x + w + pad), min(height, y + h + pad)
        region = prior_mask[y0:y1, x0:x1].astype(np.uint8)
        blurred = _blur(region, config.prior_sigma_px)
        prior = np.clip(blurred, 1 - config.prior_limit, config.prior_limit)
        colour_says = self.log_ratio[_codes(_rgb(image)[y0:y1, x0:x1], config.bins)]
        evidence = np.log(prior / (1 - prior)) + colour_says
        # within band_px of the prior: where its blur has not faded below the Gaussian tail at that distance (an edge's
        # blur at distance d is the normal tail beyond d / sigma); cheaper than a dilation with a disc that wide
        near = blurred > 0.5 * math.erfc(config.band_px / config.prior_sigma_px / math.sqrt(2))
        sharp = ((evidence > 0) & near).astype(np.uint8)
        sharp = cv2.morphologyEx(sharp, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # lone pixels of a like colour
        count, labels = cv2.connectedComponents(sharp)
        core = cv2.erode(region, np.ones((5, 5), np.uint8)).astype(bool)
        if not core.any():  # a sliver thinner than the erosion: all of it is the core
            core = region.astype(bool)
        keep = np.zeros(count, bool)  # per component: whether it touches the core (a lookup: np.isin is slower)
        keep[labels[core]] = True
        keep[0] = False
        mask = np.zeros_like(carried)
        mask[y0:y1, x0:x1] = keep[labels]
        # the carried pixels whose colour alone says target: how much of the target is still visible (something in
        # front of it has other colours)
        says_target = (colour_says > 0)[carried[y0:y1, x0:x1]]
        visible = min(1.0, float(says_target.mean()) / max(self._target_share, 1e-6))
        return mask, visible

    def relocate(self, image: np.ndarray, carried: np.ndarray, radius: int) -> tuple[int, int] | None:
        """(dx, dy) that moves ``carried`` onto the target's colours in ``image``, searched within ``radius`` pixels;
        None where the colours are not ``distinct``, where ``carried`` still lies mostly on them (a target half hidden
        stays where it is: a like-coloured object nearby would cover more) or no place is clearly better.

        The carried mask's shape slid over the map of pixels whose colour says target (OpenCV template matching):
        the place covering most such pixels wins, and of places nearly as good the nearest, so a target half hidden
        behind something is not dragged to wherever a like-coloured surface is largest."""
        if not self.distinct or not carried.any() or radius < 1:
            return None
        height, width = carried.shape
        x, y, w, h = cv2.boundingRect(carried.view(np.uint8))
        x0, y0 = max(0, x - radius), max(0, y - radius)
        x1, y1 = min(width, x + w + radius), min(height, y + h + radius)
        if x1 - x0 <= w or y1 - y0 <= h:
            return None
        says = (self.log_ratio[_codes(_rgb(image)[y0:y1, x0:x1], self.config.bins)] > 0).astype(np.float32)
        shape = carried[y:y + h, x:x + w].astype(np.float32)
        area = float(shape.sum())
        # No place can cover more than all the target-coloured pixels in the window: where those are too few for a
        # clear gain, the search (most of this function's cost) is not made (a small margin: the search's sums round)
        share_here = float(says[y - y0:y - y0 + h, x - x0:x - x0 + w].ravel() @ shape.ravel()) / area
        if float(says.sum()) / area < share_here + self.config.min_relocation_gain - 1e-3:
            return None
        cover = cv2.matchTemplate(says, shape, cv2.TM_CCORR) / area  # share of the shape on target colours
        here = cover[y - y0, x - x0]
        best = float(cover.max())
        if here >= self.config.relocate_below or best < here + self.config.min_relocation_gain:
            return None
        ys, xs = np.nonzero(cover >= best - 0.02)
        nearest = int(np.argmin(np.hypot(xs - (x - x0), ys - (y - y0))))
        return int(xs[nearest] - (x - x0)), int(ys[nearest] - (y - y0))

