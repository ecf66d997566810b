#!/usr/bin/env bash
# Creates .venv if missing, installs keras-ndsru (editable) with the CPU
# TensorFlow wheel and the test/example extras, and builds the fused SRU op
# libraries (C++ CPU kernels, plus the CUDA kernels when nvcc is on PATH) for
# TensorFlow and PyTorch; then the same for JAX in .venv-jax.
# Safe to run again: pip skips what is installed and the build skips an
# up-to-date library.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "[setup] installing keras-ndsru[cpu,test] into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,test]" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import keras_ndsru, tensorflow" \
  || { echo "[setup] install failed: see pip output above" >&2; exit 1; }
if [ -f scripts/build_ops.py ]; then
  echo "[setup] building the fused SRU op"
  .venv/bin/python scripts/build_ops.py
fi
# JAX gets its own environment (the JAX backend tests run in it), so that its
# numpy and ml_dtypes never change TensorFlow's.
if [ ! -x .venv-jax/bin/python ]; then
  echo "[setup] creating .venv-jax with $($PYTHON --version)"
  "$PYTHON" -m venv .venv-jax
fi
echo "[setup] installing keras-ndsru[jax] into .venv-jax"
.venv-jax/bin/python -m pip install -q --disable-pip-version-check -e ".[jax]" 2>&1 \
  | grep -v "^WARNING: Location" || true
echo "[setup] building the fused SRU op for JAX"
KERAS_BACKEND=jax .venv-jax/bin/python scripts/build_ops.py
