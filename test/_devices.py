"""The devices tests run on: the CPU everywhere; CUDA collected everywhere too, skipped with a reason without a GPU, so a
CPU run lists what only a GPU run checks (benchmarks/gpu_run.sh runs them on a GPU)."""
import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_run.sh runs it)")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
