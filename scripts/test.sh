#!/usr/bin/env bash
# Set up (a virtual environment in .venv with the dev extra) and run every check CI runs:
# ruff lint, ruff format check, mypy on src/, and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "== ruff check"; .venv/bin/ruff check src tests bench tools
echo "== ruff format --check"; .venv/bin/ruff format --check src tests bench tools
echo "== mypy src/"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
