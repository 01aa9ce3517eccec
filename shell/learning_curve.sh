#!/usr/bin/env bash
# usage: bash shell/learning_curve.sh [GPU ids...] [--dry-run]      e.g. BASE_MODEL=smollm2 bash shell/learning_curve.sh
# SFT on growing budgets of train records, each stage continuing the previous one's model on records it has not seen
# (so the stage for budget b has seen b records), each evaluated on the same test users, with MostPop on them too:
# OUTPUT_ROOT/SFT-<b>/<Category>, then the curve's table and figure (eval/learning_curve.py). Stages resume: a rerun
# skips what is finished and stops if the settings changed. --dry-run prints the plan and runs nothing.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
CATEGORY=${CATEGORY:-"ML100K"}
BASE_MODEL=${BASE_MODEL-"smollm2"}          # local path, hub id, or smollm2; empty = the small model
BUDGETS=${BUDGETS:-"512 1024 2048 4096"}    # records seen after each stage, increasing
RECIPE=${RECIPE:-""}                        # a recipe file; empty: the model's own (its sft section trains each stage)
RECIPE_ARGS=${RECIPE_ARGS:-""}
SEED=${SEED:-42}                            # the run seed; each stage derives its own (utils/seeds.py)
OUTPUT_ROOT=${OUTPUT_ROOT:-"runs/curve"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-300}   # the same sampled test users for every stage
REPORT_TO=none
# -------------------------------------------------------------------------------------------------------------
export CATEGORY BASE_MODEL BUDGETS RECIPE RECIPE_ARGS SEED OUTPUT_ROOT TEST_SAMPLE_SIZE REPORT_TO

run_plan learning_curve 0 "$@"
