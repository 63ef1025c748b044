#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the GPU benchmarks and the GPU tests, each part with its own time limit.
#   - the engine end to end (a 1280x720 frame in, results out) for the 1B, 2B, 4B, 8B and InternVL3.5 4B/8B shapes,
#     bf16, CUDA graphs on and off (bench_engine.py);
#   - the 1B engine of another checkout (BEFORE_TREE, e.g. the last commit before a speed change) alternated with this
#     one, so that a change is measured before and after in one run on one card;
#   - the node end to end under a 30 fps 1280x720 colour + depth stream (bench_stream.py; needs rclpy);
#   - the GPU variants of the tests (they need ../shared/ beside the checkout, or MLLMSEG_SHARED_DIR).
# Every part writes its own JSON under DIR/parts; DIR/gpu_report.json gathers them with the headline numbers.
# Uses the torch already installed on the machine (CUDA build); the CPU venv of scripts/setup.sh is not needed:
#     benchmarks/gpu_run.sh [DIR]        (DIR defaults to out/gpu)
# A machine without network access gets what it lacks as one archive made here by benchmarks/gpu_prefix.sh (ROS 2
# Kilted for its Python, this package's interfaces built for it, transformers): GPU_PREFIX=path/to/prefix.tar.xz.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-out/gpu}
parts="$out/parts"
mkdir -p "$parts"
py=${PYTHON:-python3}
if [[ -n ${GPU_PREFIX:-} ]]; then
    prefix=/tmp/mllmseg_gpu_prefix
    mkdir -p "$prefix" && tar -C "$prefix" -xJf "$GPU_PREFIX" || { echo "gpu_run: cannot unpack $GPU_PREFIX" >&2; exit 1; }
    site=$(echo "$prefix"/lib/python3*/site-packages)
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" AMENT_PREFIX_PATH="$prefix"
    # What ros-wheels-bootstrapper's .pth hook would set up in a venv of the wheels: their libraries' folders.
    export LD_LIBRARY_PATH="$prefix/lib:$(printf '%s:' "$site"/ros_*.libs)${LD_LIBRARY_PATH:-}" _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
fi
"$py" - <<'PY' || { echo "gpu_run: no CUDA device visible to torch" >&2; exit 1; }
import torch
assert torch.cuda.is_available()
print("gpu_run:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
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
engine=(benchmarks/bench_engine.py --dtype bf16 --device cuda --warmup 3 --threads 8)
# The released shapes, each built once and measured with and without CUDA graphs.
run engine_internvl2_5 240 "$py" "${engine[@]}" --shapes 1b,2b,4b,8b --graphs on,off --repeats 10 \
    --json "$parts/bench_engine_internvl2_5.json"
run engine_internvl3_5 180 "$py" "${engine[@]}" --shapes 3.5-4b,3.5-8b --graphs on,off --repeats 10 \
    --json "$parts/bench_engine_internvl3_5.json"
# Before and after: the 1B engine of BEFORE_TREE and of this checkout, alternated twice (the spread between runs of
# one tree tells what a difference is worth). The older tree's bench_engine.py takes --shape.
if [[ -n ${BEFORE_TREE:-} ]]; then
    for round in 1 2; do
        run "before_1b_round$round" 60 env PYTHONPATH="$BEFORE_TREE:$PYTHONPATH" "$py" "$BEFORE_TREE/benchmarks/bench_engine.py" \
            --shape 1b --dtype bf16 --device cuda --warmup 3 --repeats 20 --threads 8 --json "$parts/before_1b_round$round.json"
        run "after_1b_round$round" 60 "$py" "${engine[@]}" --shapes 1b --repeats 20 --json "$parts/after_1b_round$round.json"
    done
fi
# The node under a camera's stream (skipped with a message where rclpy does not import).
if "$py" -c "import rclpy, mllmseg_ros.msg" 2>/dev/null; then
    run stream_1b 120 "$py" benchmarks/bench_stream.py --shape 1b --dtype bf16 --device cuda --size 1280x720 --fps 30 \
        --warmup 5 --seconds 15 --json "$parts/stream_1b.json"
else
    echo "gpu_run: rclpy or this package's interfaces do not import here: no node benchmark (see GPU_PREFIX)" | tee -a "$out/gpu_run.log"
fi
# GPU variants of the tests (parametrised on cuda when a GPU is present; the CUDA-graph tests among them).
run tests_gpu 150 "$py" -m pytest -q -ra -p no:cacheprovider test/model test/engine -k "cuda or gpu" \
    --junitxml "$parts/tests_gpu.xml"
"$py" benchmarks/gpu_report.py "$parts" "$out/gpu_report.json" | tee -a "$out/gpu_run.log"
echo "gpu_run: report in $out/gpu_report.json (status $status)"
exit $status
