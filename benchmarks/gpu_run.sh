#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the GPU benchmarks (1B and 8B shapes, bf16) and the GPU variants of the
# tests, in well under 8 minutes, with a JSON report per part in $OUT (default: out/gpu).
# Uses the torch already installed on the machine (CUDA build); the CPU venv of scripts/setup.sh is not needed:
#     pip install -e . && benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-out/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && "$py" -c 'import torch' 2>/dev/null || py=.venv/bin/python
"$py" - <<'PY' || { echo "gpu_run: no CUDA device visible to torch" >&2; exit 1; }
import torch
assert torch.cuda.is_available()
print("gpu_run:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
status=0
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
timeout 240 "$py" benchmarks/bench_model.py --shapes 1b,8b --dtypes bf16 --device cuda --expressions 1,4 --repeats 10 \
    --json "$out/bench_model.json" | tee "$out/bench_model.txt" || status=1
for shape in 1b 8b; do
    timeout 120 "$py" benchmarks/bench_engine.py --shape "$shape" --dtype bf16 --device cuda --repeats 10 \
        --json "$out/bench_engine_$shape.json" | tee "$out/bench_engine_$shape.txt" || status=1
done
# GPU variants of the tests (parametrised on cuda when a GPU is present); the rest needs ../shared and runs in CI.
timeout 150 "$py" -m pytest -q -ra tests/model/test_low_precision.py tests/engine/test_engine_options.py -k "cuda or gpu" \
    --junitxml "$out/tests.xml" | tail -n 20 | tee "$out/tests.txt" || status=1
echo "gpu_run: reports in $out (status $status)"
exit $status
