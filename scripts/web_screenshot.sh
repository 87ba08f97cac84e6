#!/usr/bin/env bash
# Retake the README's picture of the web page (docs/web-session.png).
#
# It is the browser test suite's own screenshot test: a real server, a terminal user
# on TCP and two browser tabs in headless Chromium (Debian's chromium package), so the
# picture shows what the tests check. Run from a checkout with the test dependencies
# installed (`pip install -e . --group test`, or inside `nox -s tests`).
set -euo pipefail
cd "$(dirname "$0")/.."
TRIOCHAT_SCREENSHOT="$PWD/docs/web-session.png" \
    python -m pytest tests/test_web_browser.py -k screenshot -q -p no:cacheprovider
echo "wrote docs/web-session.png"
