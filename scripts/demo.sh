#!/usr/bin/env bash
# Run the demo (see README); arguments go to `mllmseg-ros demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/mllmseg-ros demo "$@"
