#!/usr/bin/env bash
# usage: bash shell/baselines.sh [GPU ids...] ITERATIONS
# The paper's baselines in the same framework and budget, from the same SFT model (models/SFT/<Category>):
#   DPO      iterations of DPO whose rejected item is a random catalog item outside the history and target
#   SFT-only the SPRec loop without its DPO step (ablation)
#   MostPop  the most frequent training targets for everyone (a sanity floor)
# Every hyperparameter comes from shell/SPRec.sh's variable block (or the environment), so budgets match SPRec's.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
(( $# >= 1 )) || die "usage: bash shell/baselines.sh [GPU ids...] ITERATIONS"

# ---- edit here (or set in the environment) ----
CATEGORIES=${CATEGORIES:-"ML100K"}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}
SEED=${SEED:-42}
export CATEGORIES OUTPUT_ROOT TEST_SAMPLE_SIZE SEED
# ------------------------------------------------

METHOD=DPO bash shell/SPRec.sh "$@"
METHOD=SFT-only bash shell/SPRec.sh "$@"
(( ${MACHINE_RANK:-0} == 0 )) || exit 0   # MostPop needs no model: machine 0 alone makes it
for CATEGORY in $CATEGORIES; do
  check_category "$CATEGORY"
  banner "MostPop on $CATEGORY"
  python eval/mostpop.py --category "$CATEGORY" --output_dir "$OUTPUT_ROOT/MostPop/$CATEGORY" \
    --test_sample_size "$TEST_SAMPLE_SIZE" --seed "$SEED"
done
