#!/usr/bin/env bash
# Mutation testing (docs/testing.md): mutmut over the modules a planner or a motor depends on, each with the tests that
# cover it, one module at a time. Slow (minutes per module), so not part of scripts/test.sh.
#     scripts/mutation.sh [--rev REV] [--jobs N] [TARGET ...]      reports under out/mutation/<target>/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# Not in the test extra: only this script needs it. 3.x: forkserver isolation (torch, rclpy) and per-function stats.
.venv/bin/python -c "import mutmut, sys; sys.exit(not mutmut.__version__.startswith('3.8'))" 2>/dev/null ||
    .venv/bin/python -m pip install --disable-pip-version-check -q "mutmut==3.8.1"
exec .venv/bin/python scripts/mutation.py "$@"
