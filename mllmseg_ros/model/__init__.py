"""The MLLMSeg model in pure PyTorch (no ROS): config, vision encoder, LLM, mask decoder, checkpoint loading."""
from .configuration import MaskDecoderConfig, MLLMSegConfig, SpecialTokens, VisionConfig, build_language_config
from .errors import CheckpointError
from .modeling_mllmseg import MLLMSegModel, MLLMSegOutput

__all__ = [
    "CheckpointError",
    "MaskDecoderConfig",
    "MLLMSegConfig",
    "MLLMSegModel",
    "MLLMSegOutput",
    "SpecialTokens",
    "VisionConfig",
    "build_language_config",
]
