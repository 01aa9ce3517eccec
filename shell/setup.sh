#!/usr/bin/env bash
# usage: bash shell/setup.sh
# Idempotent: uses the active virtualenv/conda env if there is one, else creates .venv; installs requirements.txt
# only when it changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
  PY=python
  STAMP="${VIRTUAL_ENV:-${CONDA_PREFIX}}/.sprec-requirements.sha256"
else
  if [[ ! -x .venv/bin/python ]]; then
    echo "[setup] creating .venv"
    python3 -m venv .venv
  fi
  PY=.venv/bin/python
  STAMP=.venv/.sprec-requirements.sha256
fi

want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "[setup] requirements unchanged; nothing to install"
  exit 0
fi
echo "[setup] installing requirements.txt (a few minutes the first time)"
"$PY" -m pip install --quiet --upgrade pip
# A GPU machine's working CUDA torch is kept (the pin is for this project's CPU machines, where it picks the local
# CPU build): installing the pinned version over it would download GBs and may not match the driver.
requirements=requirements.txt
if "$PY" - <<'PY' 2>/dev/null; then
import sys, torch
major, minor = (int(x) for x in torch.__version__.split(".")[:2])
sys.exit(0 if torch.cuda.is_available() and (major, minor) >= (2, 6) else 1)
PY
  echo "[setup] keeping the installed CUDA torch $("$PY" -c 'import torch; print(torch.__version__)')"
  requirements=$(mktemp)
  trap 'rm -f "$requirements"' EXIT
  grep -v '^torch==' requirements.txt > "$requirements"
fi
"$PY" -m pip install --quiet -r "$requirements"
echo "$want" > "$STAMP"
echo "[setup] done"
