# shellcheck shell=bash
# Shared by the launch scripts: --help, the Python environment, GPU ids, the launcher, locks, and the loop that carries
# out a run plan. What a run is (its stages in order, their command lines, outputs, seeds, the run layout, every check
# of the variables) is decided by utils/plan.py; `bash shell/<script>.sh ... --dry-run` prints it.
# Sourced as: source "$(dirname "$0")/common.sh"; then run_plan SCRIPT N "$@" (GPU ids first, N arguments after).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=shell/help.sh
source "$ROOT/shell/help.sh"
cd "$ROOT" || exit 1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

die() { echo "error: $*" >&2; exit 2; }
banner() { printf '\n==== %s [%s] ====\n' "$*" "$(date +%H:%M:%S)"; }

# ---- every script reads these too (set in the environment) ----------------------------------------------------
KERNELS=${KERNELS:-portable}      # portable: the same digits on any x86-64 CPU (2 threads, AVX2 kernels); native:
                                  # the machine's cores and fastest kernels; bf16: native plus bf16 autocast (plan.py)
CPU_THREADS=${CPU_THREADS:-}      # threads a machine; empty: 2 with KERNELS=portable, else the machine's cores
CPU_PROCESSES=${CPU_PROCESSES:-1} # no GPU ids: this many gloo processes on the CPU
SHARDING=${SHARDING:-none}        # GPU only: none (DDP), fsdp, zero2 or zero3 (DeepSpeed); see docs/gpu.md
NUM_MACHINES=${NUM_MACHINES:-1}   # several machines: the same script and variables on each, its own MACHINE_RANK,
MACHINE_RANK=${MACHINE_RANK:-0}   # 0 the main one (it writes), and a shared file system for the output root
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}  # ACCELERATE_CONFIG: another accelerate config for GPUs (not ours)
export KERNELS CPU_THREADS CPU_PROCESSES SHARDING NUM_MACHINES MACHINE_RANK
# ---------------------------------------------------------------------------------------------------------------

# Python: an active virtualenv/conda env, else the project's .venv (created by shell/setup.sh).
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" ]]; then
  [[ -x "$ROOT/.venv/bin/python" ]] || die "no Python environment: run 'bash shell/setup.sh' first"
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi

