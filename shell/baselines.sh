#!/usr/bin/env bash
# usage: bash shell/baselines.sh [GPU ids...] ITERATIONS [--dry-run]
# The paper's baselines in the same framework and budget, from the same SFT model (models/SFT/<Category>): each a
# METHOD of shell/SPRec.sh, run for the same iterations, and MostPop, which needs no model. The roster and what each
# baseline is: utils/methods.py (`python -m utils.methods`).
# Every hyperparameter comes from shell/SPRec.sh's variable block (or the environment), so budgets match SPRec's.
# BASELINES="DPO S-DPO" runs a subset; BASELINES=all (the default here) the whole roster. --dry-run prints the plan.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"

# ---- edit here (or set in the environment) ----
BASELINES=${BASELINES:-all}
CATEGORIES=${CATEGORIES:-"ML100K"}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}
SEED=${SEED:-42}
# ------------------------------------------------
export BASELINES CATEGORIES OUTPUT_ROOT TEST_SAMPLE_SIZE SEED

run_plan baselines 1 "$@"
