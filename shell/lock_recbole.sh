#!/usr/bin/env bash
# usage: bash shell/lock_recbole.sh
# Refresh envs/recbole/requirements.lock from envs/recbole/requirements.txt (and overrides.txt, which leaves ray out):
# one exact version and sha256 per package, for Linux x86-64 and Python 3.11, compiled by uv as shell/lock.sh
# compiles the project's lock. shell/setup_recbole.sh installs it into .venv-recbole.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh

# ---- edit here ----
UV_VERSION=0.13.9
PYTHON_VERSION=3.11
PLATFORM=x86_64-manylinux_2_28
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-"https://download.pytorch.org/whl/cpu"}  # where torch's +cpu wheel comes from
ENV_DIR=envs/recbole
# ---------------------------------------------------------------------------------------------------------------

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"   # uv in a throwaway environment: neither .venv nor .venv-recbole gets it
"$tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
# torch's CPU build: from a local wheel folder when pip is configured with one (PIP_FIND_LINKS), else PyTorch's
# CPU index. Neither location is written into the lock.
if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
  read -ra links <<< "$PIP_FIND_LINKS"
  source_args=(); for link in "${links[@]}"; do source_args+=(--find-links "$link"); done
else
  source_args=(--extra-index-url "$TORCH_CPU_INDEX" --index-strategy unsafe-best-match)
fi
"$tools/bin/python" -m uv pip compile "$ENV_DIR/requirements.txt" --override "$ENV_DIR/overrides.txt" \
  --generate-hashes --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM" "${source_args[@]}" \
  --no-emit-find-links --no-emit-index-url --custom-compile-command "bash shell/lock_recbole.sh" --quiet \
  -o "$ENV_DIR/requirements.lock"
echo "[lock] wrote $ENV_DIR/requirements.lock: $(grep -c '^[a-z0-9]' "$ENV_DIR/requirements.lock") packages"
