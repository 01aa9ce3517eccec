# shellcheck shell=bash
# --help for every script (sourced first, before anything can fail): the script's header, its usage and what it does,
# then its variable block, the part between "---- edit here" and the closing rule; with common.sh's shared variables.
usage_line() { grep -m1 '^# usage:' "$0" | sed 's/^# //'; }
show_help() {
  sed -n '2,/^set -euo pipefail/s/^# \{0,1\}//p' "$0" | grep -v '^shellcheck'
  local block
  block=$(sed -n '/^# ---- edit here/,/^# -\{20,\}$/p' "$0")
  [[ -z "$block" ]] || printf '\nvariables (set them in the environment, or edit them at the top of %s):\n%s\n' "$0" "$block"
  [[ "$0" == */setup*.sh || "$0" == */lock*.sh ]] && return   # they make environments: no launch variables
  printf '\nand, for every launch script (shell/common.sh):\n'
  sed -n '/^# ---- every script reads these too/,/^# -\{20,\}$/p' "$(dirname "${BASH_SOURCE[0]}")/common.sh"
}
for arg in "$@"; do
  if [[ "$arg" == --help || "$arg" == -h ]]; then show_help; exit 0; fi
done
