#!/usr/bin/env bash
# usage: bash shell/setup.sh
# Idempotent: uses the active virtualenv/conda env if there is one, else creates .venv; installs requirements.lock
# (exact versions and hashes, made from requirements.txt by shell/lock.sh) only when it changed since the last
# successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh

if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
  PY=python
  STAMP="${VIRTUAL_ENV:-${CONDA_PREFIX}}/.sprec-lock.sha256"
else
  if [[ ! -x .venv/bin/python ]]; then
    echo "[setup] creating .venv"
    python3 -m venv .venv
  fi
  PY=.venv/bin/python
  STAMP=.venv/.sprec-lock.sha256
fi

want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "[setup] requirements.lock unchanged; nothing to install"
  exit 0
fi
echo "[setup] installing requirements.lock (a few minutes the first time)"
# A GPU machine's working CUDA torch is kept (the lock's torch is the CPU build): installing it over a CUDA build
# would download GBs and may not match the driver. The rest of the lock is installed as it is.
lock=requirements.lock
if "$PY" - <<'PY' 2>/dev/null; then
import sys, torch
major, minor = (int(x) for x in torch.__version__.split(".")[:2])
sys.exit(0 if torch.cuda.is_available() and (major, minor) >= (2, 6) else 1)
PY
  echo "[setup] keeping the installed CUDA torch $("$PY" -c 'import torch; print(torch.__version__)')"
  lock=$(mktemp)
  trap 'rm -f "$lock"' EXIT
  # the lock without torch's entry (its line and the hash lines under it)
  awk '/^[a-z0-9]/ { skip = ($1 ~ /^torch==/) } !skip' requirements.lock > "$lock"
fi
# Every package is in the lock (--no-deps: nothing is resolved anew) and must match its hash.
if ! "$PY" -m pip install --quiet --require-hashes --no-deps -r "$lock"; then
  echo "error: installing requirements.lock failed. Its torch is the CPU build 2.13.0+cpu: where pip cannot find it," \
    "set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and rerun" >&2
  exit 2
fi
echo "$want" > "$STAMP"
echo "[setup] done"
