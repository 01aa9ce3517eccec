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
export KERNELS CPU_THREADS CPU_PROCESSES SHARDING NUM_MACHINES MACHINE_RANK MAIN_PROCESS_IP MAIN_PROCESS_PORT
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

# Run a Python entry point as the plan's launcher step says (LAUNCHER, utils/plan.py's launcher): plain python for
# one CPU process on one machine, else accelerate launch with those arguments, on the GPU ids' devices, and on a
# free port where the plan leaves it FREE.
LAUNCHER=()
launch() {
  if (( ! ${#LAUNCHER[@]} )); then CUDA_VISIBLE_DEVICES="" python "$@" 9>&-; return; fi
  local args=("${LAUNCHER[@]}") status=0 errors
  [[ "${args[-1]}" != FREE ]] \
    || args[-1]=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  errors=$(mktemp)
  # stderr through utils/launcher_stderr.py (a user error once, no launcher traceback), stdout as it is (fd 3); the
  # status is accelerate's (inside `if`, a failure does not stop a `set -e` script before it is read)
  if { CUDA_VISIBLE_DEVICES="$VISIBLE_GPUS" accelerate launch "${args[@]}" "$@" 9>&- 2>&1 1>&3 3>&- \
      | python -m utils.launcher_stderr "$errors" 9>&- >&2; status=${PIPESTATUS[0]}; } 3>&1; then :; fi
  if (( status )) && [[ -s "$errors" ]]; then rm -f "$errors"; exit 2; fi   # a one-line error, printed once
  rm -f "$errors"
  return "$status"
}

# One run per output directory at a time: hold an flock on a lock file until the script exits (or takes the next
# lock). Only the script holds it (`launch` closes fd 9 for its children), so a killed run's lock goes with it.
take_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -n 9 || die "another run is using $(dirname "$1") (lock $1); wait for it or stop it"
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
    [[ -z "$title" || "$kind" == say ]] || printf '\n==== %s [%s] ====\n' "$title" "$(date +%H:%M:%S)"
    case "$kind" in
      export) export "${argv[0]}=${argv[1]}" ;;
      unset) unset "${argv[0]}" ;;
      lock) take_lock "${argv[0]}" ;;
      launcher) LAUNCHER=("${argv[@]}") ;;
      launch) launch "${argv[@]}" 8<&- ;;
      main) python "${argv[@]}" 8<&- 9>&- ;;
      recbole) .venv-recbole/bin/python "${argv[@]}" 8<&- 9>&- ;;
      run) "${argv[@]}" 8<&- 9>&- ;;
      say) printf '%s\n' "$title" ;;
      *) die "unknown plan step '$kind'" ;;
    esac
  done
}
