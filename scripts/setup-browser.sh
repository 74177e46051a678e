#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the counter app's browser tests
# (crates/tabir-cli/tests/counter_browser.rs). Idempotent: does nothing when both are there.
# Installs with apt-get (as root, or through sudo without a password); where neither works it
# says how, and the browser tests then report themselves skipped (or fail, under
# TABIR_REQUIRE_BROWSER=1, as CI sets).
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "setup-browser: $(chromium --version 2>/dev/null | head -n 1), $(chromedriver --version | head -n 1)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "setup-browser: chromium and chromium-driver are missing and this user cannot install them;" >&2
    echo "setup-browser: run 'sudo apt-get install chromium chromium-driver' (the browser tests skip until then)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-browser: no apt-get here: install Chromium and ChromeDriver of one version by hand" >&2
    exit 0
fi
echo "setup-browser: installing Debian's chromium and chromium-driver (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "setup-browser: $(chromium --version 2>/dev/null | head -n 1), $(chromedriver --version | head -n 1)"
