"""A tiny new-model size for the training tests (milliseconds per step on a CPU)."""
from mllmseg_ros.training import NewModelSizes, TrainConfig

TINY_SIZES = NewModelSizes(image_size=56, vision_width=32, vision_layers=2, llm_width=32, llm_layers=2, vocab_size=400)


def tiny_config(**options) -> TrainConfig:
    """TrainConfig of a tiny new model; ``options`` are TrainConfig fields (``new_model`` may replace the sizes)."""
    return TrainConfig(**{"new_model": TINY_SIZES, **options})
