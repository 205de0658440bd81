#!/usr/bin/env bash
# Sets up .venv with the CPU build of PyTorch and tinyvdm (editable) with its
# notebook and test extras. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned, so that nothing later pulls a multi-GB CUDA build.
# Elsewhere, set TINYVDM_TORCH_INDEX to your platform's CPU wheel index.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q ${TINYVDM_TORCH_INDEX:+--index-url "$TINYVDM_TORCH_INDEX"} "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[notebooks,tests]"
