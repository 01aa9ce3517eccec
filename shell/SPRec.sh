#!/usr/bin/env bash
# usage: bash shell/SPRec.sh [GPU ids...] ITERATIONS [--dry-run]     e.g. bash shell/SPRec.sh 0 1 2 3 5   (no ids: the CPU)
# Self-play iterations from models/SFT/<Category>: each samples the current model's predictions as rejected items,
# takes one SFT step on fresh positives, one DPO step whose reference is that SFT model, and evaluates both.
# Finished stages are skipped, so a rerun resumes after a crash and a larger ITERATIONS extends a finished run.
# METHOD picks a baseline with the same iterations and budgets (pairs, SFT records, batches, LR) instead; the methods
# and what each iteration of theirs takes are one table, utils/methods.py (`python -m utils.methods` prints it).
# --dry-run prints the plan (every stage, its command line, output, seed and recipe section) and runs nothing.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"

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
SEED=${SEED:-42}                                   # the run seed; each stage derives its own (utils/seeds.py)
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}           # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}                     # none, wandb or tensorboard: losses and per-iteration metrics
# -------------------------------------------------------------------------------------------------------------
export CATEGORIES METHOD OUTPUT_ROOT RECIPE RECIPE_ARGS NUM_NEGATIVES SELF_PLAY_DECODING SPARE_RATIO EVAL_SFT_STEP SFT_STEP_TEST_SAMPLE_SIZE GRADIENT_CHECKPOINTING LOAD_IN_4BIT SEED TEST_SAMPLE_SIZE REPORT_TO

run_plan SPRec 1 "$@"
