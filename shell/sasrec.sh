#!/usr/bin/env bash
# usage: bash shell/sasrec.sh [--dry-run]
# SASRec (MODEL=GRU4Rec: GRU4Rec) from RecBole 1.2.1 on CATEGORY's split, its top-K lists scored by the project's
# metrics (eval/sasrec.py), into OUTPUT_ROOT/MODEL/CATEGORY, with MostPop and a Random row (eval/random_baseline.py)
# beside it (seconds each); then `python -m eval.report --run_root OUTPUT_ROOT --category CATEGORY` shows them, and
# beside any other run's rows once copied into one run root. Makes RecBole's environment first (.venv-recbole). A
# finished run is reused when its settings match; other settings stop with the difference (set a new OUTPUT_ROOT).
# Threads and kernels follow KERNELS and CPU_THREADS (shell/common.sh), recorded in the run config. --dry-run prints
# the plan (utils/plan.py) and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/help.sh
source shell/help.sh
[[ " $* " == *" --dry-run "* ]] || bash shell/setup.sh envs/recbole
# shellcheck source=shell/common.sh
source shell/common.sh            # KERNELS, threads, the plan; the project's .venv runs MostPop and the Random row

# ---- edit here (or set in the environment) ----
MODEL=${MODEL:-SASRec}            # SASRec or GRU4Rec
CATEGORY=${CATEGORY:-ML100K}
OUTPUT_ROOT=${OUTPUT_ROOT:-models}
MAX_LEN=${MAX_LEN:-50}            # history items the model reads (RecBole's default 50; 10 = what the LLM sees)
EPOCHS=${EPOCHS:-200}             # at most; early stopping on the valid item's NDCG@10 ends it sooner
PATIENCE=${PATIENCE:-10}          # epochs without a better valid NDCG@10
SEED=${SEED:-42}
RECBOLE_ARGS=${RECBOLE_ARGS:-""}  # more RecBole settings, "key=value,key=value"
RAW=${RAW:-""}                    # a GroupLens ml-100k folder, if data.prepare read one (default: the recbole wheel's copy)
# -------------------------------------------------------------------------------------------------------------
export MODEL CATEGORY OUTPUT_ROOT MAX_LEN EPOCHS PATIENCE SEED RECBOLE_ARGS RAW

run_plan sasrec 0 "$@"
