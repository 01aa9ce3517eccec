#!/usr/bin/env bash
# usage: bash shell/learning_curve.sh [GPU ids...]      e.g. BASE_MODEL=smollm2 bash shell/learning_curve.sh
# SFT on growing budgets of train records, each stage continuing the previous one's model on records it has not seen
# (so the stage for budget b has seen b records), each evaluated on the same test users, with MostPop on them too:
# OUTPUT_ROOT/SFT-<b>/<Category>, then the curve's table and figure (eval/learning_curve.py). Stages resume: a rerun
# skips what is finished and stops if the settings changed.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
parse_gpu_ids 0 "$@"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
CATEGORY=${CATEGORY:-"ML100K"}
BASE_MODEL=${BASE_MODEL-"smollm2"}          # local path, hub id, or smollm2; empty = the small model
BUDGETS=${BUDGETS:-"512 1024 2048 4096"}    # records seen after each stage, increasing
RECIPE=${RECIPE:-""}                        # a recipe file; empty: the model's own (its sft section trains each stage)
RECIPE_ARGS=${RECIPE_ARGS:-""}
SEED=${SEED:-42}
OUTPUT_ROOT=${OUTPUT_ROOT:-"runs/curve"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-300}   # the same sampled test users for every stage
REPORT_TO=none
export TEST_SAMPLE_SIZE SEED REPORT_TO
# -------------------------------------------------------------------------------------------------------------

check_category "$CATEGORY"
budgets=$(echo "$BUDGETS" | tr -s ' ' ',')
python -m eval.learning_curve --run_root "$OUTPUT_ROOT" --category "$CATEGORY" --slices "${budgets#,}" --seed "$SEED"
ensure_base_model "$CATEGORY"
take_lock "$OUTPUT_ROOT/.$CATEGORY.lock"
previous="" seen=0 stage=0
for budget in $BUDGETS; do
  OUT="$OUTPUT_ROOT/SFT-$budget/$CATEGORY"
  start=(--base_model "$BASE_MODEL")
  [[ -n "$previous" ]] && start=(--resume_from "$previous")
  banner "SFT to $budget records ($(( budget - seen )) new) -> $OUT"
  launch -m train.sft --category "$CATEGORY" "${start[@]}" --output_dir "$OUT" \
    --train_file "$OUTPUT_ROOT/slices/$CATEGORY/records-$budget.jsonl" --recipe "$RECIPE" \
    --recipe_args "$RECIPE_ARGS sft.sample_size=$(( budget - seen ))" --seed "$SEED" \
    --iteration "$stage"
  evaluate "$OUT" "$CATEGORY"
  previous="$OUT" seen=$budget stage=$(( stage + 1 ))
done
banner "MostPop on the same users"
python -m eval.mostpop --category "$CATEGORY" --output_dir "$OUTPUT_ROOT/MostPop/$CATEGORY" \
  --test_sample_size "$TEST_SAMPLE_SIZE" --seed "$SEED"
python -m eval.learning_curve --run_root "$OUTPUT_ROOT" --category "$CATEGORY"
