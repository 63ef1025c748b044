"""Does the target still look as on the model's frame where the motion puts it? Per pixel, at flow resolution.

The model's frame is the reference: its pixels under the model's mask, warped by the track's homography to the new
frame, are compared with what the new frame shows there. Two tests, each where it can tell:
- where the reference is textured, the local correlation (zero-mean, normalised over a small window) of the two:
  blind to exposure and white balance, and it fails on anything plain laid over the target, an occluder of the
  target's own colour included;
- where the reference is plain (a cup's side, a pupil), the colour, after the exposure change the flow chain measured
  since the model's frame (``flow.Step.gain``).

A mask carried by motion alone never grows past the model's outline: what the tests cut is what something in front
hides. No colour model learnt on the model's frame decides where the target ends (that grew masks onto like-coloured
neighbours on real video; see docs/tracking.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .colours import TargetColours, learn
from .config import AppearanceConfig, ColourConfig
from .flow import FrameView
from .ops import box, bounds, count, project, warp_into

WINDOW_PX = 7  # the correlation's window (flow pixels): big enough for a texture, small enough to cut an occluder
TEXTURE_STD = 6.0  # grey levels: a window of the reference with less spread is plain (its correlation is noise)
MIN_TEXTURED_SHARE = 0.15  # a target with at least this share textured is judged by its texture first:
TEXTURE_GONE = 0.3  # ... where less than this share of its texture shows, it is hidden, whatever its colours say
COLOUR_SAYS_TARGET = 1.0  # nats: a colour this much more likely the target's than its surroundings' is the target's
COLOUR_FLOOR = 14.0  # grey levels: a plain colour test never asks for less (noise, JPEG, interpolation)
CLIPPED = 250.0  # a channel this bright may be clipped: it agrees with any reference at least as bright
MIN_JUDGED_PX = 24  # flow pixels of the target in the image needed to tell by its look (a sliver says nothing)
SPILL_SLACK_PX = 2  # the target's colours may reach this far past its carried outline (flow pixels) and be its own
MAX_SAMPLES = 2000  # of the target's pixels, kept to tell how much of it is inside the image
GREY = np.float32([0.299, 0.587, 0.114])  # RGB -> grey (ITU-R 601, as OpenCV)


@dataclass
class Reference:
    """The target on the model's frame (flow resolution, except ``full_mask``)."""

    colour: np.ndarray  # h x w x 3 float32
    grey: np.ndarray  # h x w float32
    mask: np.ndarray  # h x w uint8 0/1
    textured: np.ndarray  # h x w uint8 0/1: windows of the reference with a texture
    box: tuple[int, int, int, int]  # x, y, w, h around mask
    samples: np.ndarray  # N x 2 float32: the mask's pixels (a subsample)
    full_mask: np.ndarray  # H x W float32: the model's mask at full resolution
    full_box: tuple[int, int, int, int]  # x, y, w, h around full_mask
    colours: TargetColours  # its colours against its surroundings there

    @property
    def plain(self) -> bool:
        """Too little texture to align it by: its outline (where its colours end) is what places it."""
        return count(self.textured.view(bool)) < MIN_TEXTURED_SHARE * self.area

    @property
    def area(self) -> int:
        return count(self.mask.astype(bool))


def make_reference(view: FrameView, full_mask: np.ndarray, colour_config: ColourConfig) -> Reference | None:
    """The reference for ``full_mask`` (H x W bool) on ``view``; None where the mask is empty at flow resolution."""
    width, height = view.size
    mask = cv2.resize(full_mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA) >= 0.5
    if not mask.any():
        return None
    grey = view.colour @ GREY
    weights = mask.astype(np.float32)
    textured = (np.sqrt(_local_stats(grey, grey, weights)[3]) > TEXTURE_STD).astype(np.uint8) * mask
    ys, xs = np.nonzero(mask)
    keep = np.linspace(0, len(xs) - 1, min(len(xs), MAX_SAMPLES)).astype(int)
    return Reference(view.colour, grey, mask.astype(np.uint8), textured, box(mask),
                     np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32), full_mask.astype(np.float32), box(full_mask),
                     learn(view.image, full_mask, colour_config))


def _local_stats(a: np.ndarray, b: np.ndarray, weights: np.ndarray):
    """Per pixel, over the WINDOW_PX window's pixels of the target alone (``weights`` 1 on it, 0 elsewhere): the
    means of ``a`` and ``b``, their covariance and the variance of each. The target's own pixels decide: around a
    target that moves against its background the background changes, and would count as a change of the target."""
    size = (WINDOW_PX, WINDOW_PX)
    total = np.maximum(cv2.boxFilter(weights, -1, size, normalize=False), 1.0)
    wa, wb = weights * a, weights * b
    mean_a, mean_b = cv2.boxFilter(wa, -1, size, normalize=False) / total, cv2.boxFilter(wb, -1, size, normalize=False) / total
    covariance = cv2.boxFilter(wa * b, -1, size, normalize=False) / total - mean_a * mean_b
    var_a = np.maximum(cv2.boxFilter(wa * a, -1, size, normalize=False) / total - mean_a * mean_a, 0.0)
    var_b = np.maximum(cv2.boxFilter(wb * b, -1, size, normalize=False) / total - mean_b * mean_b, 0.0)
    return mean_a, mean_b, covariance, var_a, var_b


