#!/usr/bin/env bash
# The README's test command: set up, then unit tests + every notebook and solution under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/python -m pytest tests notebooks solutions --nbval-lax --nbval-current-env -q "$@"
