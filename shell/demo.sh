#!/usr/bin/env bash
# usage: bash shell/demo.sh [GPU ids...] [--dry-run]
# The main job on the embedded default, from a fresh clone: set-up, MovieLens-100K, the small model the project
# builds itself, SFT, an SPRec iteration, the verdict's baselines (the DPO baseline, the DPO+SFT ablation, MostPop;
# BASELINES=all runs the paper's whole roster, shell/baselines.sh), the results report and the paired statistics
# (eval/stats.py). Every stage is resumable: rerunning skips what is finished. The digits do not depend on the
# machine (KERNELS=portable, utils/plan.py): a fresh clone prints the README's table.
# BASE_MODEL=smollm2 runs the same job with the embedded pretrained SmolLM2-135M-Instruct and LoRA (docs/smollm2.md:
# the sizes and the time it takes). --dry-run prints the whole plan and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh
[[ " $* " == *" --dry-run "* ]] || bash shell/setup.sh
# shellcheck source=shell/common.sh
source shell/common.sh

# ---- edit here (or set in the environment) ----
ITERATIONS=${ITERATIONS:-1}   # self-play iterations of SPRec and the baselines (the five-seed study: 2)
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
SEED=${SEED:-42}
FIGS_DIR=${FIGS_DIR:-"figs"}
BASE_MODEL=${BASE_MODEL:-""}   # empty = the small model the project builds; smollm2 = the embedded pretrained model
BASELINES=${BASELINES:-"DPO DPO+SFT MostPop"}   # all = the paper's whole roster (about 3x the baselines' time)
# The small model's demo sizes (recipes/demo.yaml), unless RECIPE names another; a pretrained BASE_MODEL takes
# its own recipe (utils/recipe.py).
if [[ -z "$BASE_MODEL" ]]; then RECIPE=${RECIPE:-recipes/demo.yaml}; else RECIPE=${RECIPE:-""}; fi
EVAL_SFT_STEP=${EVAL_SFT_STEP:-0}   # 1: also evaluate each iteration's intermediate SFT-step model (no claim needs it)
# ------------------------------------------------
export CATEGORIES=ML100K ITERATIONS BASE_MODEL OUTPUT_ROOT SEED FIGS_DIR BASELINES EVAL_SFT_STEP RECIPE

start=$SECONDS
run_plan demo 0 "$@"
(( ${#DRY_RUN[@]} )) || echo "demo finished in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
