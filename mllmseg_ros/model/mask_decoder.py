r"""The light-weight mask decoder of MLLMSeg (``res_decoder``; the paper's DSFF fusion), no SAM.

Data flow for one image and n queries (W = decoder width = ViT width, g = ViT grid, l = LLM image grid):

    V  : ViT patch features            g*g x W
    L  : LLM hidden states at the image positions (p-1)       l*l x H
    s  : LLM hidden state before each [SEG]                      n x H

    L' = img_llm_down(L)                                       l*l x W   \
    A  = ca_layer_v2l(tgt=V, memory=L')                        g*g x W    |  image only:
    U  = DySample(L' as an l x l map)  -> g x g                g*g x W    |  computed once per frame
    F  = text_out_adapter([A, V, U])                           g*g x W    |  (``encode_image``)
    F1 = norm1(F + self_attn(F))   (first half of ca_layer_vl) g*g x W   /
    T  = rest of ca_layer_vl(F1, memory=text_down(s))        n x g*g x W   \  per query
    M  = conv2(unfold_patches(conv1(T)))                     n x 1 x S x S  /  (``decode_queries``)

The official code repeats every image-only stage once per query; splitting the decoder this way computes them once
per frame and gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configuration import MaskDecoderConfig, MLLMSegConfig


class FusionDecoderLayer(nn.Module):
    """Post-norm transformer decoder layer (self-attention, cross-attention, ReLU FFN), batch-first.

    Same parameters (``nn.MultiheadAttention``'s packed ``in_proj``) and maths as the official layer; split in two so
    the query-independent self-attention half can be cached. Attention is computed here with
    ``F.scaled_dot_product_attention``: ``nn.MultiheadAttention``'s inference fast path materialises the full
    attention matrix on CPU.
    """

    def __init__(self, config: MaskDecoderConfig) -> None:
        super().__init__()
        width = config.width
        self.self_attn = nn.MultiheadAttention(width, config.num_heads, dropout=config.dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(width, config.num_heads, dropout=config.dropout, batch_first=True)
        self.linear1 = nn.Linear(width, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, width)
        self.norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm3 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    @staticmethod
    def _attend(attention: nn.MultiheadAttention, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """query B x N x W attends to memory B x M x W -> B x N x W."""
        heads, width = attention.num_heads, attention.embed_dim
        w_q, w_k, w_v = attention.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attention.in_proj_bias.chunk(3)
        if memory.shape[1] == 1 and not (attention.training and attention.dropout > 0):
            # One key: its softmax weight is exactly 1, so every query receives out_proj(v_proj(memory)).
            return attention.out_proj(F.linear(memory, w_v, b_v)).expand_as(query)
        batch = query.shape[0]
        # B x L x W -> B x heads x L x W/heads
        split = lambda t: t.reshape(batch, -1, heads, width // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(F.linear(query, w_q, b_q)), split(F.linear(memory, w_k, b_k)), split(F.linear(memory, w_v, b_v))
        dropout = attention.dropout if attention.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return attention.out_proj(out.transpose(1, 2).reshape(batch, -1, width))

    def self_attention_block(self, tgt: torch.Tensor) -> torch.Tensor:
        # B x N x W -> B x N x W
        attended = self._attend(self.self_attn, tgt, tgt)
        return self.norm1(tgt + self.dropout(attended))

    def cross_and_feedforward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        # tgt B x N x W, memory B x M x W -> B x N x W
        attended = self._attend(self.multihead_attn, tgt, memory)
        tgt = self.norm2(tgt + self.dropout(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.cross_and_feedforward(self.self_attention_block(tgt), memory)


class _LayerStack(nn.Module):
    def __init__(self, config: MaskDecoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([FusionDecoderLayer(config)])
        self.norm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)


class FusionDecoder(nn.Module):
    """One decoder layer followed by an extra LayerNorm (keys ``decoder.layers.0.*`` and ``decoder.norm.*``)."""

    def __init__(self, config: MaskDecoderConfig) -> None:
        super().__init__()
        self.decoder = _LayerStack(config)

    @property
    def layer(self) -> FusionDecoderLayer:
        return self.decoder.layers[0]

    def finish(self, tgt_after_self_attention: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.decoder.norm(self.layer.cross_and_feedforward(tgt_after_self_attention, memory))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.finish(self.layer.self_attention_block(tgt), memory)


class DynamicUpsampler(nn.Module):
    """DySample ("lp" style, no dynamic scope): learned point sampling for ``scale``x upsampling.

    Each output pixel samples the input bilinearly at its source position plus an offset predicted by a 1x1 conv
    (times ``offset_scale``) plus a fixed sub-pixel grid ``init_pos``; channels are split into ``groups`` that get
    their own offsets.
    """

    def __init__(self, channels: int, scale: int, groups: int, offset_scale: float) -> None:
        super().__init__()
        self.scale, self.groups, self.offset_scale = scale, groups, offset_scale
        self.offset = nn.Conv2d(channels, 2 * groups * scale**2, kernel_size=1)
        self.register_buffer("init_pos", self._initial_positions(scale, groups))

    @staticmethod
    def _initial_positions(scale: int, groups: int) -> torch.Tensor:
        # Sub-pixel centres of the scale x scale children of a pixel, e.g. (-0.25, 0.25) for scale 2,
        # laid out as (x/y, group, child row, child col) -> 1 x 2*groups*scale^2 x 1 x 1.
        centres = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
        grid_x, grid_y = torch.meshgrid(centres, centres, indexing="xy")
        children = torch.stack([grid_x, grid_y]).reshape(2, 1, -1).repeat(1, groups, 1)
        return children.reshape(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: B x C x h x w -> B x C x scale*h x scale*w
        batch, channels, height, width = x.shape
        offset = self.offset(x) * self.offset_scale + self.init_pos  # B x 2*G*s^2 x h x w (in input pixels)
        # The sampling grid and grid_sample run in float32 on a contiguous input: in bf16/fp16 on CPU, grid_sample of
        # a non-contiguous tensor returns NaN (a defect of the official code), and sub-pixel positions need the bits.
        offset = offset.float().view(batch, 2, -1, height, width)
        ys = torch.arange(height, device=x.device, dtype=torch.float32) + 0.5
        xs = torch.arange(width, device=x.device, dtype=torch.float32) + 0.5
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        # x and y normalised by their own side; divisions by Python numbers rather than a tensor made from a list, which
        # would copy from the host and so could not be recorded in a CUDA graph (model/cuda_graphs.py)
        coords = torch.cat([2 * (grid_x + offset[:, :1]) / width - 1, 2 * (grid_y + offset[:, 1:]) / height - 1], dim=1)
        # coords: B x 2 x G*s^2 x h x w, in [-1, 1]
        # Spread each pixel's s^2 children over the upsampled grid: B x 2*G x s*h x s*w.
        coords = F.pixel_shuffle(coords.reshape(batch, -1, height, width), self.scale)
        coords = coords.view(batch, 2, self.groups, self.scale * height, self.scale * width)
        coords = coords.permute(0, 2, 3, 4, 1).flatten(0, 1)  # B*G x s*h x s*w x 2
        grouped = x.float().contiguous().reshape(batch * self.groups, channels // self.groups, height, width)
        sampled = F.grid_sample(grouped, coords, mode="bilinear", align_corners=False, padding_mode="border")
        return sampled.view(batch, channels, self.scale * height, self.scale * width).to(x.dtype)


@dataclass
class ImageContext:
    """Query-independent decoder state of one batch of images (see the module docstring)."""

    fused: torch.Tensor  # B x g*g x W: F1, the fused image tokens after ca_layer_vl's self-attention half
    cross_view: torch.Tensor  # B x g*g x W: A, ViT tokens after attending to the LLM image states


class MaskDecoder(nn.Module):
    """``res_decoder``: fuses ViT features, LLM image states and each [SEG] state into a mask logit map."""

    def __init__(self, config: MLLMSegConfig) -> None:
        super().__init__()
        dec = config.decoder
        self.grid = config.vision.grid_size
        self.llm_grid = config.llm_grid_size
        self.patch = config.vision.patch_size
        llm_width, width = config.llm.hidden_size, dec.width
        self.img_llm_down = nn.Linear(llm_width, width)
        self.text_down = nn.Linear(llm_width, width)
        self.text_out_adapter = nn.Linear(3 * width, width)
        self.ca_layer_v2l = FusionDecoder(dec)
        self.upsample_adapter_l = DynamicUpsampler(width, config.upsample_factor, dec.upsample_groups, dec.upsample_offset_scale)
        self.ca_layer_vl = FusionDecoder(dec)
        # One output channel per pixel of a ViT patch: conv1 predicts a patch_size x patch_size tile per grid cell.
        self.conv1 = nn.Sequential(
            nn.Conv2d(width, self.patch**2, kernel_size=3, padding=1),
            nn.BatchNorm2d(self.patch**2, eps=dec.batch_norm_eps),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Conv2d(1, 1, dec.refine_kernel_size, padding=dec.refine_kernel_size // 2)

    def encode_image(self, vit_features: torch.Tensor, llm_image_states: torch.Tensor) -> ImageContext:
        """vit_features B x g*g x W, llm_image_states B x l*l x H -> the per-image context."""
        batch, width = vit_features.shape[0], vit_features.shape[-1]
        llm_down = self.img_llm_down(llm_image_states)  # B x l*l x W
        cross_view = self.ca_layer_v2l(vit_features, llm_down)  # B x g*g x W
        # B x l*l x W -> B x W x l x l -> upsample -> B x W x g x g -> B x g*g x W
        llm_map = llm_down.transpose(1, 2).reshape(batch, width, self.llm_grid, self.llm_grid)
        upsampled = self.upsample_adapter_l(llm_map).flatten(2).transpose(1, 2)
        fused = self.text_out_adapter(torch.cat([cross_view, vit_features, upsampled], dim=-1))  # B x g*g x W
        return ImageContext(fused=self.ca_layer_vl.layer.self_attention_block(fused), cross_view=cross_view)

    def decode_queries(self, context: ImageContext, image_index: torch.Tensor, seg_states: torch.Tensor) -> torch.Tensor:
        """Mask logits for n queries: ``seg_states`` n x H, ``image_index`` n (which image each query is about).

        Returns n x S x S logits (S = grid * patch, the model's input size).
        """
        n = seg_states.shape[0]
        if n == 0:
            size = self.grid * self.patch
            return seg_states.new_zeros(0, size, size)
        memory = self.text_down(seg_states).unsqueeze(1)  # n x 1 x W
        tokens = self.ca_layer_vl.finish(context.fused[image_index], memory)  # n x g*g x W
        # n x g*g x W -> n x W x g x g -> conv1 -> n x P*P x g x g
        width = tokens.shape[-1]
        tiles = self.conv1(tokens.transpose(1, 2).reshape(n, width, self.grid, self.grid))
        # Unfold each cell's P*P channels into its P x P pixels: n x 1 x g*P x g*P.
        tiles = tiles.permute(0, 2, 3, 1).reshape(n, self.grid, self.grid, self.patch, self.patch)
        pixels = tiles.permute(0, 1, 3, 2, 4).reshape(n, 1, self.grid * self.patch, self.grid * self.patch)
        return self._refine(pixels)  # n x S x S

    def _refine(self, pixels: torch.Tensor) -> torch.Tensor:
        """``conv2`` over n one-channel maps (n x 1 x S x S -> n x S x S), run as ONE depthwise convolution of an
        n-channel map: the same sums per pixel, but oneDNN's one-channel convolution with a batch above 1 is slow on the
        CPU (forward 20 ms vs 8 ms for 4 maps of 448 px, backward 8x slower while training)."""
        n, _, height, width = pixels.shape
        weight, bias = self.conv2.weight, self.conv2.bias
        grouped = F.conv2d(
            pixels.reshape(1, n, height, width),
            weight.expand(n, -1, -1, -1),
            bias.expand(n),
            padding=self.conv2.padding,
            groups=n,
        )
        return grouped.reshape(n, height, width)

    def forward(
        self, vit_features: torch.Tensor, llm_image_states: torch.Tensor, seg_states: torch.Tensor, image_index: torch.Tensor
    ) -> torch.Tensor:
        return self.decode_queries(self.encode_image(vit_features, llm_image_states), image_index, seg_states)
