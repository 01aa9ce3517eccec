#!/usr/bin/env bash
# usage: bash shell/eval.sh MODEL_DIR CATEGORY [GPU ids...] [--dry-run]
# Generates one prediction per test record (test_result.json), then writes eval_top1.json and eval_top5.json into
# MODEL_DIR. With DECODING=constrained, catalog-constrained beam search gives K real items per record instead
# (test_result_constrained.json, eval_top{1,5}_constrained.json, beside the greedy files). DECODING=candidates with
# TOPK=1,5,10,20 ranks each user's target among 20 candidates by the model's log-probability (the S-DPO/LLaRA/DMPO
# protocol: test_result_candidates.json, eval_top{K}_candidates.json). A rerun reuses what was made with the same
# settings and stops when they changed (eval/inference.py).
set -euo pipefail
# shellcheck source=shell/common.sh
source "$(dirname "$0")/common.sh"
(( $# >= 2 )) || die "$(usage_line)"
MODEL_DIR="$1"; CATEGORY="$2"; shift 2

# ---- edit here (or set in the environment) ----
TEST_SAMPLE_SIZE=${TEST_SAMPLE_SIZE:-""}   # empty = the whole test split
TOPK=${TOPK:-"1,5"}
SEED=${SEED:-42}                           # the run seed: it samples the test users with TEST_SAMPLE_SIZE
EMBEDDING_MODEL=${EMBEDDING_MODEL:-""}     # empty = the contract's: all-MiniLM-L6-v2 (official: paraphrase-MiniLM-L3-v2)
DECODING=${DECODING:-greedy}               # greedy (official: title + embedding neighbours) | constrained | candidates, or several: "greedy constrained"
REPORT_TO=${REPORT_TO:-"none"}             # none, wandb or tensorboard: the metrics logged per iteration too
# ------------------------------------------------
export MODEL_DIR CATEGORY TEST_SAMPLE_SIZE TOPK SEED EMBEDDING_MODEL DECODING REPORT_TO

run_plan eval 0 "$@"
