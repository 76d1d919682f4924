#!/usr/bin/env bash
# Headless Chromium and its driver for `make docs-check`: the Debian packages (a browser download of its own, as
# Playwright's, does not work offline). Installs them when missing and this runs as root; otherwise says how.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "docs-check needs Chromium: sudo apt-get install -y chromium chromium-driver" >&2; exit 1
fi
start=$SECONDS
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
echo "installed $(chromium --version 2>/dev/null | head -1) in $((SECONDS - start)) s"
