#!/usr/bin/env bash
# usage: bash shell/setup.sh [ENV_DIR]      e.g. bash shell/setup.sh envs/recbole
# Idempotent: uses the active virtualenv/conda env if there is one, else creates .venv; installs requirements.lock
# (exact versions and hashes, made from requirements.txt by shell/lock.sh) only when it changed since the last
# successful install. ENV_DIR installs an environment of its own the same way: ENV_DIR/requirements.lock into
# .venv-<name> (envs/recbole: RecBole 1.2.1 for eval/sasrec.py in .venv-recbole, never mixed into .venv; a few
# minutes the first time, torch and tensorboard are the bulk).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh

env_dir=${1:-}
lock=requirements.lock PY=python venv=${VIRTUAL_ENV:-${CONDA_PREFIX:-}}
if [[ -n "$env_dir" ]]; then
  lock=$env_dir/requirements.lock venv=.venv-$(basename "$env_dir")
  [[ -f "$lock" ]] || { echo "error: no $lock to install" >&2; exit 2; }
fi
if [[ -n "$env_dir" || -z "$venv" ]]; then
  venv=${venv:-.venv}
  [[ -x "$venv/bin/python" ]] || { echo "[setup] creating $venv"; python3 -m venv "$venv"; }
  PY=$venv/bin/python
fi
STAMP=$venv/.sprec-lock.sha256

want=$(sha256sum "$lock" | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "[setup] $lock unchanged; nothing to install"
  exit 0
fi
echo "[setup] installing $lock into $venv (a few minutes the first time)"
# A GPU machine's working CUDA torch is kept (the lock's torch is the CPU build): installing it over a CUDA build
# would download GBs and may not match the driver. The rest of the lock is installed as it is.
if "$PY" - <<'PY' 2>/dev/null; then
import sys, torch
major, minor = (int(x) for x in torch.__version__.split(".")[:2])
sys.exit(0 if torch.cuda.is_available() and (major, minor) >= (2, 6) else 1)
PY
  echo "[setup] keeping the installed CUDA torch $("$PY" -c 'import torch; print(torch.__version__)')"
  without_torch=$(mktemp) && trap 'rm -f "$without_torch"' EXIT
  # the lock without torch's entry (its line and the hash lines under it)
  awk '/^[a-z0-9]/ { skip = ($1 ~ /^torch==/) } !skip' "$lock" > "$without_torch"
fi
# Every package is in the lock (--no-deps: nothing is resolved anew, so what a lock leaves out stays out) and must
# match its hash. Bytecode is compiled after, on every core (pip compiles on one: a third of a fresh install's time).
if ! "$PY" -m pip install --quiet --require-hashes --no-deps --no-compile -r "${without_torch:-$lock}"; then
  echo "error: installing $lock failed. Its torch is the CPU build 2.13.0+cpu: where pip cannot find it," \
    "set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and rerun" >&2
  exit 2
fi
# (a file that does not compile, such as torch's Python 3.12-only test module, stays as it is, as pip leaves it)
"$PY" -m compileall -q -j 0 "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null || true
echo "$want" > "$STAMP"
echo "[setup] done"
