#!/usr/bin/env bash
# usage: bash bench/gpu_check.sh            (on a lent GPU machine, from the repository root)
#        SKIP_OFFICIAL=1 bash bench/gpu_check.sh              (without the slow official-settings sampling timing)
#        SHAPE=small N_PROMPTS=64 PAIRS=32 VALID_PAIRS=8 bash bench/gpu_check.sh   (a CPU dry run)
# Prepare here: bash bench/fetch_gpu_wheels.sh; then run with carry [".whl", "data/ML100K"].
# One prepared check. It installs what the GPU image lacks from carried wheels (.whl/: trl, datasets, fire,
# huggingface-hub<2 for the image's sentence-transformers, and the transformers/peft/accelerate versions of
# requirements.txt); times sampling (against the official settings unless SKIP_OFFICIAL=1) on a random model of
# Llama-3.2-1B's shape with SmolLM2's real BPE tokenizer (.whl/tokenizer); runs the LoRA path with the GPU recipe
# (recipes/pretrained-gpu.yaml): an SFT warm-up, then one whole iteration at the official sizes (2,048 + 256
# pairs, the SFT step, the DPO step with LoRA in bf16, both evaluations; grounding with a random stand-in embedder, see
# fetch_gpu_wheels.sh) with random negatives (METHOD=DPO+SFT: a random model names no title, so greedy self-play would
# make no pair; the benchmark above times that sampling at the same size), then a short SFT under FSDP (SHARDING=fsdp)
# whose adapter must save whole and evaluate; and prints a short table last. Writes under ${WORK:-/tmp/gpu_check}.
# On one H200 it took about 10.5 minutes (2026-11-28, results/gpu/: sampling 1, the SFT warm-up and its evaluation 1,
# the iteration 6.5 of which the DPO step 3.5, FSDP 1.7): more than one 10-minute device call. Split it (CHECK_FSDP=0
# first), or add EXTRA_RECIPE_ARGS="dpo.per_device_train_batch_size=8" (a memory knob: the same optimizer steps,
# without accumulation).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- edit here (or set in the environment) ----
SHAPE=${SHAPE:-llama-1b}
N_PROMPTS=${N_PROMPTS:-2804}           # the official iteration's 2,048 + 256 + 500 spare prompts
PAIRS=${PAIRS:-2048}                  # self-play pairs per iteration (the recipe field self_play.train_sample_size)
VALID_PAIRS=${VALID_PAIRS:-256}
WORK=${WORK:-/tmp/gpu_check}
SKIP_OFFICIAL=${SKIP_OFFICIAL:-0}     # 1: skip timing the official sampling settings (about 80 s on an H200)
CHECK_FSDP=${CHECK_FSDP:-1}           # 0: skip the FSDP save check
EXTRA_RECIPE_ARGS=${EXTRA_RECIPE_ARGS:-""}  # more recipe overrides for every stage, e.g. larger per-device batches
# ------------------------------------------------

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export VIRTUAL_ENV=${VIRTUAL_ENV:-system}  # use this machine's Python as it is (shell/common.sh needs an env)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
gpu_ids=()
if command -v nvidia-smi >/dev/null; then nvidia-smi -L; gpu_ids=(0); fi
rm -rf "$WORK"; mkdir -p "$WORK"
secs() { local t0=$SECONDS; "$@" >> "$WORK/log.txt" 2>&1 || { tail -50 "$WORK/log.txt" >&2; exit 1; }; echo $((SECONDS - t0)); }

echo "[gpu_check] sampling benchmark ($SHAPE, $N_PROMPTS prompts)"
tokenizer=models/tiny/ML100K
[[ -f .whl/tokenizer/tokenizer.json ]] && tokenizer=.whl/tokenizer   # SmolLM2's, carried by fetch_gpu_wheels.sh
skip=()
(( SKIP_OFFICIAL )) && skip=(--skip_official)
python -m bench.sampling --shape "$SHAPE" --n_prompts "$N_PROMPTS" --tokenizer "$tokenizer" "${skip[@]}" \
  | tee "$WORK/sampling.txt"

