"""The engine as the node runs it: built from the node's settings, kept in step with run-time parameters, shared
under one lock, and the GPU memory handed back after a failure or a cleanup."""
from __future__ import annotations

import os
import threading
from typing import Callable

from .params import NodeSettings


class EngineHandle:
    """The node's segmenter (None until configured and after cleanup) and the lock under which one caller at a time
    uses it: the inference thread or a ``~/segment`` call. What the ROS helpers get instead of the node."""

    def __init__(self) -> None:
        self.segmenter = None
        self.lock = threading.Lock()


def dtype_name(settings: NodeSettings) -> str:
    """The weights' dtype: ``auto`` is float32 on the CPU and bfloat16 on CUDA."""
    if settings.dtype != "auto":
        return settings.dtype
    return "bfloat16" if settings.device.startswith("cuda") else "float32"


def torch_threads(settings: NodeSettings) -> int:
    """``threads``, or for 0 one fewer than the usable cores (at least one): the camera driver, ROS and this node's
    tracking thread keep a core, and torch's threads, which wait for each other at every step, are not left waiting
    for one that another process holds (benchmarks/README.md, "Threads on a busy CPU")."""
    return settings.threads or max(1, len(os.sched_getaffinity(0)) - 1)


def load_segmenter(settings: NodeSettings, announce: Callable[[str], None]):
    """The Segmenter of ``settings`` (raises whatever loading the checkpoint raises, with the reason); ``announce``
    logs the model card's line (a demo model)."""
    import torch

    from ..engine import Segmenter, SegmenterOptions

    options = SegmenterOptions()
    apply_options(options, settings)
    return Segmenter.from_pretrained(
        settings.model_path, device=settings.device, dtype=getattr(torch, dtype_name(settings)),
        threads=torch_threads(settings), quantization=None if settings.quantization == "none" else settings.quantization,
        allow_pickle=settings.allow_pickle, options=options, cuda_graphs=settings.cuda_graphs, announce=announce,
    )


def apply_options(options, settings: NodeSettings) -> None:
    """The engine options that follow run-time parameters (the command word lists are the node's own:
    ``command_parser``)."""
    options.threshold = settings.threshold
    options.centroid_of_largest_component = settings.centroid_of_largest_component


def release_gpu_memory(after: Exception | None = None) -> None:
    """Return cached CUDA memory: after a cleanup, or after an out-of-memory error so the next frame can fit."""
    try:
        import torch
    except ImportError:
        return
    if after is not None and not isinstance(after, torch.cuda.OutOfMemoryError):
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
