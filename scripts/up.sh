#!/usr/bin/env bash
# Quickstart, first command: set everything up and serve the embedded default models on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${LANAI_VENV:-.venv}/bin/lanai" up "$@"
