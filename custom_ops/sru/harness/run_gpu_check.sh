#!/usr/bin/env bash
# Builds and runs the SRU CUDA check + benchmark on a GPU machine, with nvcc
# alone (no TensorFlow), in well under 5 minutes (SRU_TIME_BUDGET, default
# 280 s, bounds every step's timeout). Prints one summary at the
# end; full logs go to $OUT (if set) or build/sru_harness/.
#
#   bash custom_ops/sru/harness/run_gpu_check.sh
#
# Steps: (1) the TF-free builds: sru_kernels.cu for sm_75..sm_90 + PTX (what
# scripts/build_ops.py compiles), and the harness's host-emulation build run
# with --quick; (2) the harness for this GPU's architecture, --check then
# --bench; (3) bench_vs_cudnn.py: cuDNN LSTM at the same shapes (skipped
# cleanly without PyTorch / CUDA); (4) the verifier's GPU smoke run
# (benchmarks/verify_gpu_smoke.py on instances staged into results/verify_smoke:
# carry that folder).
set -u -o pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KERNELS="$HERE/../kernels"
LOGS="${OUT:-$HERE/../../../build/sru_harness}"
BUILD="$(mktemp -d)"
mkdir -p "$LOGS"
STATUS=()
note() { echo "[run_gpu_check] $*"; }
record() { STATUS+=("$1"); note "$1"; }
# Every step gets min(its own cap, what is left of SRU_TIME_BUDGET seconds),
# so the whole script stays inside the budget even when a step hangs.
BUDGET="${SRU_TIME_BUDGET:-280}"
cap() {
  local left=$((BUDGET - SECONDS))
  [ "$left" -lt 15 ] && left=15
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
# A Python that has PyTorch (bench_vs_cudnn.py, and cuBLAS from its wheels).
PY=""
for p in ${SRU_PYTHON:-} python3 /opt/torch/.venv/bin/python3 python; do
  if command -v "$p" > /dev/null 2>&1 && "$p" -c 'import torch' > /dev/null 2>&1; then
    PY="$(command -v "$p")"; break
  fi
done
[ -z "$PY" ] && PY="$(command -v python3 || command -v python || true)"

NVCC="$(command -v nvcc || true)"
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
  note "nvcc not found: nothing to build"; exit 2
fi
note "nvcc: $NVCC ($("$NVCC" --version | tail -1))"
CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .\r')"
# Only digits: nvidia-smi prints its failures ("NVIDIA-SMI has failed ...") on stdout.
if [[ "$CAP" =~ ^[0-9]+$ ]]; then ARCH="-arch=sm_$CAP"; else ARCH="-arch=native"; fi
ARCH="${SRU_ARCH:-$ARCH}"  # e.g. SRU_ARCH=-arch=sm_90 to build without a GPU
note "GPU: $(nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv,noheader 2>/dev/null | head -1) -> $ARCH"

# (1a) The kernels as scripts/build_ops.py compiles them: every arch + PTX.
GENCODE=""
for a in 75 80 86 89 90; do GENCODE="$GENCODE -gencode arch=compute_$a,code=sm_$a"; done
GENCODE="$GENCODE -gencode arch=compute_90,code=compute_90"
if timeout "$(cap 180)" "$NVCC" --threads 0 -std=c++17 -O3 -DNDEBUG -Xcompiler -fPIC $GENCODE -Xptxas -v \
     -c "$KERNELS/sru_kernels.cu" -o "$BUILD/sru_kernels_all.o" > "$LOGS/nvcc_all_archs.log" 2>&1; then
  SPILLS="$(grep -c 'bytes spill stores' "$LOGS/nvcc_all_archs.log")"
  NONZERO="$(grep 'spill stores' "$LOGS/nvcc_all_archs.log" | grep -vc '0 bytes spill stores, 0 bytes spill loads')"
  record "PASS nvcc sm_75..sm_90 + PTX ($SPILLS kernel builds, $NONZERO with spills)"
else
  record "FAIL nvcc sm_75..sm_90 + PTX (see $LOGS/nvcc_all_archs.log)"
fi

# (1b) Host-emulation build of the harness (g++ only) and its quick run.
CXX="$(command -v g++ || command -v c++ || true)"
if [ -n "$CXX" ]; then
  if timeout "$(cap 120)" "$CXX" -std=c++17 -O2 -DSRU_HOST_EMULATION_BUILD -x c++ "$HERE/harness.cu" \
       -o "$BUILD/harness_host" > "$LOGS/host_build.log" 2>&1 \
     && timeout "$(cap 60)" "$BUILD/harness_host" --quick > "$LOGS/host_quick.log" 2>&1; then
    record "PASS host-emulation harness --quick ($(grep -c '^PASS' "$LOGS/host_quick.log") checks)"
  else
    record "FAIL host-emulation harness (see $LOGS/host_build.log, host_quick.log)"
  fi
else
  record "SKIP host-emulation harness: no host C++ compiler"
fi

# (2) The harness for this GPU.
if ! timeout "$(cap 150)" "$NVCC" -std=c++17 -O3 $ARCH -Xptxas -v -o "$BUILD/sru_harness" \
     "$HERE/harness.cu" "$KERNELS/sru_kernels.cu" -ldl > "$LOGS/nvcc_harness.log" 2>&1; then
  record "FAIL building the harness (see $LOGS/nvcc_harness.log)"
  tail -20 "$LOGS/nvcc_harness.log"
  printf '%s\n' "${STATUS[@]}"; exit 1
fi
# cuBLAS for the layer timings: the toolkit's, or the one PyTorch's wheels
# ship (CUDA 13 wheels: site-packages/nvidia/cu13/lib; CUDA 12:
# nvidia/cublas/lib).
PY_NVIDIA_LIBS=""
if [ -n "$PY" ]; then
  PY_NVIDIA_LIBS="$("$PY" -c 'import glob, os, sys
for p in sys.path:
    for d in sorted(glob.glob(os.path.join(p or ".", "nvidia", "*", "lib"))):
        if glob.glob(os.path.join(d, "libcublas.so*")):
            print(d)' 2>/dev/null)"
fi
if [ -z "${SRU_CUBLAS_LIB:-}" ]; then
  for d in "$(dirname "$(dirname "$(readlink -f "$NVCC")")")/lib64" /usr/local/cuda/lib64 \
           $PY_NVIDIA_LIBS; do
    lib="$(ls "$d"/libcublas.so* 2>/dev/null | grep -v Lt | head -1)"
    if [ -n "$lib" ]; then
      export SRU_CUBLAS_LIB="$lib"; export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; break
    fi
  done
fi
note "cuBLAS: ${SRU_CUBLAS_LIB:-not found (the default dlopen search still runs)}"

timeout "$(cap 90)" "$BUILD/sru_harness" --check > "$LOGS/harness_check.log" 2>&1
RC=$?
cat "$LOGS/harness_check.log"
if [ $RC -eq 0 ]; then
  record "PASS harness --check ($(grep -c '^PASS' "$LOGS/harness_check.log") checks)"
else
  record "FAIL harness --check (rc=$RC)"
fi
timeout "$(cap 120)" "$BUILD/sru_harness" --bench > "$LOGS/harness_bench.log" 2>&1
RC=$?
if [ $RC -eq 0 ]; then record "PASS harness --bench"; else record "FAIL harness --bench (rc=$RC)"; fi

# (3) cuDNN LSTM and the combined table.
if [ -n "$PY" ] && [ $RC -eq 0 ]; then
  note "python: $PY"
  timeout "$(cap 150)" "$PY" "$HERE/bench_vs_cudnn.py" --harness-log "$LOGS/harness_bench.log" \
    > "$LOGS/bench_vs_cudnn.log" 2>&1 || record "FAIL bench_vs_cudnn.py (see its log)"
fi

# (4) The verifier's GPU smoke run (staged instances in results/verify_smoke:
# benchmarks/verify_gpu_smoke.py --stage, then carry that folder).
REPO="$(cd "$HERE/../../.." && pwd)"
if [ -n "$PY" ] && "$PY" -c 'import torch, onnx; assert torch.cuda.is_available()' > /dev/null 2>&1; then
  timeout "$(cap 120)" "$PY" "$REPO/benchmarks/verify_gpu_smoke.py" --timeout 20 \
    > "$LOGS/verify_smoke.log" 2>&1
  RC=$?
  case $RC in
    0) record "PASS verifier GPU smoke run ($(grep -c '| cuda |' "$LOGS/verify_smoke.log") instances)" ;;
    2) record "SKIP verifier GPU smoke run: nothing staged (benchmarks/verify_gpu_smoke.py --stage)" ;;
    *) record "FAIL verifier GPU smoke run (rc=$RC, see $LOGS/verify_smoke.log)" ;;
  esac
else
  record "SKIP verifier GPU smoke run: no PyTorch with CUDA and onnx"
fi

echo
echo "================ SRU CUDA harness summary ================"
grep -v '^JSON ' "$LOGS/harness_bench.log" | sed -n '/^SRU recurrence/,$p'
[ -f "$LOGS/bench_vs_cudnn.log" ] && grep -v '^RESULT ' "$LOGS/bench_vs_cudnn.log"
[ -f "$LOGS/verify_smoke.log" ] && { echo; echo "verifier GPU smoke run:"; cat "$LOGS/verify_smoke.log"; }
echo
printf '%s\n' "${STATUS[@]}"
echo "logs: $LOGS ($SECONDS s)"
rm -rf "$BUILD"
case "${STATUS[*]}" in *FAIL*) exit 1 ;; esac
exit 0
