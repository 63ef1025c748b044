"""``torch.compile`` of the model's stages, an option of the engine (``Segmenter.from_pretrained(compile=True)``)."""
from __future__ import annotations

import torch

from .modeling_mllmseg import MLLMSegModel


def compile_stages(model: MLLMSegModel) -> None:
    """Run the ViT, the LLM and the decoder through ``torch.compile`` (in place; the first calls are slow).

    The LLM is compiled with dynamic shapes: its prompt length changes with every command, and a graph per length
    would recompile on each new command. On a GPU, where a small LLM's pass costs its kernel launches, the fused
    kernels are most of the gain."""
    model.vision_model = torch.compile(model.vision_model)
    model.language_model.model = torch.compile(model.language_model.model, dynamic=True)
    model.use_cuda_graphs = False  # compiled stages keep their own launch savings; graphs over them are untested
    decoder = model.res_decoder
    # The engine calls these two methods directly, so compile them rather than the module's forward.
    decoder.encode_image = torch.compile(decoder.encode_image)
    decoder.decode_queries = torch.compile(decoder.decode_queries)
