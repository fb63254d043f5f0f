#!/usr/bin/env bash
# Compile check of the CUDA sources (used by .ci/run when nvcc is present): every src_cuda/*.cu is
# compiled with nvcc -c for ONE architecture into a temporary directory (fast), and the CUDA bindings
# (bindings/cuda_module.cpp) are syntax-checked with the host compiler when pybind11 is importable.
# Exits non-zero on any error. Nothing is linked or installed; for the real build see docs/cuda.md.
#   SPLATCODEC_CHECK_ARCH   architecture to compile for (default 80)
#   NVCC                    nvcc to use (default: nvcc on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC="${NVCC:-nvcc}"
ARCH="${SPLATCODEC_CHECK_ARCH:-80}"
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check_cuda_build: nvcc not found" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
sources=(src_cuda/*.cu)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "check_cuda_build: no .cu files in src_cuda"
  exit 0
fi

start=$SECONDS
pids=()
for src in "${sources[@]}"; do
  name="$(basename "$src" .cu)"
  ( nice -n 10 "$NVCC" -std=c++17 -O3 -Isrc_cuda -gencode "arch=compute_${ARCH},code=sm_${ARCH}" \
      -Xcompiler -Wall -c "$src" -o "$tmp/$name.o" >"$tmp/$name.log" 2>&1 \
    && echo "  ok   $src" ) || { echo "  FAIL $src"; cat "$tmp/$name.log"; exit 1; } &
  pids+=($!)
done

# The bindings are plain C++ (host compiler): a syntax check catches API drift against the headers.
cxx="${CXX:-g++}"
if command -v "$cxx" >/dev/null 2>&1 && python3 -c "import pybind11" >/dev/null 2>&1; then
  cuda_inc="$(dirname "$(dirname "$(readlink -f "$(command -v "$NVCC")")")")/include"
  [[ -f "$cuda_inc/cuda_runtime_api.h" ]] || cuda_inc="/usr/local/cuda/include"
  ( nice -n 10 "$cxx" -std=c++17 -fsyntax-only -Wall -fopenmp -Isrc_cuda -I"$cuda_inc" \
      $(python3 -m pybind11 --includes) bindings/cuda_module.cpp >"$tmp/bindings.log" 2>&1 \
    && echo "  ok   bindings/cuda_module.cpp (syntax)" ) \
    || { echo "  FAIL bindings/cuda_module.cpp"; cat "$tmp/bindings.log"; exit 1; } &
  pids+=($!)
fi

status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
if [[ $status -ne 0 ]]; then
  echo "check_cuda_build: FAILED" >&2
  exit 1
fi
echo "check_cuda_build: all CUDA sources compile (sm_${ARCH}, $((SECONDS - start)) s)"
