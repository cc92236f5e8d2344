#!/usr/bin/env bash
# Install postroom with every extra into .venv and run the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[all,test]'

# The dashboard's browser tests drive Debian's chromium headless (never a
# downloaded browser): installed here when missing and this runs as root (as in
# CI); otherwise they are skipped, saying why (failed when services are required).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "scripts/test.sh: installing Debian's chromium for the dashboard tests" >&2
    if ! { apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "scripts/test.sh: chromium could not be installed" >&2
    fi
  else
    echo "scripts/test.sh: /usr/bin/chromium is missing (apt-get install chromium" \
      "as root): the dashboard's browser tests will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
