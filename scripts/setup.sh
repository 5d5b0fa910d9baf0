#!/bin/sh
# Set-up on a fresh machine: a virtual environment in .venv with repofeed (editable) and the
# test tools. torch is installed only where the environment has none (torch==2.13.0, the CPU
# build); to train on a GPU, install your own CUDA build into .venv first and it is kept.
set -eu
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
# strict editable mode: a link tree that type checkers see (DESIGN.md, Layout)
.venv/bin/python -m pip install --quiet --editable ".[test,hf]" \
    --config-settings editable_mode=strict
