"""Optional quantized weights for the ViT and LLM linear layers (the mask decoder, projector and output head stay in
the model's dtype: they are small, and the decoder's output is what the robot acts on).

* ``int8``: PyTorch dynamic quantization (int8 weights, activations quantized on the fly); CPU, float32 models.
* ``bnb-int8`` / ``bnb-nf4``: bitsandbytes 8-bit (LLM.int8) or 4-bit NormalFloat weights, on CPU or CUDA, when
  bitsandbytes is installed (``pip install bitsandbytes``).
"""
from __future__ import annotations

import torch
from torch import nn

from .modeling_mllmseg import MLLMSegModel

QUANTIZATIONS = ("int8", "bnb-int8", "bnb-nf4")


def quantize(model: MLLMSegModel, mode: str) -> MLLMSegModel:
    if mode == "int8":
        return quantize_int8_dynamic(model)
    if mode in ("bnb-int8", "bnb-nf4"):
        # bitsandbytes' int8 layers pick outlier columns per call (data-dependent shapes): not capturable in a CUDA graph.
        model.use_cuda_graphs = False
        return quantize_bitsandbytes(model, mode.split("-")[1])
    raise ValueError(f"unknown quantization {mode!r}; supported: {', '.join(QUANTIZATIONS)}")


def quantize_int8_dynamic(model: MLLMSegModel) -> MLLMSegModel:
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise ValueError("int8 dynamic quantization needs a float32 model on the CPU (on a GPU use bnb-int8)")
    from torch.ao.quantization import quantize_dynamic

    model.vision_model = quantize_dynamic(model.vision_model, {nn.Linear}, dtype=torch.qint8)
    model.language_model.model = quantize_dynamic(model.language_model.model, {nn.Linear}, dtype=torch.qint8)
    return model


def quantize_bitsandbytes(model: MLLMSegModel, kind: str) -> MLLMSegModel:
    try:
        import bitsandbytes as bnb
    except ImportError as exc:
        raise ValueError(f"quantization bnb-{kind} needs bitsandbytes: pip install bitsandbytes") from exc
    device, dtype = model.device, model.dtype

    def convert(linear: nn.Linear) -> nn.Module:
        weight = linear.weight.data.detach().cpu()
        if kind == "int8":
            quantized = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                            has_fp16_weights=False, threshold=6.0)
            quantized.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        else:
            quantized = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                          compute_dtype=dtype, quant_type="nf4")
            quantized.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            quantized.bias = nn.Parameter(linear.bias.data.detach().cpu(), requires_grad=False)
        return quantized.to(device)  # bitsandbytes quantizes the weight when it is moved to its device

    for root in (model.vision_model, model.language_model.model):
        for name, module in list(root.named_modules()):
            for child_name, child in list(module.named_children()):
                if type(child) is nn.Linear:
                    setattr(module, child_name, convert(child))
    return model
