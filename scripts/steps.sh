# shellcheck shell=bash
# Progress output shared by the scripts of cluster/, scripts/ and bench/: numbered steps
# that say, when one fails, which step and which log to read; and the lines between
# them. Sourced, never executed.
#
#   STEP_TOTAL=5; trap on_step_failure ERR     (with set -E for failures in functions)
#   step "what" [log file]   [1/5] what ...
#                            or, with STEP_OUTER=1 (a script that runs stepped scripts):
#                            a blank line, then == [1/5] what
#   say "text"               the line as it is
#   progress "text"             [12:00:00] text, on stderr (long runs)
#   warn "text" / die "text" on stderr; die exits 1
# STEP_HINTS holds lines that on_step_failure prints last (where the logs are, how to
# clean up).

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
progress() { printf '   [%s] %s\n' "$(date +%T)" "$*" >&2; }

STEP_NO=0
STEP_TOTAL=0
STEP_NAME=""
STEP_LOG=""
STEP_OUTER=0
STEP_HINTS=()
step() { # step "<description>" [log file]
  STEP_NO=$((STEP_NO + 1))
  STEP_NAME="$1"
  STEP_LOG="${2:-}"
  if ((STEP_OUTER)); then
    printf '\n== [%d/%d] %s\n' "$STEP_NO" "$STEP_TOTAL" "$STEP_NAME"
  else
    printf '[%d/%d] %s ...\n' "$STEP_NO" "$STEP_TOTAL" "$STEP_NAME"
  fi
}
on_step_failure() {
  local rc=$?
  trap - ERR
  {
    printf '\nFAILED at step [%d/%d] %s (exit %d)\n' "$STEP_NO" "$STEP_TOTAL" "$STEP_NAME" "$rc"
    if [[ -n "$STEP_LOG" ]]; then
      printf 'Read the log: %s\n' "$STEP_LOG"
      if [[ -f "$STEP_LOG" ]]; then
        printf -- '--- last lines of %s ---\n' "$STEP_LOG"
        tail -n 25 "$STEP_LOG" || true
        printf -- '---\n'
      fi
    fi
    if ((${#STEP_HINTS[@]})); then
      printf '%s\n' "${STEP_HINTS[@]}"
    fi
  } >&2
  exit "$rc"
}
