# shellcheck shell=bash
# Shared by the launch scripts: repo root, Python environment, GPU ids, the launcher, locks, banners.
# Sourced as: source "$(dirname "$0")/common.sh"; then `parse_gpu_ids "$@"` (GPU ids first, other args after).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

die() { echo "error: $*" >&2; exit 2; }

# Digits that travel (utils/numerics.py). KERNELS=portable (the default): CPU_THREADS threads a machine (2, whatever
# its core count), ATen's and oneDNN's AVX2 kernels (every x86-64 CPU since about 2015 has them) and MKL's COMPATIBLE
# branch (MKL's AVX2 branch differs between Intel and AMD): the same eval files on any such machine, at a measured
# speed cost (docs/reproducibility.md). KERNELS=native: the machine's own cores and fastest kernels; faster,
# and the digits are the machine's. KERNELS=bf16: native, plus bf16 autocast and bf16 frozen weights (trained weights
# stay fp32) on a CPU with bf16 instructions (AVX512-BF16, AMX; utils/device.py refuses others): faster again for a
# pretrained base, and the digits are the machine's.
# Every stage records both and will not resume a run made with other threads or kernels.
KERNELS=${KERNELS:-portable}
case "$KERNELS" in
  portable) export ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=AVX2; CPU_THREADS=${CPU_THREADS:-2} ;;
  native|bf16) unset ATEN_CPU_CAPABILITY MKL_CBWR ONEDNN_MAX_CPU_ISA; CPU_THREADS=${CPU_THREADS:-$(nproc)} ;;
  *) die "KERNELS must be portable, native or bf16, got '$KERNELS'" ;;
esac
[[ "$CPU_THREADS" =~ ^[1-9][0-9]*$ ]] || die "CPU_THREADS must be a positive integer, got '$CPU_THREADS'"
export KERNELS OMP_NUM_THREADS=$CPU_THREADS
# Settings that moved into the recipes (utils/recipe.py) are no longer read from the environment: a user's old command
# (SFT_SAMPLE_SIZE=64 bash shell/SFT.sh) would train the full size without a word, so it stops and names the new form.
refuse_retired_variables() {
  local name field form
  local -A moved=([SFT_SAMPLE_SIZE]=sft.sample_size [SFT_VALID_SAMPLE_SIZE]=sft.valid_sample_size
    [SFT_EPOCHS]=sft.num_train_epochs [SFT_LR]=sft.learning_rate [SFT_WARMUP_STEPS]=sft.warmup_steps
    [SFT_BATCH_SIZE]=sft.global_batch_size [SFT_DEVICE_BATCH_SIZE]=sft.per_device_train_batch_size
    [LORA_TARGETS]=lora.target_modules [TRAIN_SAMPLE_SIZE]=self_play.train_sample_size
    [VALID_SAMPLE_SIZE]=self_play.valid_sample_size [LR]="dpo.learning_rate sft_step.learning_rate"
    [BETA]=dpo.beta [LOSS_TYPE]=dpo.loss_type [BATCH_SIZE]=dpo.global_batch_size
    [DEVICE_BATCH_SIZE]=dpo.per_device_train_batch_size [WARMUP_STEPS]="dpo.warmup_steps sft_step.warmup_steps"
    [PRECOMPUTE_REF]="dpo.precompute_ref_log_probs=true" [SFT_TRAINER_ARGS]="sft.<field>" [LORA_ARGS]="lora.<field>"
    [DPO_TRAINER_ARGS]="dpo.<field>")
  [[ -z "${MODEL_KIND+set}" ]] || die "MODEL_KIND is no longer read: the recipe follows the model; name one with RECIPE=recipes/<name>.yaml"
  for name in "${!moved[@]}"; do
    [[ -n "${!name+set}" ]] || continue
    form=""
    for field in ${moved[$name]}; do
      if [[ "$field" == *"<field>" ]]; then form+=" $field=value"
      elif [[ "$field" == *=* ]]; then form+=" $field"
      else form+=" $field=${!name}"; fi
    done
    die "$name is no longer read (the recipes hold it, utils/recipe.py): unset it and set RECIPE_ARGS=\"${form# }\" instead"
  done
}
refuse_retired_variables

banner() { printf '\n==== %s [%s] ====\n' "$*" "$(date +%H:%M:%S)"; }

# Python: an active virtualenv/conda env, else the project's .venv (created by shell/setup.sh).
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" ]]; then
  [[ -x "$ROOT/.venv/bin/python" ]] || die "no Python environment: run 'bash shell/setup.sh' first"
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi

