#!/usr/bin/env bash
# GPU throughput and MFU of the full-size architecture (see benchmarks/bench_gpu.py).
# Usage: bash benchmarks/gpu.sh [--peak-tflops 989] [--compile] [--smoke]
# Without a CUDA device (and without --smoke) bench_gpu.py prints "no CUDA device; skipping" and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 290 python benchmarks/bench_gpu.py "$@"
