#!/usr/bin/env bash
# Make sure graphviz's `dot` program exists: install Debian's package when we can
# (root or passwordless sudo), otherwise say what to install. Rendering needs `dot`;
# building the DOT text does not.
set -u
command -v dot >/dev/null 2>&1 && exit 0

install() {
  $1 apt-get update -qq && $1 apt-get install -y -qq --no-install-recommends graphviz >/dev/null
}

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    install "" && exit 0
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    install "sudo -n" && exit 0
  fi
fi

cat >&2 <<'MSG'
warning: graphviz's `dot` program is missing and could not be installed automatically.
Install it to render graphs (tests that render are skipped without it, and fail in CI):
  Debian/Ubuntu: sudo apt-get install graphviz     macOS: brew install graphviz
  conda: conda install -c conda-forge graphviz
MSG
if [ -n "${CI:-}" ]; then exit 1; fi
exit 0
