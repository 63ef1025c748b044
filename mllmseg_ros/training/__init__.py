"""Training and fine-tuning with MLLMSeg's objective (``mllmseg-ros train``).

``config`` (TrainConfig: the recipe), ``batching`` (dataset, sample order, TrainBatch), ``losses``, ``model_setup``
(a new model or a base checkpoint; what trains), ``run_state`` (a run's resumable state and its final model),
``loop`` (``train``) and ``checkpoint_builder`` (a random checkpoint in the official layout with its own tokenizer,
for new models and tests). Torch and numpy; no ROS.
"""
from .config import NewModelSizes, TrainConfig
from .loop import train

__all__ = ["NewModelSizes", "TrainConfig", "train"]
