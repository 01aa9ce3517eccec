#!/usr/bin/env bash
# usage: bash shell/SFT.sh [GPU ids...]        e.g. bash shell/SFT.sh 0 1 2 3   (no ids: the CPU)
# Supervised fine-tuning of the base model on each category, then evaluation: models/SFT/<Category>/.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
parse_gpu_ids 0 "$@"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
CATEGORIES=${CATEGORIES:-"ML100K"}          # space-separated names of data/<Category>/ directories
BASE_MODEL=${BASE_MODEL:-""}                # local path, hub id, or smollm2 (built on first use); empty = small model
RECIPE=${RECIPE:-""}                        # a recipe file; empty: the model's own (recipes/, utils/recipe.py)
RECIPE_ARGS=${RECIPE_ARGS:-""}              # this run's changes to it, e.g. "sft.learning_rate=1e-3 lora.r=8"
GRADIENT_CHECKPOINTING=${GRADIENT_CHECKPOINTING:-0}  # 1: recompute activations in backward (less memory, ~30% slower)
LOAD_IN_4BIT=${LOAD_IN_4BIT:-0}             # 1: QLoRA, the frozen base in 4-bit NF4 (GPU + bitsandbytes)
SEED=${SEED:-42}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}    # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}              # none, wandb or tensorboard
export TEST_SAMPLE_SIZE SEED REPORT_TO
# -------------------------------------------------------------------------------------------------------------

check_switches GRADIENT_CHECKPOINTING LOAD_IN_4BIT
check_tracker "$REPORT_TO"
memory_args=(--activation_checkpointing "$(py_bool "$GRADIENT_CHECKPOINTING")" --load_in_4bit "$(py_bool "$LOAD_IN_4BIT")")

for CATEGORY in $CATEGORIES; do
  check_category "$CATEGORY"
  OUT="$OUTPUT_ROOT/SFT/$CATEGORY"
  take_lock "$OUTPUT_ROOT/SFT/.$CATEGORY.lock"
  # A finished stage is skipped by train/sft.py itself, after it checked that the settings are the same.
  ensure_base_model "$CATEGORY"
  banner "SFT on $CATEGORY -> $OUT"
  launch -m train.sft --category "$CATEGORY" --base_model "$BASE_MODEL" --output_dir "$OUT" \
    --recipe "$RECIPE" --recipe_args "$RECIPE_ARGS" --seed "$SEED" --report_to "$REPORT_TO" "${memory_args[@]}"
  evaluate "$OUT" "$CATEGORY"
done
