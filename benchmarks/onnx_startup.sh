#!/bin/bash
# Whole-process time and peak memory of `mscmt tag --backend onnx` on an export, this checkout against a baseline
# checkout (e.g. `git worktree add ../base ec166d5`), interleaved round by round. An untrained model is built in a
# temporary folder and exported by each checkout:
#   - without CAPTIONS: minilm + CRF, text only; the two outputs must be byte-identical;
#   - with CAPTIONS (a captions file for the tweets' images): minilm + caption (the packaged minilm) + gated + CRF,
#     tagged with --captions CAPTIONS --no-cache (every round encodes every caption); the two outputs must give the
#     same tags and entities, and the largest difference of an entity's score is printed.
#
#   bash benchmarks/onnx_startup.sh BASE_CHECKOUT TWEETS [ROUNDS] [CAPTIONS]
set -euo pipefail
base=$(cd "${1:?give the baseline checkout}" && pwd)
tweets=$(realpath "${2:?give a file of tweets}")
rounds=${3:-5}
captions=${4:+$(realpath "$4")}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$work"
CAPTIONS=$captions PYTHONPATH=$here python - <<'PY'
import os
from pathlib import Path

import torch

from mscmt_cli.labels import LABELS
from mscmt_cli.model.build import Components, assemble, save_model
from mscmt_cli.registry import Registry
from plugins.text_encoders import packaged_minilm_path

torch.manual_seed(0)
image, fusion = ("caption", "gated") if os.environ["CAPTIONS"] else ("none", "none")
parts = Components(text="minilm", image=image, fusion=fusion, decoder="crf")
model = assemble(Registry.from_entry_points(), parts, list(LABELS), {"minilm": packaged_minilm_path()})
save_model(Path("run/model"), model.model, model.spec)
PY
extra=()
[ -n "$captions" ] && extra=(--captions "$captions" --no-cache)
for v in base new; do
  root=$([ $v = base ] && echo "$base" || echo "$here")
  PYTHONPATH=$root python -m mscmt_cli export run --out $v-export > /dev/null
done
for r in $(seq "$rounds"); do
  for v in base new; do
    root=$([ $v = base ] && echo "$base" || echo "$here")
    rm -f out-$v.jsonl
    PYTHONPATH=$root /usr/bin/time -f "$v %e s %M KB" python -m mscmt_cli tag "$tweets" --model $v-export --backend onnx \
      "${extra[@]}" --out out-$v.jsonl 2>&1 | grep -E "^(base|new) "
  done
  if [ -z "$captions" ]; then
    cmp -s out-base.jsonl out-new.jsonl && echo "round $r: same output" || { echo "round $r: outputs differ"; exit 1; }
  else
    python - "$r" <<'PY' || exit 1
import json
import sys

base, new = ([json.loads(line) for line in open(f"out-{v}.jsonl", encoding="utf-8")] for v in ("base", "new"))
def spans(rows):
    return [[a["tags"], [(e["type"], e["start"], e["end"]) for e in a["entities"]]] for a in rows]


same = spans(base) == spans(new)
scores = [(e["score"], f["score"]) for a, b in zip(base, new) for e, f in zip(a["entities"], b["entities"])]
diff = max((abs(p - q) for p, q in scores), default=0.0)
print(f"round {sys.argv[1]}: {'same tags' if same else 'tags differ'}, max entity score difference {diff:.2g}")
sys.exit(0 if same else 1)
PY
  fi
done
