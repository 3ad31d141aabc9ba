#!/usr/bin/env bash
# The explorer's browser tests drive Debian's chromium with selenium; install it when missing.
set -e
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y --no-install-recommends chromium chromium-driver
else
    echo "the browser tests need chromium and chromedriver (Debian: apt-get install chromium chromium-driver); they skip without them"
fi
