#!/usr/bin/env bash
# usage: bash bench/gpu_check.sh            (on a lent GPU machine, from the repository root)
#        SHAPE=small N_PROMPTS=64 bash bench/gpu_check.sh    (a dry run of the same steps on a CPU)
# Prepare here: bash bench/fetch_gpu_wheels.sh; then run with carry [".whl", "data/ML100K", "models/tiny/ML100K"].
# One prepared check: installs what the GPU image lacks from carried wheels (.whl/: trl, datasets, fire, and the
# transformers/peft/accelerate versions of requirements.txt), times sampling against the official settings on a random Llama-3.2-1B-shaped model, then
# one whole SPRec iteration at the official sizes (self-play on 2,048 + 256 prompts, the SFT step, the DPO step
# with LoRA in bf16, both evaluations; grounding with a random stand-in embedder, see fetch_gpu_wheels.sh), and
# prints a short table last. Writes under ${WORK:-/tmp/gpu_check}.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- edit here (or set in the environment) ----
SHAPE=${SHAPE:-llama-1b}
N_PROMPTS=${N_PROMPTS:-2804}           # the official iteration's 2,048 + 256 + 500 spare prompts
TRAIN_SAMPLE_SIZE=${TRAIN_SAMPLE_SIZE:-2048}
VALID_SAMPLE_SIZE=${VALID_SAMPLE_SIZE:-256}
WORK=${WORK:-/tmp/gpu_check}
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
python bench/sampling.py --shape "$SHAPE" --n_prompts "$N_PROMPTS" | tee "$WORK/sampling.txt"

python bench/random_model.py --shape "$SHAPE" --out "$WORK/base" >> "$WORK/log.txt"
python bench/random_model.py --shape embedder --out "$WORK/embedder" >> "$WORK/log.txt"
export BASE_MODEL="$WORK/base" OUTPUT_ROOT="$WORK/models" CATEGORIES=ML100K SEED=42 EMBEDDING_MODEL="$WORK/embedder"
export TRAIN_SAMPLE_SIZE VALID_SAMPLE_SIZE
# A short LoRA SFT so that SPRec.sh has its starting adapter (the warm-up is not what is timed).
t_sft=$(SFT_SAMPLE_SIZE=256 SFT_EPOCHS=1 TEST_SAMPLE_SIZE=64 secs bash shell/SFT.sh "${gpu_ids[@]}")
t_iter=$(secs bash shell/SPRec.sh "${gpu_ids[@]}" 1)
it="$OUTPUT_ROOT/SPRec/ML100K/it0"
python - "$it" "$t_sft" "$t_iter" <<'PY'
import json, sys
from pathlib import Path
it, t_sft, t_iter = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sft = json.loads((it / "SFT/run_config_sft.json").read_text())["args"]
dpo = json.loads((it / "DPO/run_config_dpo.json").read_text())["args"]
pairs = json.loads((it / "data/summary.json").read_text())
print("\n| check | value |\n|---|---:|")
print(f"| SFT warm-up (256 records, 1 epoch + eval of 64), s | {t_sft} |")
print(f"| one SPRec iteration at official sizes (sampling, SFT step, DPO step, 2 evals), s | {t_iter} |")
print(f"| self-play sampling of {pairs['drawn']} prompts, s | {pairs['seconds']} |")
print(f"| SFT step: {sft['steps']} steps, peak MB | {sft['peak_memory_mb']} |")
print(f"| DPO step: {dpo['steps']} steps, peak MB | {dpo['peak_memory_mb']} |")
print(f"| DPO / SFT peak memory | {dpo['peak_memory_mb'] / sft['peak_memory_mb']:.2f} |")
PY
grep -E "^(speed-up|\| (official|ours))" "$WORK/sampling.txt"
