#!/bin/bash
# Whole-process time and peak memory of `mscmt tag --backend onnx` on a text-only export, this checkout against a
# baseline checkout (e.g. `git worktree add ../base ec166d5`), interleaved round by round; the two outputs must be
# byte-identical. An untrained minilm + CRF model is built in a temporary folder and exported by each checkout.
#
#   bash benchmarks/onnx_startup.sh BASE_CHECKOUT TWEETS.jsonl [ROUNDS]
set -euo pipefail
base=$(cd "${1:?give the baseline checkout}" && pwd)
tweets=$(realpath "${2:?give a JSON Lines file of tweets}")
rounds=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$work"
PYTHONPATH=$here python - <<'PY'
from pathlib import Path

import torch

from mscmt_cli.labels import LABELS
from mscmt_cli.model.build import Components, assemble, save_model
from mscmt_cli.registry import Registry
from plugins.text_encoders import packaged_minilm_path

torch.manual_seed(0)
parts = Components(text="minilm", image="none", fusion="none", decoder="crf")
model = assemble(Registry.from_entry_points(), parts, list(LABELS), {"minilm": packaged_minilm_path()})
save_model(Path("run/model"), model.model, model.spec)
PY
for v in base new; do
  root=$([ $v = base ] && echo "$base" || echo "$here")
  PYTHONPATH=$root python -m mscmt_cli export run --out $v-export > /dev/null
done
for r in $(seq "$rounds"); do
  for v in base new; do
    root=$([ $v = base ] && echo "$base" || echo "$here")
    rm -f out-$v.jsonl
    PYTHONPATH=$root /usr/bin/time -f "$v %e s %M KB" python -m mscmt_cli tag "$tweets" --model $v-export --backend onnx --out out-$v.jsonl 2>&1 \
      | grep -E "^(base|new) "
  done
  cmp -s out-base.jsonl out-new.jsonl && echo "round $r: same output" || { echo "round $r: outputs differ"; exit 1; }
done
