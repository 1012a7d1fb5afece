#!/usr/bin/env bash
# Creates .venv with llmplan and its trace + dev + peers + engines + plot extras. torch is installed first, pinned to the 2.13.0 CPU
# build (on the development machines it lies on disk; an unpinned torch would pull a multi-GB CUDA build),
# then transformers and peft reuse it. Idempotent: a second run only re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, transformers, peft, deepspeed, resvg_py, llmplan" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
    DS_BUILD_OPS=0 .venv/bin/pip install --quiet --disable-pip-version-check -e ".[trace,dev,peers,engines,plot]"
fi
