#!/bin/bash
# Whole-process time and peak memory of `mscmt tag --backend onnx` on an export, this checkout against a baseline
# checkout (e.g. `git worktree add ../base ec166d5`), interleaved round by round. An untrained model is built in a
# temporary folder and exported by each checkout:
#   - without a fourth argument: minilm + CRF, text only; the two outputs must be byte-identical;
#   - with CAPTIONS (a captions file for the tweets' images): minilm + caption (the packaged minilm) + gated + CRF,
#     tagged with --captions CAPTIONS --no-cache (every round encodes every caption);
#   - with IMAGES (a directory of the tweets' images): minilm + clip-vit-l14 + gated + CRF, tagged with
#     --images IMAGES --no-cache; the CLIP weights are $CLIP (a directory of openai/clip-vit-large-patch14) or,
#     without it, a randomly initialised ViT-L/14 of the same shape and image processor;
#   with CAPTIONS or IMAGES the two outputs must give the same tags and entities, and the largest difference of an
#   entity's score is printed.
#
#   bash benchmarks/onnx_startup.sh BASE_CHECKOUT TWEETS [ROUNDS] [CAPTIONS | IMAGES]
set -euo pipefail
base=$(cd "${1:?give the baseline checkout}" && pwd)
tweets=$(realpath "${2:?give a file of tweets}")
rounds=${3:-5}
given=${4:+$(realpath "$4")}
captions="" images=""
if [ -d "$given" ]; then images=$given; else captions=$given; fi
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$work"
clip=${CLIP:+$(realpath "$CLIP")}
[ -n "$images" ] && [ -z "$clip" ] && clip=$work/clip
CAPTIONS=$captions IMAGES=$images CLIP_DIR=$clip PYTHONPATH=$here python - <<'PY'
import os
from pathlib import Path

import torch

from mscmt_cli.labels import LABELS
from mscmt_cli.model.build import Components, assemble, save_model
from mscmt_cli.registry import Registry
from plugins.text_encoders import packaged_minilm_path

torch.manual_seed(0)
paths = {"minilm": packaged_minilm_path()}
image, fusion = ("caption", "gated") if os.environ["CAPTIONS"] else ("none", "none")
if os.environ["IMAGES"]:
    image, fusion, paths["clip-vit-l14"] = "clip-vit-l14", "gated", os.environ["CLIP_DIR"]
    if not Path(paths["clip-vit-l14"]).exists():  # openai/clip-vit-large-patch14's vision tower, random weights
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

        shape = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14)
        config = CLIPVisionConfig(**shape, image_size=224, projection_dim=768, hidden_act="quick_gelu")
        CLIPVisionModelWithProjection(config).save_pretrained(paths["clip-vit-l14"])
        CLIPImageProcessor().save_pretrained(paths["clip-vit-l14"])
parts = Components(text="minilm", image=image, fusion=fusion, decoder="crf")
model = assemble(Registry.from_entry_points(), parts, list(LABELS), paths)
save_model(Path("run/model"), model.model, model.spec)
PY
extra=() weights=()
[ -n "$captions" ] && extra=(--captions "$captions" --no-cache)
[ -n "$images" ] && weights=(--model-path "clip-vit-l14=$clip") && extra=(--images "$images" --no-cache "${weights[@]}")
for v in base new; do
  root=$([ $v = base ] && echo "$base" || echo "$here")
  PYTHONPATH=$root python -m mscmt_cli export run --out $v-export "${weights[@]}" > /dev/null
done
for r in $(seq "$rounds"); do
  for v in base new; do
    root=$([ $v = base ] && echo "$base" || echo "$here")
    rm -f out-$v.jsonl
    PYTHONPATH=$root /usr/bin/time -f "$v %e s %M KB" python -m mscmt_cli tag "$tweets" --model $v-export --backend onnx \
      "${extra[@]}" --out out-$v.jsonl 2>&1 | grep -E "^(base|new) "
  done
  if [ -z "$captions$images" ]; then
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
