#!/usr/bin/env bash
# usage: bash shell/setup_recbole.sh
# Idempotent: creates .venv-recbole (RecBole 1.2.1 for eval/sasrec.py, git-ignored, never mixed into .venv) and
# installs envs/recbole/requirements.lock (exact versions and hashes, made by bash shell/lock.sh envs/recbole) only
# when it changed since the last successful install. A few minutes the first time (torch and tensorboard are the bulk).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh

# ---- edit here ----
ENV=.venv-recbole
LOCK=envs/recbole/requirements.lock
# ---------------------------------------------------------------------------------------------------------------

[[ -x "$ENV/bin/python" ]] || { echo "[setup_recbole] creating $ENV"; python3 -m venv "$ENV"; }
stamp="$ENV/.recbole-lock.sha256"
want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[setup_recbole] $LOCK unchanged; nothing to install"
  exit 0
fi
echo "[setup_recbole] installing $LOCK into $ENV"
# Every package is in the lock (--no-deps: nothing is resolved anew, so ray, left out, stays out) and must match
# its hash.
if ! "$ENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$LOCK"; then
  echo "error: installing $LOCK failed. Its torch is the CPU build 2.13.0+cpu: where pip cannot find it," \
    "set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and rerun" >&2
  exit 2
fi
echo "$want" > "$stamp"
echo "[setup_recbole] done"
