#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the GPU benchmarks (1B, 8B and the InternVL3.5 4B/8B shapes, bf16; the 1B engine with and without
# CUDA graphs) and the GPU variants of the tests, in about 10 minutes (each part has its own time limit). torch.compile
# is left out: compiling the three stages took longer than two minutes (bench_engine.py --compile measures it).
# Every part writes its own JSON under DIR/parts; DIR/gpu_report.json gathers them with the headline numbers next to the issue's targets.
# Uses the torch already installed on the machine (CUDA build); the CPU venv of scripts/setup.sh is not needed:
#     pip install -e . && benchmarks/gpu_run.sh [DIR]        (DIR defaults to out/gpu)
# The tests need ../shared/ beside the checkout, or MLLMSEG_SHARED_DIR pointing at a copy of it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-out/gpu}
parts="$out/parts"
mkdir -p "$parts"
py=${PYTHON:-python3}
"$py" - <<'PY' || { echo "gpu_run: no CUDA device visible to torch" >&2; exit 1; }
import torch
assert torch.cuda.is_available()
print("gpu_run:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
run() {  # run NAME SECONDS COMMAND...: a failing or overlong part is reported and the others still run
    local name=$1 seconds=$2
    shift 2
    echo "=== $name" | tee -a "$out/gpu_run.log"
    timeout "$seconds" "$@" 2>&1 | tee -a "$out/gpu_run.log"
    local rc=${PIPESTATUS[0]}
    echo "$name: exit $rc" >> "$parts/exit_codes.txt"
    [[ $rc == 0 ]] || status=1
}
: > "$out/gpu_run.log"
: > "$parts/exit_codes.txt"
# The engine as the node uses it: a new frame per call, cached follow-up questions, post-processing. The 1B engine
# runs twice, with and without CUDA graphs, for the graphs' effect measured on the same card in the same call.
run bench_engine_1b 90 "$py" benchmarks/bench_engine.py --shape 1b --dtype bf16 --device cuda \
    --warmup 3 --repeats 20 --threads 8 --json "$parts/bench_engine_1b.json"
run bench_engine_1b_no_graphs 90 "$py" benchmarks/bench_engine.py --shape 1b --dtype bf16 --device cuda --no-cuda-graphs \
    --warmup 3 --repeats 20 --threads 8 --json "$parts/bench_engine_1b_no_graphs.json"
# GPU variants of the tests (parametrised on cuda when a GPU is present; the CUDA graph tests among them).
run tests_gpu 120 "$py" -m pytest -q -ra -p no:cacheprovider tests/model tests/engine -k "cuda or gpu" \
    --junitxml "$parts/tests_gpu.xml"
run bench_engine_8b 120 "$py" benchmarks/bench_engine.py --shape 8b --dtype bf16 --device cuda \
    --warmup 3 --repeats 20 --threads 8 --json "$parts/bench_engine_8b.json"
# Model forward, ours beside the official-style path (same run, same card), 1 and 4 expressions.
run bench_model 150 "$py" benchmarks/bench_model.py --shapes 1b,8b --dtypes bf16 --device cuda --expressions 1,4 \
    --warmup 3 --repeats 20 --threads 8 --json "$parts/bench_model.json"
# The InternVL3.5 shapes (Qwen3 LLMs), 1 expression: no GPU figures for them yet.
run bench_model_internvl3_5 120 "$py" benchmarks/bench_model.py --shapes 3.5-4b,3.5-8b --dtypes bf16 --device cuda \
    --expressions 1 --warmup 2 --repeats 10 --threads 8 --json "$parts/bench_model_internvl3_5.json"
# Last: the model and engine suites on this machine's torch (the ROS tests need rclpy and run in CI).
run tests_model_engine 100 "$py" -m pytest -q -ra -p no:cacheprovider tests/model tests/engine -k "not cuda and not gpu" \
    --junitxml "$parts/tests_model_engine.xml"
"$py" benchmarks/gpu_report.py "$parts" "$out/gpu_report.json" | tee -a "$out/gpu_run.log"
echo "gpu_run: report in $out/gpu_report.json (status $status)"
exit $status
