#!/usr/bin/env bash
# Install Chromium and chromedriver, which the test of `mscmt serve`'s page drives
# (tests/test_serve_page.py; it skips, saying so, without them). Debian's packages
# through apt-get, as root or with password-less sudo; anywhere else (no apt-get, no
# root) this says what to install and stops without failing. MSCMT_NO_BROWSER=1 skips it.
set -uo pipefail

note() { echo "install_browser.sh: $*; the browser test of the page will be skipped" >&2; }

if [ "${MSCMT_NO_BROWSER:-}" = 1 ]; then
    note "MSCMT_NO_BROWSER=1"
    exit 0
fi
if command -v chromedriver >/dev/null && { command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null; then
    exit 0  # already there
fi
if ! command -v apt-get >/dev/null; then
    note "no apt-get here: install Chromium and its chromedriver yourself"
    exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        note "not root: run 'apt-get install chromium chromium-driver' as root"
        exit 0
    fi
fi
if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >/dev/null; then
    note "apt-get could not install chromium and chromium-driver"
fi
exit 0
