"""InternViT vision encoder, pixel shuffle and the vision-to-LLM projector (``mlp1``).

Written here rather than taken from transformers' ``InternVLVision*`` classes because those rename and split the
official tensors (fused ``attn.qkv``, ``ls1``/``ls2``); this module keeps the official key layout, so released
checkpoints load with no key conversion, and runs attention through ``F.scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from .configuration import MLLMSegConfig, VisionConfig


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


NORM_LAYERS = {"layer_norm": nn.LayerNorm, "rms_norm": RMSNorm}


class VisionEmbeddings(nn.Module):
    """Patch embedding + class token + learned position embedding (resized bicubically for other grids)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.grid_size = config.grid_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.position_embedding = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.hidden_size))

    def _patch_positions(self, rows: int, cols: int) -> torch.Tensor:
        patch_pos = self.position_embedding[:, 1:]
        if (rows, cols) == (self.grid_size, self.grid_size):
            return patch_pos  # bicubic resize to the same grid is the identity
        # 1 x N x C -> 1 x C x g x g -> resize -> 1 x rows*cols x C
        grid = patch_pos.float().reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2).to(patch_pos.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # B x 3 x H x W -> B x C x rows x cols
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        batch, _, rows, cols = patches.shape
        patches = patches.flatten(2).transpose(1, 2)  # B x rows*cols x C
        cls = self.class_embedding.expand(batch, 1, -1)
        positions = torch.cat([self.position_embedding[:, :1], self._patch_positions(rows, cols)], dim=1)
        return torch.cat([cls, patches], dim=1) + positions  # B x (1 + rows*cols) x C


class VisionAttention(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.qk_normalization = config.qk_normalization
        if config.qk_normalization:
            self.q_norm = RMSNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.k_norm = RMSNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each B x N x C
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        # B x N x C -> B x heads x N x C/heads
        q, k, v = (t.reshape(batch, tokens, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class VisionMLP(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VisionEncoderLayer(nn.Module):
    """Pre-norm block with per-channel layer scale (``ls1``/``ls2``)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        norm = NORM_LAYERS[config.norm_type]
        self.norm1 = norm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = VisionAttention(config)
        self.ls1 = nn.Parameter(torch.ones(config.hidden_size))
        self.norm2 = norm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VisionMLP(config)
        self.ls2 = nn.Parameter(torch.ones(config.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class VisionEncoder(nn.Module):
    def __init__(self, config: VisionConfig, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VisionEncoderLayer(config) for _ in range(num_layers))


class InternVisionModel(nn.Module):
    """InternViT. ``forward`` returns the patch features of the selected layer, class token dropped.

    Only the layers up to ``select_layer`` are built: with ``select_layer=-1`` (every released model) that is all
    of them; with an earlier layer the unused tail is neither built nor loaded.
    """

    def __init__(self, config: VisionConfig, select_layer: int = -1) -> None:
        super().__init__()
        self.config = config
        # hidden_states[k] of the official model is the output after k layers (index 0: the embeddings)
        used_layers = select_layer if select_layer >= 0 else config.num_hidden_layers + 1 + select_layer
        self.embeddings = VisionEmbeddings(config)
        self.encoder = VisionEncoder(config, used_layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # B x 3 x H x W -> B x (1 + N) x C
        hidden = self.embeddings(pixel_values)
        for layer in self.encoder.layers:
            hidden = layer(hidden)
        return hidden[:, 1:]  # B x N x C, class token dropped (the model never uses it)


def pixel_shuffle(features: torch.Tensor, ratio: float, version: str = "v2") -> torch.Tensor:
    """Fold ``1/ratio`` x ``1/ratio`` neighbouring tokens into channels, as InternVL does.

    features: B x rows x cols x C -> B x rows*ratio x cols*ratio x C/ratio^2. Version "v1" leaves the grid
    transposed (an InternVL quirk kept for old checkpoints); "v2" transposes it back.
    """
    batch, rows, cols, channels = features.shape
    x = features.reshape(batch, rows, int(cols * ratio), int(channels / ratio))
    x = x.permute(0, 2, 1, 3)  # B x cols*r x rows x C/r
    x = x.reshape(batch, int(cols * ratio), int(rows * ratio), int(channels / (ratio * ratio)))
    if version == "v2":
        x = x.permute(0, 2, 1, 3)  # B x rows*r x cols*r x C/r^2
    return x.contiguous()


def build_projector(config: MLLMSegConfig) -> nn.Sequential:
    """``mlp1``: LayerNorm -> Linear -> GELU -> Linear, from shuffled ViT channels to the LLM width."""
    width_in, width_out = config.projector_in_features, config.llm.hidden_size
    return nn.Sequential(
        nn.LayerNorm(width_in), nn.Linear(width_in, width_out), nn.GELU(), nn.Linear(width_out, width_out)
    )
