#!/usr/bin/env bash
# usage: bash shell/test.sh [pytest args...]
# Set-up, lint (ruff on the Python, shellcheck on shell/), then the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh
bash shell/setup.sh
# shellcheck source=shell/common.sh
source shell/common.sh
echo "[test] ruff"; ruff check .
echo "[test] shellcheck"; shellcheck -x shell/*.sh .ci/run bench/*.sh
echo "[test] pytest"; python -m pytest "$@"
