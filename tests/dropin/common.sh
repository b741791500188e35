# shellcheck shell=bash
# Shared by the drop-in scripts (sourced after NAME is set): argument
# handling, messages, the preload check, and running a command under glibc
# or the library with its exit status and stderr checked. Functions read
# NAME, LIB and WORK when called.

# dropin_lib ARGS...: the library path from the script's arguments, as LIB.
dropin_lib() {
  [[ $# -eq 1 ]] || { echo "usage: $0 /path/to/libhardheap.so" >&2; exit 2; }
  LIB=$(readlink -f -- "$1" 2>/dev/null || true)
  [[ -n $LIB && -f $LIB ]] || { echo "FAIL($NAME): library '$1' not found" >&2; exit 1; }
}

# dropin_need PROGRAM...: skip (exit 77) unless every PROGRAM is installed.
dropin_need() {
  local prog
  for prog in "$@"; do
    command -v "$prog" >/dev/null 2>&1 || { echo "SKIP($NAME): $prog is not installed (see tests/dropin/packages.txt)"; exit 77; }
  done
}

fail() { echo "FAIL($NAME): $*" >&2; exit 1; }
note() { echo "[$NAME] $*"; }

# ld.so only warns (and runs without it) when a preload cannot be loaded:
# make sure the library really is mapped into a preloaded process.
check_preload() {
  local maps
  maps=$(LD_PRELOAD=$LIB cat /proc/self/maps 2>"$WORK/preload.err") || fail "cat /proc/self/maps under LD_PRELOAD=$LIB failed: $(cat "$WORK/preload.err")"
  grep -qF -- "$LIB" <<<"$maps" || fail "LD_PRELOAD=$LIB did not take effect: $(cat "$WORK/preload.err")"
  [[ ! -s $WORK/preload.err ]] || fail "stderr under LD_PRELOAD=$LIB: $(cat "$WORK/preload.err")"
}

# run MODE OUT ERR CMD...: run CMD (stdin from $RUN_STDIN, default /dev/null)
# without preload (MODE glibc) or with LD_PRELOAD=LIB (MODE hh), print its
# time; fail on a non-zero exit status, a signal, or an allocator message on
# stderr.
RUN_STDIN=/dev/null
run() {
  local mode=$1 out=$2 err=$3 rc=0 start end
  shift 3
  start=$(date +%s.%N)
  if [[ $mode == hh ]]; then
    LD_PRELOAD=$LIB "$@" <"$RUN_STDIN" >"$out" 2>"$err" || rc=$?
  else
    env -u LD_PRELOAD "$@" <"$RUN_STDIN" >"$out" 2>"$err" || rc=$?
  fi
  end=$(date +%s.%N)
  note "$(printf '%-5s %6.2fs  %s' "$mode" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$*")"
  check_status "$mode" "$rc" "$err" "$*"
}

# check_status MODE RC ERR WHAT: fail on an allocator message in ERR or a
# non-zero status RC of the command WHAT.
check_status() {
  local mode=$1 rc=$2 err=$3 what=$4 who
  [[ $mode == hh ]] && who="under LD_PRELOAD=$LIB" || who="under glibc malloc (baseline)"
  if grep -qE 'hardheap: |ERROR: ld\.so' "$err"; then
    echo "FAIL($NAME): allocator message on stderr of '$what' $who:" >&2
    grep -nE 'hardheap: |ERROR: ld\.so' "$err" | head -20 >&2
    exit 1
  fi
  if ((rc != 0)); then
    if ((rc > 128)); then
      echo "FAIL($NAME): '$what' $who was killed by signal $((rc - 128)) (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo '?'))" >&2
    else
      echo "FAIL($NAME): '$what' $who exited with status $rc" >&2
    fi
    echo "--- last lines of its stderr ($err):" >&2
    tail -n 30 "$err" >&2
    exit 1
  fi
}
