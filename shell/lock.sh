#!/usr/bin/env bash
# usage: bash shell/lock.sh [ENV_DIR]      e.g. bash shell/lock.sh envs/recbole
# Refresh requirements.lock from requirements.txt (the floors): one exact version and sha256 per package the CPU
# install resolves, for Linux x86-64 and Python 3.11, compiled by uv. shell/setup.sh installs the lock; a GPU machine
# keeps its CUDA torch and installs the rest of it. Commit the new lock with a note of what moved, and regenerate the
# golden eval files if a digit moved (tests/test_golden.py says which).
# ENV_DIR locks an environment of its own the same way: ENV_DIR/requirements.txt, with ENV_DIR/overrides.txt when there
# is one, into ENV_DIR/requirements.lock (envs/recbole: RecBole's, which overrides.txt keeps without ray; installed by
# bash shell/setup.sh envs/recbole).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh

# ---- edit here ----
UV_VERSION=0.13.9
PYTHON_VERSION=3.11
PLATFORM=x86_64-manylinux_2_28
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-"https://download.pytorch.org/whl/cpu"}  # where torch's +cpu wheel comes from
# ---------------------------------------------------------------------------------------------------------------

env_dir=${1:-}
in=requirements.txt out=requirements.lock command="bash shell/lock.sh" override_args=()
if [[ -n "$env_dir" ]]; then
  [[ -f "$env_dir/requirements.txt" ]] || { echo "error: no $env_dir/requirements.txt to lock" >&2; exit 2; }
  in=$env_dir/requirements.txt out=$env_dir/requirements.lock command="bash shell/lock.sh $env_dir"
  [[ -f "$env_dir/overrides.txt" ]] && override_args=(--override "$env_dir/overrides.txt")
fi
py=python3; [[ -x .venv/bin/python ]] && py=.venv/bin/python
"$py" -m uv --version 2>/dev/null | grep -q " $UV_VERSION" || "$py" -m pip install --quiet "uv==$UV_VERSION"
# torch's CPU build: from a local wheel folder when pip is configured with one (PIP_FIND_LINKS), else PyTorch's
# CPU index. Neither location is written into the lock.
if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
  read -ra links <<< "$PIP_FIND_LINKS"
  source_args=(); for link in "${links[@]}"; do source_args+=(--find-links "$link"); done
else
  source_args=(--extra-index-url "$TORCH_CPU_INDEX" --index-strategy unsafe-best-match)
fi
"$py" -m uv pip compile "$in" "${override_args[@]}" --generate-hashes --python-version "$PYTHON_VERSION" \
  --python-platform "$PLATFORM" "${source_args[@]}" --no-emit-find-links --no-emit-index-url \
  --custom-compile-command "$command" --quiet -o "$out"
echo "[lock] wrote $out: $(grep -c '^[a-z0-9]' "$out") packages"
