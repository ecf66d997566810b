#!/usr/bin/env bash
# The whole test suite, from a clean checkout: set-up (environment, install,
# op build), lint, then pytest on both CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] pytest"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m pytest -n 2 --dist loadfile -q "$@"
