#!/usr/bin/env bash
# usage: bash shell/SPRec.sh [GPU ids...] ITERATIONS     e.g. bash shell/SPRec.sh 0 1 2 3 5   (no ids: the CPU)
# Self-play iterations from models/SFT/<Category>: each samples the current model's predictions as rejected items,
# takes one SFT step on fresh positives, one DPO step whose reference is that SFT model, and evaluates both.
# Finished stages are skipped, so a rerun resumes after a crash and a larger ITERATIONS extends a finished run.
# METHOD picks a baseline with the same iterations and budgets (pairs, SFT records, batches, LR) instead; the methods
# and what each iteration of theirs takes are one table, utils/methods.py (`python -m utils.methods` prints it).
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
usage="usage: bash shell/SPRec.sh [GPU ids...] ITERATIONS"
(( $# >= 1 )) || die "$usage"
parse_gpu_ids 1 "$@"
ITERATIONS="${REST_ARGS[0]}"
if ! [[ "$ITERATIONS" =~ ^[0-9]+$ ]] || (( 10#$ITERATIONS == 0 )); then
  die "the iteration count must be a positive integer, got '$ITERATIONS' ($usage)"
fi
ITERATIONS=$((10#$ITERATIONS))

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
CATEGORIES=${CATEGORIES:-"ML100K"}
METHOD=${METHOD:-"SPRec"}                          # SPRec or a baseline (see above)
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
RECIPE=${RECIPE:-""}                               # a recipe file; empty: the model's own (utils/recipe.py)
RECIPE_ARGS=${RECIPE_ARGS:-""}                     # this run's changes, e.g. "dpo.beta=0.2 self_play.train_sample_size=512"
NUM_NEGATIVES=${NUM_NEGATIVES:-3}                  # S-DPO and DMPO: rejected items per pair (k+1 sequences each)
SELF_PLAY_DECODING=${SELF_PLAY_DECODING:-"greedy"} # rejected items: greedy (official) or constrained (beam, real items)
SPARE_RATIO=${SPARE_RATIO:-""}                     # spare prompts = this x the pairs wanted; empty: the contract's
EVAL_SFT_STEP=${EVAL_SFT_STEP:-1}                  # 0: skip evaluating each iteration's intermediate SFT-step model
SFT_STEP_TEST_SAMPLE_SIZE=${SFT_STEP_TEST_SAMPLE_SIZE:-""}  # that evaluation on a fixed subset of test users (empty: all)
GRADIENT_CHECKPOINTING=${GRADIENT_CHECKPOINTING:-0}     # 1: recompute activations (less memory, ~30% slower)
LOAD_IN_4BIT=${LOAD_IN_4BIT:-0}                    # 1: QLoRA, the frozen base in 4-bit NF4 (GPU + bitsandbytes)
SEED=${SEED:-42}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}           # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}                     # none, wandb or tensorboard: losses and per-iteration metrics
export TEST_SAMPLE_SIZE SEED REPORT_TO
# -------------------------------------------------------------------------------------------------------------

# The method's negatives, how many per pair, its DPO loss (a recipe change) and the steps an iteration takes.
spec=$(python -m utils.methods --shell "$METHOD" --num_negatives "$NUM_NEGATIVES") || exit 2
negatives="" num_negatives="" method_recipe_args="" sft_step="" dpo_step="" genre_weighting=""
eval "$spec"

check_switches GRADIENT_CHECKPOINTING LOAD_IN_4BIT
check_tracker "$REPORT_TO"
RECIPE_ARGS="$RECIPE_ARGS $method_recipe_args"
recipe_args=(--recipe "$RECIPE" --recipe_args "$RECIPE_ARGS")
memory_args=(--activation_checkpointing "$(py_bool "$GRADIENT_CHECKPOINTING")" --load_in_4bit "$(py_bool "$LOAD_IN_4BIT")")

for CATEGORY in $CATEGORIES; do
  check_category "$CATEGORY"
  SFT_DIR="$OUTPUT_ROOT/SFT/$CATEGORY"
  stage_done "$SFT_DIR" || die "$SFT_DIR is not finished: run bash shell/SFT.sh first"
  RUN="$OUTPUT_ROOT/$METHOD/$CATEGORY"
  take_lock "$RUN/.lock"
  current="$SFT_DIR"
  for ((i = 0; i < ITERATIONS; i++)); do
    IT="$RUN/it$i"
    banner "$METHOD $CATEGORY iteration $i/$ITERATIONS"
    # Each stage skips itself when finished, after checking that it was made with the same settings.
    launch -m train.self_play --model_dir "$current" --output_dir "$IT/data" --category "$CATEGORY" \
      --iteration "$i" --seed "$SEED" --negatives "$negatives" --num_negatives "$num_negatives" "${recipe_args[@]}" \
      --embedding_model "${EMBEDDING_MODEL:-}" --decoding "$SELF_PLAY_DECODING" ${SPARE_RATIO:+--spare_ratio "$SPARE_RATIO"}
    if (( sft_step )); then
      launch -m train.sft --category "$CATEGORY" --resume_from "$current" --output_dir "$IT/SFT" \
        --train_file "$IT/data/sft_train.jsonl" --section sft_step "${recipe_args[@]}" --seed "$SEED" --iteration "$i" \
        --report_to "$REPORT_TO" --genre_weighting "$genre_weighting" "${memory_args[@]}"
      # The SFT step's model is intermediate for SPRec and DPO+SFT (the paper evaluates it too); for SFT-only
      # and GenreSFT it is the result.
      if (( ! dpo_step )); then evaluate "$IT/SFT" "$CATEGORY"
      elif (( EVAL_SFT_STEP )); then  # the same subset (sampled with SEED) at every iteration, recorded in its eval files
        TEST_SAMPLE_SIZE=${SFT_STEP_TEST_SAMPLE_SIZE:-$TEST_SAMPLE_SIZE} evaluate "$IT/SFT" "$CATEGORY"
      fi
      current="$IT/SFT"
    fi
    if (( dpo_step )); then
      launch -m train.dpo --model_dir "$current" --data_dir "$IT/data" --output_dir "$IT/DPO" "${recipe_args[@]}" \
        --seed "$SEED" --iteration "$i" --report_to "$REPORT_TO" "${memory_args[@]}"
      evaluate "$IT/DPO" "$CATEGORY"
      current="$IT/DPO"
    fi
  done
  echo "[$METHOD] $CATEGORY: $ITERATIONS iteration(s) in $RUN"
done