# GPU ids: the leading arguments (all but the last N, and --dry-run), each an integer; the rest stay in REST_ARGS.
# Ids count within an existing CUDA_VISIBLE_DEVICES (a scheduler's allocation of GPUs 4-7 makes ids 0-3 mean GPUs
# 4-7); VISIBLE_GPUS holds the resulting list for CUDA_VISIBLE_DEVICES.
GPU_IDS=() VISIBLE_GPUS="" REST_ARGS=() DRY_RUN=()
parse_gpu_ids() {
  local n_rest=${1:?} arg args=() visible=() mapped=()
  shift
  for arg in "$@"; do if [[ "$arg" == --dry-run ]]; then DRY_RUN=(--dry_run); else args+=("$arg"); fi; done
  (( ${#args[@]} >= n_rest )) || die "$(usage_line)"
  GPU_IDS=("${args[@]:0:${#args[@]}-n_rest}")
  REST_ARGS=("${args[@]:${#args[@]}-n_rest}")
  for arg in "${GPU_IDS[@]}"; do
    [[ "$arg" =~ ^[0-9]+$ ]] || die "GPU id '$arg' is not a non-negative integer"
  done
  (( ${#GPU_IDS[@]} && ! ${#DRY_RUN[@]} )) || return 0   # a dry run prints a GPU plan on any machine
  command -v nvidia-smi >/dev/null || die "GPU ids ${GPU_IDS[*]} given but there is no NVIDIA GPU here (no nvidia-smi); pass no ids to run on the CPU"
  if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
    IFS=, read -ra visible <<< "$CUDA_VISIBLE_DEVICES"
  else
    mapfile -t visible < <(seq 0 $(( $(nvidia-smi -L | grep -c '^GPU ' || true) - 1 )))
  fi
  for arg in "${GPU_IDS[@]}"; do
    (( 10#$arg < ${#visible[@]} )) || die "GPU id $arg does not exist: ${#visible[@]} GPU(s) visible${CUDA_VISIBLE_DEVICES+ (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES)}"
    mapped+=("${visible[10#$arg]}")
  done
  VISIBLE_GPUS=$(IFS=,; echo "${mapped[*]}")
}

# Run a Python entry point: plain python for one CPU process on one machine, else accelerate over the GPU ids (one
# process each: DDP, or FSDP / DeepSpeed with SHARDING) or over CPU_PROCESSES gloo processes on the CPU, on each of
# NUM_MACHINES machines. A config file from shell/accelerate/ is always passed, so a user's default accelerate config
# never changes a run; ACCELERATE_CONFIG names another file for the GPU case.
launch() {
  local per_machine=${#GPU_IDS[@]} configs="$ROOT/shell/accelerate" config port threads=() cores
  cores=${OMP_NUM_THREADS:-$(nproc)}   # the machine's threads (the plan's CPU_THREADS)
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
    per_machine=$CPU_PROCESSES
    if (( per_machine == 1 && NUM_MACHINES == 1 )); then
      CUDA_VISIBLE_DEVICES="" python "$@" 9>&-
      return
    fi
    config=multi_cpu
    # The machine's threads (OMP_NUM_THREADS, from the plan) shared by its processes, passed explicitly (left to
    # accelerate, it would take the machine's cores, and says so in a warning on every launch).
    threads=(--num_cpu_threads_per_process "$(( cores / per_machine + (cores < per_machine) ))")   # at least 1
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

# One run per output directory at a time: hold an flock on a lock file until the script exits (or takes the next
# lock). Only the script holds it (`launch` closes fd 9 for its children), so a killed run's lock goes with it.
take_lock() {
  local lock="$1"
  (( NUM_MACHINES == 1 )) || lock+=".machine$MACHINE_RANK"   # one lock per machine of a multi-machine run
  mkdir -p "$(dirname "$lock")"
  exec 9>"$lock"
  flock -n 9 || die "another run is using $(dirname "$lock") (lock $lock); wait for it or stop it"
}

# run_plan SCRIPT N ARGS...: the GPU ids and the N arguments after them (parse_gpu_ids), then utils/plan.py makes the
# script's plan from them and the exported variables (and records it in the run), and run_steps carries it out.
run_plan() {
  local script=$1 plan
  parse_gpu_ids "${@:2}"
  plan=$(mktemp)
  python -m utils.plan "$script" "${REST_ARGS[@]}" --gpus "${GPU_IDS[*]}" --out "$plan" "${DRY_RUN[@]}" \
    || { rm -f "$plan"; exit 2; }
  exec 8<"$plan" && rm -f "$plan"   # read from fd 8, gone from the disk
  run_steps
}

# run_steps: each step read in order from fd 8: its kind, title, argument count and arguments, each ended by a NUL
# byte (utils.plan.machine_form: an argument may hold spaces, quotes or newlines).
run_steps() {
  local kind title n i arg argv
  while IFS= read -r -d '' -u 8 kind; do
    IFS= read -r -d '' -u 8 title && IFS= read -r -d '' -u 8 n
    argv=()
    for ((i = 0; i < n; i++)); do IFS= read -r -d '' -u 8 arg; argv+=("$arg"); done
    [[ -z "$title" || "$kind" == say ]] || banner "$title"
    case "$kind" in
      export) export "${argv[0]}=${argv[1]}" ;;
      unset) unset "${argv[0]}" ;;
      lock) take_lock "${argv[0]}" ;;
      launch) launch "${argv[@]}" 8<&- ;;
      main) if (( MACHINE_RANK == 0 )); then python "${argv[@]}" 8<&- 9>&-; fi ;;
      recbole) if (( MACHINE_RANK == 0 )); then .venv-recbole/bin/python "${argv[@]}" 8<&- 9>&-; fi ;;
      run) "${argv[@]}" 8<&- 9>&- ;;
      say) printf '%s\n' "$title" ;;
      *) die "unknown plan step '$kind'" ;;
    esac
  done
}
