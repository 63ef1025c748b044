"""What the tracker says about a target on the newest frame: its phase and the mask to publish."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class TrackPhase(enum.Enum):
    """A track's life. Only TRACKING is published as found; the value is the reason given otherwise."""

    TRACKING = ""  # in sight, carried by its motion and confirmed by its look
    HIDDEN = "occluded"  # behind something: moved with the camera and looked for each frame
    OUT_OF_VIEW = "left the view"  # outside the image: moved with the camera, looked for once its place is back
    LOST = "low tracking confidence"  # what it would publish looks too little like the target: looked for as HIDDEN
    GONE = "not seen again"  # out of sight for too long: given up until the next answer
    NOT_FOUND = "not found by the model"
    TOO_SMALL = "target too small to track"

    @property
    def followed(self) -> bool:
        """Still moved with the scene each frame, to be shown again where it looks as it did."""
        return self in (TrackPhase.TRACKING, TrackPhase.HIDDEN, TrackPhase.OUT_OF_VIEW, TrackPhase.LOST)

    @property
    def unseen(self) -> bool:
        """Followed, and known to be out of sight (behind something or outside the image) on the newest frame."""
        return self in (TrackPhase.HIDDEN, TrackPhase.OUT_OF_VIEW)


LEFT_VIEW = TrackPhase.OUT_OF_VIEW.value
OCCLUDED = TrackPhase.HIDDEN.value
LOW_CONFIDENCE = TrackPhase.LOST.value
NOT_FOUND = TrackPhase.NOT_FOUND.value
TOO_SMALL = TrackPhase.TOO_SMALL.value
GONE = TrackPhase.GONE.value


@dataclass
class TrackedMask:
    """One target on the newest frame: ``found`` False (``reason`` says why) in every phase but TRACKING."""

    mask: np.ndarray  # H x W bool, on the newest frame (all False when not found)
    phase: TrackPhase
    confidence: float  # share of the published mask that looks as on the model's frame, 0..1 (1 on that frame)
    steps: int = 0  # frames since the model's frame
    in_view: float = 1.0  # share of the target inside the image
    visible: float = 1.0  # share of the target, inside the image, that looks as on the model's frame
    answer_frame: object = None  # the frame id of the model answer this rests on (an older one than the newest
    #                              answer where that answer was "not found" on a frame that showed the target hidden)

    @property
    def found(self) -> bool:
        return self.phase is TrackPhase.TRACKING

    @property
    def reason(self) -> str:
        return self.phase.value
