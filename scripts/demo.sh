#!/usr/bin/env bash
# Install postroom with every extra into .venv and run the demo (postroom demo).
# Usage: bash scripts/demo.sh [postroom demo options...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[all]'
exec .venv/bin/postroom demo "$@"
