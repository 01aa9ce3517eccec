#!/usr/bin/env bash
# usage: bash shell/seeds.sh [GPU ids...] [--dry-run]
# The demo's whole comparison (SFT, SPRec and the baselines of shell/baselines.sh, BASELINES) once per seed, each in
# runs/seed<S>/, then one report with mean ± std over the seeds and the paired statistics (eval/stats.py: per-seed
# intervals, mean ± std of the paired differences and their t-interval), for each protocol of DECODING at K=1 and 5,
# every model also against the REFERENCES rows. Resumable like every stage. The recipe is
# the model's own unless RECIPE names another, e.g. the demo's sizes:
#   RECIPE=recipes/demo.yaml ITERATIONS=1 BASELINES="DPO DPO+SFT MostPop" EVAL_SFT_STEP=0 bash shell/seeds.sh
# or SmolLM2 with the CPU recipe for a pretrained base (recipes/pretrained-cpu.yaml):
#   KERNELS=bf16 BASE_MODEL=smollm2 SEEDS="42 43" BASELINES="DPO DPO+SFT MostPop" EVAL_SFT_STEP=0 bash shell/seeds.sh
# SFT_MODEL=DIR starts every seed from one finished SFT model (copied into each seed's root, evaluated there) instead
# of training one per seed: the seeds then vary the self-play, the SFT steps and the DPO steps, not the SFT.
# --dry-run prints the whole plan and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=shell/common.sh
source shell/common.sh

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
export BASE_MODEL SEEDS ITERATIONS RUNS_ROOT FIGS_DIR SFT_MODEL CATEGORY DECODING REFERENCES

run_plan seeds 0 "$@"
