"""Training and fine-tuning with MLLMSeg's objective (``mllmseg-ros train``).

``config`` (TrainConfig: the recipe), ``batching`` (dataset, sample order, TrainBatch), ``losses``, ``model_setup``
(a new model or a base checkpoint; what trains), ``checkpointing`` and ``loop`` (``train``). Torch and numpy; no ROS.
"""
from .config import NewModelSizes, TrainConfig
from .loop import train

__all__ = ["NewModelSizes", "TrainConfig", "train"]
