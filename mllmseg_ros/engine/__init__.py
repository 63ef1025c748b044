"""The segmentation engine: image + words -> masks, boxes, centroids. Numpy in, numpy out; no ROS imports."""
from .visualize import draw_overlay
from .postprocess import MaskGeometry, mask_geometry, resize_probability
from .preprocess import as_rgb, preprocess
from .commands import ParsedCommand, normalize_command, parse_command
from .prompt import build_prompt_turns, load_chat_tokenizer
from .segmenter import EncodedFrames, Segmenter, SegmenterOptions, SegmentationResult

__all__ = [
    "EncodedFrames",
    "MaskGeometry",
    "ParsedCommand",
    "Segmenter",
    "SegmenterOptions",
    "SegmentationResult",
    "as_rgb",
    "build_prompt_turns",
    "draw_overlay",
    "load_chat_tokenizer",
    "mask_geometry",
    "normalize_command",
    "parse_command",
    "preprocess",
    "resize_probability",
]
