"""Engine options: int8 weights on CPU and torch.compile give the reference results within stated tolerances."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mllmseg_ros.engine import Segmenter
from _devices import needs_cuda

CASES = [("image0", ["the red cup", "the blue plate"]), ("image2_nonsquare", ["man in white shirt"])]
# Mean |probability difference| to float32 measured on the golden cases: int8 2e-4..4e-4, bnb-int8 1.1e-4..1.7e-4,
# bnb-nf4 1.6e-3..2.3e-3; decisions identical.
QUANTIZATION_LIMITS = {"int8": 0.01, "bnb-int8": 0.01, "bnb-nf4": 0.02}
COMPILE_ATOL = 1e-4


@pytest.fixture(scope="module")
def reference(golden_checkpoint) -> Segmenter:
    return Segmenter.from_pretrained(golden_checkpoint)


def _frames(golden_dir):
    return [(np.load(golden_dir / "inputs" / f"{name}_uint8.npy"), expressions) for name, expressions in CASES]


@pytest.mark.parametrize("mode", sorted(QUANTIZATION_LIMITS))
def test_quantized_weights_agree_with_float32(golden_checkpoint, golden_dir, reference, mode):
    if mode.startswith("bnb"):  # an optional dependency: the "test" extra (and so CI) installs it
        pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (pip install -e .[test])")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of torch's quantization module / bitsandbytes
        quantized = Segmenter.from_pretrained(golden_checkpoint, quantization=mode)
    for frame, expressions in _frames(golden_dir):
        for a, b in zip(reference.segment(frame, expressions), quantized.segment(frame, expressions)):
            assert a.decision == b.decision
            assert np.abs(a.probability - b.probability).mean() < QUANTIZATION_LIMITS[mode]


def test_unknown_quantization_is_rejected(golden_checkpoint):
    with pytest.raises(ValueError, match="unknown quantization"):
        Segmenter.from_pretrained(golden_checkpoint, quantization="int3")


def test_torch_compile_gives_the_same_results(golden_checkpoint, golden_dir, reference):
    compiled = Segmenter.from_pretrained(golden_checkpoint, compile=True)
    for frame, expressions in _frames(golden_dir)[:1]:
        # A new frame (one LLM pass over the whole prompt), then another question on it (the cached suffix pass).
        for asked in (expressions, expressions[:1]):
            for a, b in zip(reference.segment(frame, asked), compiled.segment(frame, asked)):
                assert a.decision == b.decision
                np.testing.assert_allclose(a.probability, b.probability, atol=COMPILE_ATOL, rtol=0)


@needs_cuda
def test_engine_on_gpu_matches_cpu(golden_checkpoint, golden_dir, reference):
    for dtype, mean_limit in ((torch.float32, 1e-4), (torch.bfloat16, 0.02)):
        gpu = Segmenter.from_pretrained(golden_checkpoint, device="cuda", dtype=dtype)
        for frame, expressions in _frames(golden_dir):
            for a, b in zip(reference.segment(frame, expressions), gpu.segment(frame, expressions)):
                assert a.decision == b.decision
                assert np.abs(a.probability - b.probability).mean() < mean_limit


@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_engine_with_cuda_graphs_matches_the_engine_without(golden_checkpoint, golden_dir, dtype):
    dtype = getattr(torch, dtype)
    graphed = Segmenter.from_pretrained(golden_checkpoint, device="cuda", dtype=dtype)
    eager = Segmenter.from_pretrained(golden_checkpoint, device="cuda", dtype=dtype, cuda_graphs=False)
    # Padding changes the matrix products' shapes and so their rounding: tiny in float32, visible in bfloat16.
    max_limit, mean_limit = (1e-4, 1e-5) if dtype == torch.float32 else (0.2, 0.01)
    for frame, expressions in _frames(golden_dir):
        # A new frame with two prompt lengths (two LLM graphs), and a follow-up question on a cached frame (the
        # continuation graph).
        for asked, new_frame in ((expressions, True), (expressions[:1], False), (expressions[:1], True)):
            if new_frame:
                graphed.reset_image()
                eager.reset_image()
            for a, b in zip(eager.segment(frame, asked), graphed.segment(frame, asked)):
                assert a.decision == b.decision
                difference = np.abs(a.probability - b.probability)
                assert difference.max() < max_limit and difference.mean() < mean_limit
    captures = graphed.model.cuda_graph_captures
    assert captures >= 5 and eager.model.cuda_graph_captures == 0  # ViT, prompt, continuation, decoder stages
    frame, expressions = _frames(golden_dir)[0]
    graphed.reset_image()
    graphed.segment(frame, expressions)  # shapes seen before: replayed, not captured again
    assert graphed.model.cuda_graph_captures == captures
    # New weights (other storage): the graphs are captured again and read them.
    state = {k: v.clone() for k, v in graphed.model.state_dict().items()}
    graphed.model.load_state_dict(state, assign=True)
    graphed.reset_image()
    again = graphed.segment(frame, expressions)
    assert graphed.model.cuda_graph_captures > captures
    eager.reset_image()
    for a, b in zip(eager.segment(frame, expressions), again):
        assert a.decision == b.decision
        difference = np.abs(a.probability - b.probability)
        assert difference.max() < max_limit and difference.mean() < mean_limit


@needs_cuda
def test_post_processing_on_the_gpu_matches_the_host(golden_checkpoint, golden_dir):
    """On a GPU, masks, boxes and centroids are made on the device: the same as the host's from the same maps."""
    device = Segmenter.from_pretrained(golden_checkpoint, device="cuda")
    host = Segmenter.from_pretrained(golden_checkpoint, device="cuda")
    host.postprocess_on_device = False
    for seg in (device, host):
        seg.options.threshold = 0.45
    for frame, expressions in _frames(golden_dir):
        for a, b in zip(device.segment(frame, expressions), host.segment(frame, expressions)):
            assert (a.decision, a.found, a.area, a.bbox) == (b.decision, b.found, b.area, b.bbox)
            assert np.array_equal(a.mask, b.mask)
            assert a.centroid == (None if b.centroid is None else pytest.approx(b.centroid))
            np.testing.assert_allclose(a.probability, b.probability, atol=1e-6, rtol=0)
