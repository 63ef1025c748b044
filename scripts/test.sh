#!/usr/bin/env bash
# Run the test suite in the project venv, offline (tests must not download models).
# Arguments go to pytest; a leading test path (test/foo.py, test/foo.py::test_x) replaces the default "test".
# Paths are relative to the repo root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh

targets=(test)
if [[ $# -gt 0 && -e ${1%%::*} ]]; then targets=(); fi

# Two worker processes, a test file each at a time (a file's fixtures and its ROS domain stay in one process): most
# node tests wait on discovery, a slow model or a quiet window rather than on the CPU, so on CI's 2 cores the suite
# takes about 60 % of the time it takes in one process. TEST_WORKERS=0 runs it in this process (pytest -s, pdb).
workers=${TEST_WORKERS:-2}
rc=0
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python -m pytest -q -ra --timeout=900 -n "$workers" --dist loadfile \
    "${targets[@]}" "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test: pytest ran no tests (exit 5: none collected or all deselected); counting that as a failure" >&2
fi
exit "$rc"
