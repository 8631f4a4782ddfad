#!/usr/bin/env bash
# Quickstart, second command: set everything up (test tools included) and run every check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
venv=${LANAI_VENV:-.venv}
"$venv/bin/python" scripts/gen_protos.py --check
"$venv/bin/python" scripts/typecheck.py
set +e
"$venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  echo "test: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit $rc
