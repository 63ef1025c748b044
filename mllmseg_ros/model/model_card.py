"""What a checkpoint folder says about itself beyond its weights: ``model_card.json`` (optional, plain JSON).

Its one use so far: a model trained on synthetic scenes only (the shipped demo model, or any ``mllmseg-ros train``
run on synthetic data) says so, and whoever loads it (engine, CLI, node) prints one line about it, because on a real
photograph such a model answers every expression with confidence and a mask spread over the picture.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import CheckpointError

MODEL_CARD_FILE = "model_card.json"
# Where a user reads how to get a model for real images.
RELEASED_CHECKPOINTS_DOC = "docs/models.md#getting-a-released-checkpoint"


@dataclass(frozen=True)
class ModelCard:
    trained_on: str  # what the training images were, in words
    synthetic_only: bool  # True: never trained on real photographs

    def load_notice(self, folder: str | Path) -> str | None:
        """The one line to print when the model is loaded, or None when there is nothing to warn about."""
        if not self.synthetic_only:
            return None
        return (f"{Path(folder).name}: trained on {self.trained_on} only; on real images its answers mean little. "
                f"For real images use a released MLLMSeg checkpoint ({RELEASED_CHECKPOINTS_DOC}).")


SYNTHETIC_SCENES = ModelCard(trained_on="synthetic tabletop scenes", synthetic_only=True)


def read_model_card(folder: str | Path) -> ModelCard | None:
    """The folder's model card, or None when it has none (a released checkpoint)."""
    path = Path(folder) / MODEL_CARD_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ModelCard(trained_on=str(raw["trained_on"]), synthetic_only=bool(raw["synthetic_only"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid model card ({exc!r})") from exc


def write_model_card(folder: str | Path, card: ModelCard) -> None:
    (Path(folder) / MODEL_CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n", encoding="utf-8")
