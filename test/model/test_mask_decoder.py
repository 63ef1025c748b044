"""Decoder pieces that are computed differently from the official code must give the official numbers."""
from __future__ import annotations

import torch

from tiny_models import random_model


def test_refinement_of_several_maps_equals_conv2_on_each():
    """``_refine`` runs conv2 over n maps as one depthwise convolution; each map must get conv2 of itself only."""
    decoder = random_model().res_decoder
    with torch.no_grad():
        decoder.conv2.weight.normal_()
        decoder.conv2.bias.fill_(0.3)
    maps = torch.randn(3, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    maps[1] = 0  # a blank map between two others: leakage across maps would show here
    with torch.inference_mode():
        expected = torch.cat([decoder.conv2(m[None]) for m in maps]).squeeze(1)
        torch.testing.assert_close(decoder._refine(maps), expected, atol=1e-5, rtol=0)
        assert torch.all(decoder._refine(maps)[1] == 0.3)


def test_refinement_gradients_equal_conv2_gradients():
    decoder = random_model().res_decoder
    maps = torch.randn(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    ours = decoder._refine(maps).square().sum()
    (grad_ours,) = torch.autograd.grad(ours, decoder.conv2.weight)
    reference = decoder.conv2(maps).square().sum()
    (grad_reference,) = torch.autograd.grad(reference, decoder.conv2.weight)
    torch.testing.assert_close(grad_ours, grad_reference, atol=1e-4, rtol=1e-5)