python -m bench.random_model --shape "$SHAPE" --out "$WORK/base" --tokenizer "$tokenizer" >> "$WORK/log.txt"
python -m bench.random_model --shape embedder --out "$WORK/embedder" --tokenizer "$tokenizer" >> "$WORK/log.txt"
export BASE_MODEL="$WORK/base" OUTPUT_ROOT="$WORK/models" CATEGORIES=ML100K SEED=42 EMBEDDING_MODEL="$WORK/embedder"
# The pretrained recipe of the device (recipes/pretrained-gpu.yaml on a GPU) with these sizes.
export RECIPE_ARGS="self_play.train_sample_size=$PAIRS self_play.valid_sample_size=$VALID_PAIRS \
$EXTRA_RECIPE_ARGS"
# A short LoRA SFT so that SPRec.sh has its starting adapter (the warm-up is not what is timed).
short_sft="$RECIPE_ARGS sft.num_train_epochs=1"
t_sft=$(RECIPE_ARGS="$short_sft sft.sample_size=256" TEST_SAMPLE_SIZE=64 secs bash shell/SFT.sh "${gpu_ids[@]}")
t_iter=$(METHOD=DPO+SFT secs bash shell/SPRec.sh "${gpu_ids[@]}" 1)
it="$OUTPUT_ROOT/DPO+SFT/ML100K/it0"
t_fsdp=-
if (( CHECK_FSDP && ${#gpu_ids[@]} )); then  # FSDP needs a GPU under accelerate
  t_fsdp=$(OUTPUT_ROOT="$WORK/fsdp" SHARDING=fsdp RECIPE_ARGS="$short_sft sft.sample_size=128" TEST_SAMPLE_SIZE=64 \
    secs bash shell/SFT.sh "${gpu_ids[@]}")
fi
python - "$it" "$t_sft" "$t_iter" "$t_fsdp" "$WORK/fsdp/SFT/ML100K" <<'PY'
import json, sys
from pathlib import Path
it, t_sft, t_iter, t_fsdp, fsdp = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])
sft = json.loads((it / "SFT/run_config_sft.json").read_text())["args"]
dpo = json.loads((it / "DPO/run_config_dpo.json").read_text())["args"]
pairs = json.loads((it / "data/summary.json").read_text())
print("\n| check | value |\n|---|---:|")
print(f"| SFT warm-up (256 records, 1 epoch + eval of 64), s | {t_sft} |")
print(f"| one iteration at official sizes (random negatives, SFT step, DPO step, 2 evals), s | {t_iter} |")
print(f"| recipe | {Path(sft['recipe']).name} |")
print(f"| negatives for {pairs['drawn']} drawn prompts, s | {pairs['seconds']} |")
print(f"| SFT step: {sft['steps']} steps, peak MB | {sft['peak_memory_mb']} |")
print(f"| DPO step: {dpo['steps']} steps, peak MB | {dpo['peak_memory_mb']} |")
print(f"| DPO / SFT peak memory | {dpo['peak_memory_mb'] / sft['peak_memory_mb']:.2f} |")
# Per unit, beside a reference on an H200 with the same model shape in bf16 and one micro-batch per step (16 records
# x 256 tokens for SFT, 8 pairs for DPO): 8.0 ms per record and 21.2 ms per pair (shared/reference/measured-facts.md).
# trl's train_runtime includes its in-training evaluations.
per_record = 1000 * sft["train_seconds"] / sft["train_records"]
per_pair = 1000 * dpo["train_seconds"] / dpo["pairs"]
print(f"| SFT step, ms per record (reference 8.0; {sft['per_device_batch_size']} per device x "
      f"{sft['grad_accum']} accumulation) | {per_record:.1f} ({per_record / 8.0:.1f}x) |")
print(f"| DPO step, ms per pair (reference 21.2; {dpo['per_device_batch_size']} per device x "
      f"{dpo['grad_accum']} accumulation) | {per_pair:.1f} ({per_pair / 21.2:.1f}x) |")
if t_fsdp != "-":
    from safetensors.torch import load_file
    lora = load_file(fsdp / "adapter_model.safetensors")
    whole = all(t.numel() and t.abs().sum() > 0 for k, t in lora.items() if "lora_B" in k)
    top1 = json.loads((fsdp / "eval_top1.json").read_text())
    print(f"| FSDP SFT (128 records) + eval, s; adapter saved whole ({len(lora)} tensors, every lora_B trained) | "
          f"{t_fsdp}; {'yes' if whole else 'NO'}; HR@1 {top1['HR']:.4f} |")
PY
grep -E "^(shared prefix|ours \(shared|\| (official|ours))" "$WORK/sampling.txt"
