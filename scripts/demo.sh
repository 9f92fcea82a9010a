#!/usr/bin/env bash
# Set up (a virtual environment in .venv) and run the main job on embedded defaults:
# a dry-run plan of an example job spec, offline, with no credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/carbonshift plan "${1:-examples/resnet-finetune.yaml}" "${@:2}"
