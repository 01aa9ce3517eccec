#!/usr/bin/env bash
# usage: bash shell/baselines.sh [GPU ids...] ITERATIONS
# The paper's baselines in the same framework and budget, from the same SFT model (models/SFT/<Category>); each is
# a METHOD of shell/SPRec.sh (see its header), run for the same iterations:
#   DPO          DPO whose rejected item is a random catalog item the user never interacted with
#   DPO+SFT      the same random negatives plus SPRec's SFT step each iteration (isolates self-play)
#   S-DPO, DMPO  NUM_NEGATIVES (default 3) random negatives per pair, the softmax-DPO and DMPO losses
#   SemanticDPO  DPO whose negative is the item least similar to the history (RosePO-style)
#   GenreSFT     genre re-weighted SFT (IFairLRS-style)
#   SFT-only     the SPRec loop without its DPO step (ablation)
#   MostPop      the most frequent training targets for everyone (a sanity floor)
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

[[ "$BASELINES" == all ]] && BASELINES="DPO DPO+SFT S-DPO DMPO SemanticDPO GenreSFT SFT-only MostPop"
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
