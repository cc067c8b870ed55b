#!/usr/bin/env bash
# Install, then train and evaluate a multimodal model (MiniLM + caption + gate + CRF)
# on the bundled example, tag a few tweets and draw the gate. Offline, CPU, a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${MSCMT_SKIP_INSTALL:-0}" = 1 ] || bash examples/install.sh
RUN=${RUN:-examples/runs/quickstart}
python examples/make_images.py examples/images
rm -rf "$RUN"
mscmt train --config examples/configs/example.toml --out "$RUN"
mscmt evaluate "$RUN" --config examples/configs/example.toml --split test --json "$RUN/test_eval.json"
if mscmt tag --help >/dev/null 2>&1; then
  mscmt tag examples/tweets.jsonl --model "$RUN" --captions examples/data/captions.txt --out "$RUN/tagged.jsonl"
  echo "tagged tweets: $RUN/tagged.jsonl"
fi
if mscmt explain --help >/dev/null 2>&1; then
  mscmt explain --model "$RUN" --captions examples/data/captions.txt --text "can't stop thinking about Jordan today" --image ex_0001.jpg --out "$RUN/gate.html"
  echo "gate picture: $RUN/gate.html"
fi
