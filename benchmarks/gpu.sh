#!/usr/bin/env bash
# The checks only a GPU can do:
#   1. throughput and MFU of the full-size architecture (benchmarks/bench_gpu.py);
#   2. the batching service on CUDA: 32 clients against 1, and the in-process ceiling (benchmarks/bench_serve.py).
# Usage: bash benchmarks/gpu.sh [--peak-tflops 989] [--compile] [--smoke]   (options go to bench_gpu.py)
# Without a CUDA device (and without --smoke) it prints "no CUDA device; skipping" and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 290 python benchmarks/bench_gpu.py "$@"
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  timeout 240 python benchmarks/bench_serve.py --device cuda --texts synthetic --requests 4000 --seconds 15 --repeats 2
fi
