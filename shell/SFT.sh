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
MODEL_KIND=$(kind_of_base "$BASE_MODEL")
# Recipe defaults:                      small model (full) / pretrained + LoRA on GPUs (official) / on the CPU
SFT_SAMPLE_SIZE=${SFT_SAMPLE_SIZE:-$(recipe 8000 4096 512)}
SFT_VALID_SAMPLE_SIZE=${SFT_VALID_SAMPLE_SIZE:-$(recipe 256 256 16)}   # validation loss, a few times a run
SFT_EPOCHS=${SFT_EPOCHS:-$(recipe 2 4 1)}
SFT_LR=${SFT_LR:-$(recipe 3e-3 3e-4 5e-4)}
SFT_BATCH_SIZE=${SFT_BATCH_SIZE:-$(recipe 16 16 8)}   # global: records per optimizer step, whatever the GPU count
SFT_DEVICE_BATCH_SIZE=${SFT_DEVICE_BATCH_SIZE:-$(recipe 16 4 8)}   # per device; accumulation makes up the rest
SFT_WARMUP_STEPS=${SFT_WARMUP_STEPS:-$(recipe 50 20 20)}
LORA_TARGETS=${LORA_TARGETS:-"all-linear"}  # pretrained base: peft's all-linear, or module names (q_proj,v_proj)
GRADIENT_CHECKPOINTING=${GRADIENT_CHECKPOINTING:-0}  # 1: recompute activations in backward (less memory, ~30% slower)
LOAD_IN_4BIT=${LOAD_IN_4BIT:-0}             # 1: QLoRA, the frozen base in 4-bit NF4 (GPU + bitsandbytes)
SEED=${SEED:-42}
OUTPUT_ROOT=${OUTPUT_ROOT:-"models"}
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}    # empty = the whole test split
REPORT_TO=${REPORT_TO:-"none"}              # none, wandb or tensorboard
SFT_TRAINER_ARGS=${SFT_TRAINER_ARGS:-""}    # any other trl SFTConfig field, e.g. "weight_decay=0.01 max_grad_norm=0.5"
LORA_ARGS=${LORA_ARGS:-""}                  # any other peft LoraConfig field, e.g. "use_rslora=true"
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
    --sample_size "$SFT_SAMPLE_SIZE" --valid_sample_size "$SFT_VALID_SAMPLE_SIZE" --epochs "$SFT_EPOCHS" \
    --lr "$SFT_LR" --global_batch_size "$SFT_BATCH_SIZE" --per_device_batch_size "$SFT_DEVICE_BATCH_SIZE" \
    --warmup_steps "$SFT_WARMUP_STEPS" --lora_targets "$LORA_TARGETS" --seed "$SEED" --report_to "$REPORT_TO" \
    "${memory_args[@]}" --trainer_args "$SFT_TRAINER_ARGS" --lora_args "$LORA_ARGS"
  bash shell/eval.sh "$OUT" "$CATEGORY" "${GPU_IDS[@]}" 9>&-
done
