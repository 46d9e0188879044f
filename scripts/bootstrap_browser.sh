#!/usr/bin/env bash
# Debian's Chromium for the Playwright browser tests (Playwright's own download cannot work here),
# and axe-core from npm for their accessibility checks (tests/browser/axe.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f devtools/axe/node_modules/axe-core/axe.min.js ]; then
  echo "› installing axe-core from the npm registry"
  npm ci --silent --no-audit --no-fund --prefix devtools/axe
fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
echo "› installing Debian's chromium"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
