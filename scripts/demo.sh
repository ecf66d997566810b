#!/usr/bin/env bash
# The offline demo: set-up, then row-by-row digits with stacked SRU trained
# with NDAdam and Adam, and a small CNN with BN-Softmax. Prints a table and
# writes plots and a results JSON under results/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python examples/sequential_digits.py --out results/demo "$@"
