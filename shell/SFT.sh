#!/usr/bin/env bash
# usage: bash shell/SFT.sh [GPU ids...]        e.g. bash shell/SFT.sh 0 1 2 3   (no ids: the CPU)
# Supervised fine-tuning of the base model on each category, then evaluation: models/SFT/<Category>/.
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
parse_gpu_ids 0 "$@"

# ---- edit here (or set any of these in the environment) ------------- GPU (official) / CPU (embedded demo) ----
CATEGORIES=${CATEGORIES:-"ML100K"}          # space-separated names of data/<Category>/ directories
BASE_MODEL=${BASE_MODEL:-""}                # local path or hub id; empty = the embedded small model
SFT_SAMPLE_SIZE=${SFT_SAMPLE_SIZE:-$(pick 4096 8000)}
SFT_EPOCHS=${SFT_EPOCHS:-$(pick 4 2)}
SFT_LR=${SFT_LR:-$(pick 3e-4 3e-3)}         # LoRA on a pretrained model / full training of the small model
SFT_BATCH_SIZE=${SFT_BATCH_SIZE:-$(pick 4 16)}
SFT_GRAD_ACCUM=${SFT_GRAD_ACCUM:-$(pick 4 1)}
SFT_WARMUP_STEPS=${SFT_WARMUP_STEPS:-$(pick 20 50)}
SEED=${SEED:-42}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}    # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}              # none, wandb or tensorboard
export TEST_SAMPLE_SIZE SEED
# -------------------------------------------------------------------------------------------------------------

for CATEGORY in $CATEGORIES; do
  check_category "$CATEGORY"
  OUT="$OUTPUT_ROOT/SFT/$CATEGORY"
  take_lock "$OUTPUT_ROOT/SFT/.$CATEGORY.lock"
  if stage_done "$OUT"; then
    echo "[sft] $OUT is complete; skipping"
  else
    ensure_base_model "$CATEGORY"
    banner "SFT on $CATEGORY -> $OUT"
    launch train/sft.py --category "$CATEGORY" --base_model "$BASE_MODEL" --output_dir "$OUT" \
      --sample_size "$SFT_SAMPLE_SIZE" --epochs "$SFT_EPOCHS" --lr "$SFT_LR" --batch_size "$SFT_BATCH_SIZE" \
      --grad_accum "$SFT_GRAD_ACCUM" --warmup_steps "$SFT_WARMUP_STEPS" --seed "$SEED" --report_to "$REPORT_TO"
  fi
  bash shell/eval.sh "$OUT" "$CATEGORY" "${GPU_IDS[@]}" 9>&-
done
