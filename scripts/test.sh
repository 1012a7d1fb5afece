#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, lint, tests (trace tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