@dataclass
class Look:
    """The reference seen through a homography on a new frame."""

    in_view: float  # share of the target inside the image
    visible: float  # share of its pixels inside the image that look as on the model's frame (0 when none is inside)
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (flow pixels) that ``mask`` and ``agree`` cover
    mask: np.ndarray | None = None  # the target's pixels there (bool)
    agree: np.ndarray | None = None  # pixels that look as on the model's frame (bool)
    judged: bool = True  # enough of the target is in the image for its look to tell (else ``visible`` is no evidence)
    by_colour: bool = False  # told by colours found nowhere around the target: even a part of it showing is evidence

    @property
    def hidden_part(self) -> np.ndarray | None:
        """The target's pixels that something in front hides: what disagrees, as one piece (not scattered pixels)."""
        if self.mask is None:
            return None
        differs = (self.mask & ~self.agree).view(np.uint8)
        differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        return cv2.morphologyEx(differs, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).view(bool) & self.mask


def in_view(reference: Reference, homography: np.ndarray, size: tuple[int, int]) -> float:
    points = project(homography, reference.samples)
    if not len(points) or not np.isfinite(points).all():
        return 0.0
    inside = (points[:, 0] >= -0.5) & (points[:, 0] < size[0] - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] < size[1] - 0.5)
    return float(inside.mean())


def look(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView,
         config: AppearanceConfig) -> Look:
    """How the target looks on ``view`` where ``homography`` (model's frame -> view, flow pixels) puts it, with the
    exposure changed by ``gain`` since the model's frame."""
    share = in_view(reference, homography, view.size)
    region = bounds(homography, reference.box, view.size, margin=WINDOW_PX)
    if share == 0.0 or region is None:
        return Look(share, 0.0)
    x0, y0, x1, y1 = region
    mask = warp_into(reference.mask, homography, region, cv2.INTER_NEAREST).view(bool)
    if not mask.any():
        return Look(share, 0.0)
    seen = view.colour[y0:y1, x0:x1]
    textured = warp_into(reference.textured, homography, region, cv2.INTER_NEAREST).view(bool)
    if reference.colours.clean:
        # Colours found nowhere around the target (a toy on a table) tell it by themselves, whatever its shading:
        # a solid target turning in view changes its texture and shading, never its colours.
        agree = reference.colours.evidence(seen, gain) > 0
    else:
        expected = warp_into(reference.colour, homography, region) * gain.astype(np.float32)
        agree = _agreement(expected, seen, textured, mask, reference.colours.evidence(seen, gain) > COLOUR_SAYS_TARGET
                           if reference.colours.distinct else None, config)
    inside = count(mask)
    visible = count(agree & mask) / inside
    if reference.colours.clean:
        visible *= max(0.0, 1.0 - _colour_around(reference, homography, gain, view))
    if inside < MIN_JUDGED_PX:
        return Look(share, visible, region, mask, agree, judged=False, by_colour=reference.colours.clean)
    textured_here = textured & mask
    if not reference.colours.clean and count(textured_here) >= MIN_TEXTURED_SHARE * inside:
        # a plain surface of the target's colour laid over it agrees in colour only
        texture_seen = count(agree & textured_here) / count(textured_here)
        if texture_seen < TEXTURE_GONE:
            visible = texture_seen
    return Look(share, visible, region, mask, agree, by_colour=reference.colours.clean)


def _colour_around(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView) -> float:
    """How far the target's colours spill out of its place, as a share of its area (0: they end where it does):
    colours that say "target" are evidence of it only there. A like-coloured object it was taken for (a black bottle
    for a black ball) or a dark corner has them well beyond the target's outline."""
    x, y, w, h = reference.box
    region = bounds(homography, reference.box, view.size, margin=max(WINDOW_PX, (w + h) // 2))
    if region is None:
        return 0.0
    x0, y0, x1, y1 = region
    target = warp_into(reference.mask, homography, region, cv2.INTER_NEAREST)
    says = (reference.colours.evidence(view.colour[y0:y1, x0:x1], gain) > 0).view(np.uint8)
    labels_count, labels = cv2.connectedComponents(says)
    touching = np.zeros(labels_count, bool)
    touching[labels[target.view(bool) & says.view(bool)]] = True
    touching[0] = False
    beyond = touching[labels] & ~cv2.dilate(target, np.ones((2 * SPILL_SLACK_PX + 1,) * 2, np.uint8)).view(bool)
    return count(beyond) / max(1, count(target.view(bool)))


def _agreement(expected: np.ndarray, seen: np.ndarray, textured: np.ndarray, mask: np.ndarray,
               target_coloured: np.ndarray | None, config: AppearanceConfig) -> np.ndarray:
    """Per pixel, whether ``seen`` looks as ``expected`` there: textured pixels by their local correlation, plain ones
    by their colour (both over the target's own pixels), or where its colours set it apart by having one of them
    (``target_coloured``: a solid target turning in view shows other shades of its colours)."""
    a, b = expected @ GREY, seen @ GREY
    weights = mask.astype(np.float32)
    _, _, covariance, var_a, var_b = _local_stats(a, b, weights)
    correlation = covariance / np.sqrt(np.maximum(var_a, 1.0) * np.maximum(var_b, 1.0))
    total = np.maximum(cv2.boxFilter(weights, -1, (3, 3), normalize=False), 1.0)[..., None]
    near_a = cv2.boxFilter(expected * weights[..., None], -1, (3, 3), normalize=False) / total
    near_b = cv2.boxFilter(seen * weights[..., None], -1, (3, 3), normalize=False) / total
    tolerance = np.maximum(COLOUR_FLOOR, config.colour_tolerance * near_a)
    colour_ok = ((np.abs(near_b - near_a) <= tolerance) | ((near_b >= CLIPPED) & (near_a >= CLIPPED - COLOUR_FLOOR))).all(axis=2)
    if target_coloured is not None:
        colour_ok |= target_coloured
    return np.where(textured, correlation >= config.min_correlation, colour_ok)
