#!/usr/bin/env bash
# usage: bash shell/SFT.sh [GPU ids...] [--dry-run]      e.g. bash shell/SFT.sh 0 1 2 3   (no ids: the CPU)
# Supervised fine-tuning of the base model on each category, then evaluation: models/SFT/<Category>/.
# A finished stage is skipped by the stage itself, after it checked that the settings are the same. --dry-run prints
# the plan (every stage, its command line, output, seed and recipe section; utils/plan.py) and runs nothing.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
CATEGORIES=${CATEGORIES:-"ML100K"}          # space-separated names of data/<Category>/ directories
BASE_MODEL=${BASE_MODEL:-""}                # local path, hub id, or smollm2 (built on first use); empty = small model
RECIPE=${RECIPE:-""}                        # a recipe file; empty: the model's own (recipes/, utils/recipe.py)
RECIPE_ARGS=${RECIPE_ARGS:-""}              # this run's changes to it, e.g. "sft.learning_rate=1e-3 lora.r=8"
GRADIENT_CHECKPOINTING=${GRADIENT_CHECKPOINTING:-0}  # 1: recompute activations in backward (less memory, ~30% slower)
LOAD_IN_4BIT=${LOAD_IN_4BIT:-0}             # 1: QLoRA, the frozen base in 4-bit NF4 (GPU + bitsandbytes)
SEED=${SEED:-42}                            # the run seed; each stage derives its own (utils/seeds.py)
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}    # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}              # none, wandb or tensorboard
# -------------------------------------------------------------------------------------------------------------
export CATEGORIES BASE_MODEL RECIPE RECIPE_ARGS GRADIENT_CHECKPOINTING LOAD_IN_4BIT SEED OUTPUT_ROOT TEST_SAMPLE_SIZE REPORT_TO

run_plan SFT 0 "$@"
