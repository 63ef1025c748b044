"""Optional int8 weights for CPU inference (PyTorch dynamic quantization of the ViT and LLM linear layers).

Weights are stored as int8 and activations quantized on the fly; the mask decoder, the projector and the output head
stay in float32 (they are small, and the decoder's output is what the robot acts on). CPU only: on a GPU use bf16.
"""
from __future__ import annotations

import torch
from torch import nn

from .modeling_mllmseg import MLLMSegModel


def quantize_int8_dynamic(model: MLLMSegModel) -> MLLMSegModel:
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise ValueError("int8 dynamic quantization needs a float32 model on the CPU")
    from torch.ao.quantization import quantize_dynamic

    model.vision_model = quantize_dynamic(model.vision_model, {nn.Linear}, dtype=torch.qint8)
    model.language_model.model = quantize_dynamic(model.language_model.model, {nn.Linear}, dtype=torch.qint8)
    return model
