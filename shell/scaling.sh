#!/usr/bin/env bash
# usage: bash shell/scaling.sh [GPU ids...] [--dry-run]      e.g. POINTS="256x6:ML100KALL:40000:1" bash shell/scaling.sh
# The small model's scaling study (docs/recommender.md): for each point, a small model of that size is
# built, trained by SFT on that many records (recipes/recommender.yaml) and evaluated on every test user, greedy (the
# paper's protocol) and with catalog-constrained beams, beside MostPop on the same category:
# OUTPUT_ROOT/<size>-<Category>-<records>/<Category>. Then the table and figure (python -m eval.scaling). Points
# resume: a rerun skips what is finished and stops if a point's settings changed (threads and kernels included: the
# committed points ran with KERNELS=native CPU_THREADS=1, one core each, taskset -c 0). --dry-run prints the plan.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
# Each point: HIDDENxLAYERS:CATEGORY:SAMPLE:EPOCHS[:LR] (records seen = SAMPLE x EPOCHS; heads = HIDDEN / 32; the
# learning rate falls as the width grows, the recipe's when none is given).
# ML100K holds a 20,000-window sample of the train windows, ML100KALL all 96,864 (python -m data.prepare ml-100k
# --name ML100KALL --train_size 0).
POINTS=${POINTS:-"256x6:ML100KALL:40000:1:2e-3 128x4:ML100KALL:40000:1:3e-3 128x4:ML100K:20000:2:3e-3
  512x6:ML100KALL:10000:1:1e-3 128x4:ML100KALL:96864:1:3e-3 256x6:ML100KALL:80000:1:2e-3"}
RECIPE=${RECIPE:-"recipes/recommender.yaml"}
RECIPE_ARGS=${RECIPE_ARGS:-""}
SEED=${SEED:-42}                            # the run seed; each stage derives its own (utils/seeds.py)
OUTPUT_ROOT=${OUTPUT_ROOT:-"runs/scaling"}
REPORT_TO=none
# -------------------------------------------------------------------------------------------------------------
export POINTS RECIPE RECIPE_ARGS SEED OUTPUT_ROOT REPORT_TO

run_plan scaling 0 "$@"
