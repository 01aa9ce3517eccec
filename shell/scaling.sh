#!/usr/bin/env bash
# usage: bash shell/scaling.sh [GPU ids...]      e.g. POINTS="256x6:ML100KALL:40000:1" bash shell/scaling.sh
# The small model's scaling study (docs/recommender.md): for each point, a small model of that size is
# built, trained by SFT on that many records (recipes/recommender.yaml) and evaluated on every test user, greedy (the
# paper's protocol) and with catalog-constrained beams, beside MostPop on the same category:
# OUTPUT_ROOT/<size>-<Category>-<records>/<Category>. Then the table and figure (python -m eval.scaling). Points
# resume: a rerun skips what is finished and stops if a point's settings changed (threads and kernels included: the
# committed points ran with KERNELS=native CPU_THREADS=1, one core each, taskset -c 0).
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
parse_gpu_ids 0 "$@"

# ---- edit here (or set any of these in the environment) -------------------------------------------------------
# Each point: HIDDENxLAYERS:CATEGORY:SAMPLE:EPOCHS[:LR] (records seen = SAMPLE x EPOCHS; heads = HIDDEN / 32; the
# learning rate falls as the width grows, the recipe's when none is given).
# ML100K holds a 20,000-window sample of the train windows, ML100KALL all 96,864 (python -m data.prepare ml-100k
# --name ML100KALL --train_size 0).
POINTS=${POINTS:-"256x6:ML100KALL:40000:1:2e-3 128x4:ML100KALL:40000:1:3e-3 128x4:ML100K:20000:2:3e-3
  512x6:ML100KALL:10000:1:1e-3 128x4:ML100KALL:96864:1:3e-3 256x6:ML100KALL:80000:1:2e-3"}
RECIPE=${RECIPE:-"recipes/recommender.yaml"}
RECIPE_ARGS=${RECIPE_ARGS:-""}
SEED=${SEED:-42}
OUTPUT_ROOT=${OUTPUT_ROOT:-"runs/scaling"}
REPORT_TO=none
TEST_SAMPLE_SIZE=""
export SEED REPORT_TO TEST_SAMPLE_SIZE
# -------------------------------------------------------------------------------------------------------------

take_lock "$OUTPUT_ROOT/.lock"
for point in $POINTS; do
  IFS=: read -r size category sample epochs lr <<< "$point"
  [[ "$sample" =~ ^[1-9][0-9]*$ && "$epochs" =~ ^[1-9][0-9]*$ && "$size" =~ ^([0-9]+)x([0-9]+)$ ]] \
    || die "bad point '$point': want HIDDENxLAYERS:CATEGORY:SAMPLE:EPOCHS[:LR], e.g. 256x6:ML100KALL:40000:1"
  hidden=${BASH_REMATCH[1]} layers=${BASH_REMATCH[2]}   # from the last match, the size's
  check_category "$category"
  base="models/tiny-$size/$category"
  python -m utils.tiny_model --category "$category" --out "$base" --hidden "$hidden" --layers "$layers" \
    --heads $(( hidden / 32 )) --recipe "$RECIPE" --recipe_args "$RECIPE_ARGS"
  OUT="$OUTPUT_ROOT/$size-$category-$(( sample * epochs ))/$category"
  point_args="sft.sample_size=$sample sft.num_train_epochs=$epochs${lr:+ sft.learning_rate=$lr}"
  banner "point $point -> $OUT"
  launch -m train.sft --category "$category" --base_model "$base" --output_dir "$OUT" --recipe "$RECIPE" \
    --recipe_args "$RECIPE_ARGS $point_args" --seed "$SEED"
  DECODING=greedy evaluate "$OUT" "$category"
  DECODING=constrained evaluate "$OUT" "$category"
  python -m eval.mostpop --category "$category" --output_dir "$OUTPUT_ROOT/MostPop-$category/$category" --seed "$SEED"
done
