#!/usr/bin/env bash
# GPU throughput and MFU of the full-size architecture (see benchmarks/bench_gpu.py).
# Usage: bash benchmarks/gpu.sh [--peak-tflops 989] [--compile] [--smoke]
# Without a CUDA device (and without --smoke) it prints "no CUDA device; skipping" and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --smoke "* ]] && ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA device; skipping"
    exit 0
fi
exec timeout 290 python benchmarks/bench_gpu.py "$@"
