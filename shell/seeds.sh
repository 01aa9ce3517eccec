#!/usr/bin/env bash
# usage: bash shell/seeds.sh [GPU ids...]
# The demo's whole comparison (SFT, SPRec and the baselines of shell/baselines.sh, BASELINES) once per seed, each in
# runs/seed<S>/, then one report with mean ± std over the seeds and the paired statistics (eval/stats.py: per-seed
# intervals, mean ± std of the paired differences and their t-interval). Resumable like every stage. The recipe is
# the model's own unless RECIPE names another, e.g. the demo's sizes:
#   RECIPE=recipes/demo.yaml ITERATIONS=1 BASELINES="DPO DPO+SFT MostPop" EVAL_SFT_STEP=0 bash shell/seeds.sh
# or SmolLM2 with the CPU recipe for a pretrained base (recipes/pretrained-cpu.yaml):
#   KERNELS=bf16 BASE_MODEL=smollm2 SEEDS="42 43" BASELINES="DPO DPO+SFT MostPop" EVAL_SFT_STEP=0 bash shell/seeds.sh
# SFT_MODEL=DIR starts every seed from one finished SFT model (copied into each seed's root, evaluated there) instead
# of training one per seed: the seeds then vary the self-play, the SFT steps and the DPO steps, not the SFT.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/common.sh
source shell/common.sh
parse_gpu_ids 0 "$@"

# ---- edit here (or set in the environment) ----
BASE_MODEL=${BASE_MODEL:-""}     # empty = the small model; smollm2 (or a path, a hub id) = a pretrained base, LoRA
SEEDS=${SEEDS:-"42 43 44 45 46"}
ITERATIONS=${ITERATIONS:-2}
RUNS_ROOT=${RUNS_ROOT:-"runs"}
FIGS_DIR=${FIGS_DIR:-"figs/seeds"}
SFT_MODEL=${SFT_MODEL:-""}       # empty = each seed trains its own SFT model; a finished SFT directory = all start from it
CATEGORY=${CATEGORY:-"ML100K"}   # e.g. ML100KALL with RECIPE=recipes/recommender.yaml (docs/recommender.md)
DECODING=${DECODING:-"greedy"}   # the protocols every model is evaluated under, e.g. "greedy constrained"
REFERENCES=${REFERENCES:-"MostPop"}  # reference rows every model is also compared with (eval.stats --references)
# ------------------------------------------------

export CATEGORIES=$CATEGORY BASE_MODEL DECODING
if [[ "$CATEGORY" == ML100K ]]; then stage_done data/ML100K || python -m data.prepare ml-100k; fi
check_category "$CATEGORY"
roots=()
for seed in $SEEDS; do
  banner "seed $seed"
  export SEED=$seed OUTPUT_ROOT="$RUNS_ROOT/seed$seed"
  if [[ -n "$SFT_MODEL" ]]; then
    copy_trained_model "$SFT_MODEL" "$OUTPUT_ROOT/SFT/$CATEGORY"
    evaluate "$OUTPUT_ROOT/SFT/$CATEGORY" "$CATEGORY"
  else
    bash shell/SFT.sh "${GPU_IDS[@]}"
  fi
  bash shell/SPRec.sh "${GPU_IDS[@]}" "$ITERATIONS"
  bash shell/baselines.sh "${GPU_IDS[@]}" "$ITERATIONS"
  roots+=("$OUTPUT_ROOT")
done
banner "report over seeds: ${SEEDS}"
python -m eval.report --run_root "$(IFS=,; echo "${roots[*]}")" --category "$CATEGORY" --figs_dir "$FIGS_DIR"
for decoding in $DECODING; do
  [[ "$decoding" == candidates ]] && continue   # ranks given candidates: no top-K lists of the catalog to pair
  for k in 1 5; do
    python -m eval.stats --run_root "$(IFS=,; echo "${roots[*]}")" --category "$CATEGORY" --decoding "$decoding" \
      --references "$REFERENCES" --k "$k"
  done
done
