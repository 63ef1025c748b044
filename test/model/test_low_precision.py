"""bfloat16 / float16 give finite masks that agree with float32 (the official code returns NaN on CPU in bf16)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from test_golden_parity import golden_decisions, load_case

from mllmseg_ros.model import MLLMSegModel
from mllmseg_ros.model.mask_decoder import DynamicUpsampler
from _devices import DEVICES, needs_cuda

BF16_MEAN_ABS_LIMIT = 0.02


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_agrees_with_float32_on_golden_cases(golden_checkpoint, golden_dir, device):
    model = MLLMSegModel.from_pretrained(golden_checkpoint, dtype=torch.bfloat16, device=device)
    for case in ("A_seg_rej", "B_single_seg", "C_nonsquare_seg"):
        case_dir, pixel_values, input_ids = load_case(golden_dir, case)
        out = model.forward_ids(pixel_values, input_ids)
        probs = out.mask_probs[0].cpu().numpy()
        assert np.isfinite(probs).all(), case
        mean_abs = np.abs(probs - np.load(case_dir / "pred_masks.npy")).mean()
        assert mean_abs < BF16_MEAN_ABS_LIMIT, (case, mean_abs)
        assert out.decisions[0] == golden_decisions(golden_dir, case_dir, input_ids), case


@pytest.mark.parametrize("device", DEVICES)
def test_float16_gives_finite_masks(golden_checkpoint, golden_dir, device):
    model = MLLMSegModel.from_pretrained(golden_checkpoint, dtype=torch.float16, device=device)
    case_dir, pixel_values, input_ids = load_case(golden_dir, "C_nonsquare_seg")
    out = model.forward_ids(pixel_values, input_ids)
    probs = out.mask_probs[0].cpu().numpy()
    assert np.isfinite(probs).all()
    assert np.abs(probs - np.load(case_dir / "pred_masks.npy")).mean() < BF16_MEAN_ABS_LIMIT
    assert out.decisions[0] == golden_decisions(golden_dir, case_dir, input_ids)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_upsampler_is_finite_on_non_contiguous_low_precision_input(dtype):
    """The input layout that made the official DySample return NaN (a permuted view) in low precision."""
    torch.manual_seed(0)
    upsampler = DynamicUpsampler(channels=64, scale=2, groups=4, offset_scale=0.25).eval()
    tokens = torch.randn(1, 16 * 16, 64)
    as_map = tokens.view(1, 16, 16, 64).permute(0, 3, 1, 2)  # non-contiguous, as in the decoder
    with torch.no_grad():
        reference = upsampler(as_map)
        low = upsampler.to(dtype)(as_map.to(dtype))
    assert low.dtype == dtype
    assert torch.isfinite(low).all()
    assert (low.float() - reference).abs().max() < 0.05


@needs_cuda
def test_float32_on_cuda_matches_official(golden_checkpoint, golden_dir):
    """float32 on the GPU (cuBLAS/cuDNN kernels, SDPA's CUDA backends) reproduces the official masks and decisions."""
    model = MLLMSegModel.from_pretrained(golden_checkpoint, dtype=torch.float32, device="cuda")
    for case in ("A_seg_rej", "B_single_seg", "C_nonsquare_seg"):
        case_dir, pixel_values, input_ids = load_case(golden_dir, case)
        out = model.forward_ids(pixel_values.cuda(), input_ids.cuda())
        mean_abs = np.abs(out.mask_probs[0].cpu().numpy() - np.load(case_dir / "pred_masks.npy")).mean()
        assert mean_abs < 1e-3, (case, mean_abs)
        assert out.decisions[0] == golden_decisions(golden_dir, case_dir, input_ids), case
