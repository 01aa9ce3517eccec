#!/usr/bin/env bash
# usage: bash shell/baselines.sh [GPU ids...] ITERATIONS
# The paper's baselines in the same framework and budget, from the same SFT model (models/SFT/<Category>): each a
# METHOD of shell/SPRec.sh, run for the same iterations, and MostPop, which needs no model. The roster and what each
# baseline is: utils/methods.py (`python -m utils.methods`).
# Every hyperparameter comes from shell/SPRec.sh's variable block (or the environment), so budgets match SPRec's.
# BASELINES="DPO S-DPO" runs a subset; BASELINES=all (the default here) the whole roster.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
(( $# >= 1 )) || die "usage: bash shell/baselines.sh [GPU ids...] ITERATIONS"

# ---- edit here (or set in the environment) ----
BASELINES=${BASELINES:-all}
CATEGORIES=${CATEGORIES:-"ML100K"}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}
SEED=${SEED:-42}
export CATEGORIES OUTPUT_ROOT TEST_SAMPLE_SIZE SEED
# ------------------------------------------------

if [[ "$BASELINES" == all ]]; then BASELINES=$(python -m utils.methods --roster); fi
for method in $BASELINES; do
  if [[ "$method" != MostPop ]]; then
    METHOD="$method" bash shell/SPRec.sh "$@"
    continue
  fi
  (( ${MACHINE_RANK:-0} == 0 )) || continue   # MostPop needs no model: machine 0 alone makes it
  for CATEGORY in $CATEGORIES; do
    check_category "$CATEGORY"
    banner "MostPop on $CATEGORY"
    python -m eval.mostpop --category "$CATEGORY" --output_dir "$OUTPUT_ROOT/MostPop/$CATEGORY" \
      --test_sample_size "$TEST_SAMPLE_SIZE" --seed "$SEED"
  done
done