# GPU ids: the leading arguments that are integers. The rest stay in REST_ARGS. Ids count within an existing
# CUDA_VISIBLE_DEVICES (a scheduler's allocation of GPUs 4-7 makes ids 0-3 mean GPUs 4-7); VISIBLE_GPUS holds the
# resulting list for CUDA_VISIBLE_DEVICES.
GPU_IDS=()
VISIBLE_GPUS=""
# shellcheck disable=SC2034  # REST_ARGS is read by the scripts that source this file
REST_ARGS=()
parse_gpu_ids() {
  local n_rest=${1:?}; shift   # how many trailing arguments are not GPU ids
  local args=("$@")
  (( ${#args[@]} >= n_rest )) || return 1
  GPU_IDS=("${args[@]:0:${#args[@]}-n_rest}")
  # shellcheck disable=SC2034
  REST_ARGS=("${args[@]:${#args[@]}-n_rest}")
  local id visible=() mapped=()
  for id in "${GPU_IDS[@]}"; do
    [[ "$id" =~ ^[0-9]+$ ]] || die "GPU id '$id' is not a non-negative integer"
  done
  (( ${#GPU_IDS[@]} )) || return 0
  command -v nvidia-smi >/dev/null || die "GPU ids ${GPU_IDS[*]} given but there is no NVIDIA GPU here (no nvidia-smi); pass no ids to run on the CPU"
  if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
    IFS=, read -ra visible <<< "$CUDA_VISIBLE_DEVICES"
  else
    mapfile -t visible < <(seq 0 $(( $(nvidia-smi -L | grep -c '^GPU ' || true) - 1 )))
  fi
  for id in "${GPU_IDS[@]}"; do
    (( 10#$id < ${#visible[@]} )) || die "GPU id $id does not exist: ${#visible[@]} GPU(s) visible${CUDA_VISIBLE_DEVICES+ (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES)}"
    mapped+=("${visible[10#$id]}")
  done
  VISIBLE_GPUS=$(IFS=,; echo "${mapped[*]}")
}

# Run a Python entry point: plain python for one CPU process on one machine, else accelerate over the GPU ids (one
# process each: DDP, or FSDP / DeepSpeed with SHARDING) or over CPU_PROCESSES gloo processes on the CPU, on each of
# NUM_MACHINES machines. A config file from shell/accelerate/ is always passed, so a user's default accelerate config
# never changes a run; ACCELERATE_CONFIG names another file for the GPU case.
#   Several machines: every machine runs the same script with the same variables but its own MACHINE_RANK (0 is the
#   main one, which writes), MAIN_PROCESS_IP the address of machine 0, and a shared file system for OUTPUT_ROOT.
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
SHARDING=${SHARDING:-none}   # GPU only: none (DDP), fsdp, zero2 or zero3 (DeepSpeed); see docs/gpu.md
launch() {
  local per_machine=${#GPU_IDS[@]} configs="$ROOT/shell/accelerate" config port threads=()
  if ! [[ "$NUM_MACHINES" =~ ^[1-9][0-9]*$ && "$MACHINE_RANK" =~ ^[0-9]+$ ]] || (( MACHINE_RANK >= NUM_MACHINES )); then
    die "NUM_MACHINES=$NUM_MACHINES, MACHINE_RANK=$MACHINE_RANK: need 0 <= MACHINE_RANK < NUM_MACHINES"
  fi
  case "$SHARDING" in
    none) config=multi_gpu ;;
    fsdp | zero2 | zero3) config=$SHARDING
      (( per_machine )) || die "SHARDING=$SHARDING needs GPUs (accelerate shards only on accelerators); on the CPU use SHARDING=none"
      [[ "$SHARDING" == fsdp ]] || python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("deepspeed") is None)' \
        || die "SHARDING=$SHARDING needs DeepSpeed: pip install deepspeed (or use SHARDING=fsdp)" ;;
    *) die "SHARDING must be none, fsdp, zero2 or zero3, got '$SHARDING'" ;;
  esac
  if (( per_machine == 0 )); then
    per_machine=${CPU_PROCESSES:-1}
    if (( per_machine == 1 && NUM_MACHINES == 1 )); then
      CUDA_VISIBLE_DEVICES="" python "$@" 9>&-
      return
    fi
    config=multi_cpu
    # CPU_THREADS shared by the machine's processes, passed explicitly (left to accelerate, it would take the
    # machine's cores, and says so in a warning on every launch with one process per machine).
    threads=(--num_cpu_threads_per_process "$(( CPU_THREADS / per_machine > 1 ? CPU_THREADS / per_machine : 1 ))")
  elif (( per_machine == 1 && NUM_MACHINES == 1 )) && [[ "$SHARDING" == none ]]; then
    config=single_gpu
  fi
  config="$configs/$config.yaml"
  [[ -n "$VISIBLE_GPUS" && -n "${ACCELERATE_CONFIG:-}" ]] && config=$ACCELERATE_CONFIG
  port=$MAIN_PROCESS_PORT
  (( NUM_MACHINES > 1 )) || port=$(free_port)   # one machine: any free port, so that two runs can share a machine
  local status=0 errors
  errors=$(mktemp)
  # stderr through utils/launcher_stderr.py (a user error once, no launcher traceback), stdout as it is (fd 3); the
  # status is accelerate's (inside `if`, a failure does not stop a `set -e` script before it is read)
  if { CUDA_VISIBLE_DEVICES="$VISIBLE_GPUS" accelerate launch --config_file "$config" \
      --num_processes $(( per_machine * NUM_MACHINES )) --num_machines "$NUM_MACHINES" --machine_rank "$MACHINE_RANK" \
      --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$port" "${threads[@]}" "$@" 9>&- 2>&1 1>&3 3>&- \
      | python -m utils.launcher_stderr "$errors" 9>&- >&2; status=${PIPESTATUS[0]}; } 3>&1; then :; fi
  if (( status )) && [[ -s "$errors" ]]; then rm -f "$errors"; exit 2; fi   # a one-line error, printed once
  rm -f "$errors"
  return "$status"
}

free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# One run per output directory at a time: hold an flock on a lock file until the script exits. Only the script
# holds it (`launch` closes fd 9 for its children), so a killed run's lock goes with the script.
take_lock() {
  local lock="$1"
  (( NUM_MACHINES == 1 )) || lock+=".machine$MACHINE_RANK"   # one lock per machine of a multi-machine run
  mkdir -p "$(dirname "$lock")"
  exec 9>"$lock"
  flock -n 9 || die "another run is using $(dirname "$lock") (lock $lock); wait for it or stop it"
}

stage_done() { [[ -f "$1/DONE" ]]; }

# copy_trained_model SRC DEST: a finished model directory without its evaluations (a run evaluates its own test users),
# moved into place in one rename; a DEST already made from SRC (the same training run config) is kept, another stops.
copy_trained_model() {
  local src="$1" dest="$2" f
  stage_done "$src" || die "$src is not a finished model directory (no DONE marker)"
  if stage_done "$dest"; then
    cmp -s "$src/run_config_sft.json" "$dest/run_config_sft.json" \
      || die "$dest holds another model than $src (their run_config_sft.json differ): give another output root"
    return 0
  fi
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  for f in "$src"/*; do
    case "$(basename "$f")" in eval_*|test_result*|run_config_inference*) continue ;; esac
    [[ -f "$f" ]] && cp "$f" "$dest.partial/"
  done
  mv "$dest.partial" "$dest"
  echo "copied the finished model $src to $dest (without its evaluations)"
}

# Evaluate a finished model directory on the GPUs already resolved (GPU_IDS, VISIBLE_GPUS): greedy predictions (or
# DECODING=constrained beams), then eval_top{1,5}.json; DECODING may name several protocols ("greedy constrained"),
# each evaluated in turn. A rerun reuses what was made with the same settings (eval/inference.py). shell/eval.sh is
# this function from the command line.
evaluate() {
  local model_dir="$1" category="$2" sample_args=() decoding
  check_category "$category"
  check_tracker "${REPORT_TO:-none}"
  stage_done "$model_dir" || die "$model_dir is not a finished model directory (no DONE marker)"
  [[ -n "${TEST_SAMPLE_SIZE:-}" ]] && sample_args=(--test_sample_size "$TEST_SAMPLE_SIZE")
  for decoding in ${DECODING:-greedy}; do
    banner "evaluating $model_dir ($decoding decoding)"
    launch -m eval.inference --model_dir "$model_dir" --category "$category" --seed "${SEED:-42}" "${sample_args[@]}" \
      --evaluate --topk "${TOPK:-1,5}" --embedding_model "${EMBEDDING_MODEL:-}" --decoding "$decoding" \
      --report_to "${REPORT_TO:-none}"
  done
}

# REPORT_TO=wandb or tensorboard needs its package: one line before any work (utils/tracking.py).
check_tracker() { [[ "$1" == none ]] || python -m utils.tracking --report_to "$1" || exit 2; }

# Switches are 0 or 1: check_switches NAME... stops on anything else; py_bool VALUE prints it as a Python boolean.
check_switches() {
  local name
  for name in "$@"; do [[ "${!name}" == 0 || "${!name}" == 1 ]] || die "$name must be 0 or 1, got '${!name}'"; done
}
py_bool() { if [[ "$1" == 1 ]]; then echo True; else echo False; fi; }

# The embedded defaults, built on first use: the category's small model when BASE_MODEL is empty, and a pretrained
# model given by its short name (BASE_MODEL=smollm2; see utils/pretrained.py). Paths and hub ids are used as given.
ensure_base_model() {
  local category="$1"
  # Machine 0 alone builds (the file system is shared); the others' processes cannot start before it is done, since
  # accelerate's rendezvous waits for machine 0's launch, which comes after the build.
  (( MACHINE_RANK == 0 )) || return 0
  if [[ -z "${BASE_MODEL:-}" ]]; then
    # The small model's tokenizer is fitted to the texts of the recipe's contract; built once per contract.
    python -m utils.tiny_model --category "$category" --recipe "${RECIPE:-}" --recipe_args "${RECIPE_ARGS:-}"
  elif [[ "$BASE_MODEL" =~ ^[a-z0-9]+$ && ! -e "$BASE_MODEL" ]]; then
    python -m utils.pretrained --name "$BASE_MODEL"
  fi
}

check_category() {
  local category="$1"
  [[ "$category" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ && "$category" != *..* ]] \
    || die "bad category name '$category': use letters, digits, '_', '-', '.' (no '/', no '..')"
  [[ -d "data/$category" ]] || die "unknown category '$category': no directory data/$category (for ML100K: python -m data.prepare ml-100k)"
}
