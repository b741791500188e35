#!/usr/bin/env bash
# HARDHEAP_ERROR_FILE: error lines reach the file whatever happens to stderr.
#
#   errfile.sh SECURE_LIB DEFAULT_LIB PROG
#
# PROG (prog.c) is run with a library in LD_PRELOAD and the file named with
# %p in a scratch directory; each case checks the file's name (the PID put
# in), its exact lines, stderr and the exit status.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: errfile.sh SECURE_LIB DEFAULT_LIB PROG" >&2; exit 2; }
secure=$(readlink -f "$1") default=$(readlink -f "$2") prog=$(readlink -f "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0 cases=0
A='0x[0-9a-f]+'
double_free="hardheap: error: double free of $A \(size class [0-9]+\)"
detected='hardheap:   detected by thread [0-9]+ in:'
frame=" +#[0-9]+ $A .*"
foreign="hardheap: error: invalid free of $A: not a pointer allocated by hardheap"
export HARDHEAP_ERROR_FILE="$work/err.%p.log"

# run NAME STDERR LIB STATUS [VAR=VALUE...] -- ARGS...
#   runs PROG ARGS under LIB with the variables set, stdout to out and
#   stderr to the file err (STDERR "err"), to /dev/null ("null") or closed
#   ("closed"); the exit status must be STATUS. Sets pid (from "pid N") and
#   file (err.<pid>.log), and problem for the checks that follow.
run() {
  case=$1 mode=$2 lib=$3 want=$4
  shift 4
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  cases=$((cases + 1))
  rm -f err.*.log out err
  : >err
  {  # (bash's own "Aborted" notice to /dev/null)
    case $mode in
      err) env "${vars[@]}" LD_PRELOAD="$lib" "$prog" "$@" >out 2>err </dev/null ;;
      null) env "${vars[@]}" LD_PRELOAD="$lib" "$prog" "$@" >out 2>/dev/null </dev/null ;;
      closed) env "${vars[@]}" LD_PRELOAD="$lib" "$prog" "$@" >out 2>&- </dev/null ;;
    esac
    status=$?
  } 2>/dev/null
  pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' out)
  file=err.$pid.log
  problem=''
  [ "$status" = "$want" ] || problem+="exit status $status, expected $want; "
  [ -n "$pid" ] || problem+="no pid printed; "
}

# has REGEX [COUNT]: a whole line of the file matches REGEX (exactly COUNT times)
has() {
  local n
  n=$(grep -Ec -- "^$1\$" "$file" 2>/dev/null)
  [ "${n:-0}" -ge 1 ] || { problem+="no line of $file matches /$1/; "; return; }
  [ $# -lt 2 ] || [ "$n" = "$2" ] || problem+="$n lines of $file match /$1/, expected $2; "
}

done_case() {
  if [ -z "$problem" ]; then echo "ok   $case"; return; fi
  failures=$((failures + 1))
  echo "FAIL $case: ${problem%; }"
  for f in out err "$file"; do [ -f "$f" ] && sed "s|^|  $f: |" "$f"; done
}

# (a) secure library, stderr to /dev/null: the report and its frames are in the file
run "secure double free, stderr to /dev/null" null "$secure" 134 -- double_free
[ -f "$file" ] || problem+="no file $file (ls: $(ls | tr '\n' ' ')); "
has "$double_free" 1
has "$detected" 1
has "$frame"
[ "$(ls err.*.log 2>/dev/null | wc -l)" = 1 ] || problem+="not exactly one err.*.log; "
done_case

# (b) fd 2 closed: the line is in the file once, and the file did not take
# fd 2 (the program still sees it closed)
run "secure double free, fd 2 closed" closed "$secure" 134 -- fd2_closed
grep -qx 'fd 2 closed' out || problem+="fd 2 is open in the program; "
has "$double_free" 1
has "$detected" 1
done_case

# stderr appending to the error file itself: each line once
run "stderr is the error file: no line twice" err "$secure" 134 HARDHEAP_ERROR_FILE="$work/err" -- double_free
file=err
has "$double_free" 1
has "$detected" 1
done_case

# (c) a file that cannot be opened: one warning on stderr, the program runs
run "unwritable path: one warning, the program runs" err "$secure" 0 \
  HARDHEAP_ERROR_FILE=/nonexistent/dir/err.%p.log -- ok
grep -qx ok out || problem+="the program did not run; "
[ "$(wc -l <err)" = 1 ] || problem+="stderr is not one line; "
grep -Eqx "hardheap: warning: cannot open the error file /nonexistent/dir/err\.$pid\.log \(errno 2(, ENOENT)?\): errors go to stderr only" err ||
  problem+="stderr is not the warning; "
done_case

# (d) the default library reports a foreign free and goes on: in the file too
run "default library: foreign free reported in the file" null "$default" 0 -- foreign_free
grep -qx survived out || problem+="the program did not go on; "
has "$foreign" 1
done_case

# the warnings about options (printed at start) reach the file;
# informational lines (VERBOSE) do not
run "option warnings in the file, verbose lines not" err "$default" 0 \
  HARDHEAP_VERBOSE=1 HARDHEAP_BOGUS=1 HARDHEAP_SEGMENT_CACHE=abc -- ok
has 'hardheap: warning: unknown option HARDHEAP_BOGUS ignored' 1
has 'hardheap: warning: ignoring HARDHEAP_SEGMENT_CACHE="abc": expected an integer in \[0, 1024\]; using 4' 1
grep -q '^hardheap: process initialised' err || problem+="no verbose line on stderr; "
[ "$(grep -c . "$file" 2>/dev/null)" = 2 ] || problem+="the file is not exactly the two warnings; "
done_case

# the alias, and %% for %
run "MIMALLOC_ERROR_FILE, %% for %" null "$default" 0 -u HARDHEAP_ERROR_FILE \
  MIMALLOC_ERROR_FILE="$work/err.%%.%p.log" -- foreign_free
file="err.%.$pid.log"
has "$foreign" 1
done_case

# a program that closes the file's descriptor and opens a file of its own
# on that number: not one line there, the error file is opened again
run "descriptor taken over: the file opened again, the other left alone" null "$secure" 134 -- \
  reopen "$work/err." "$work/decoy"
grep -q '^error file on fd ' out || problem+="the program did not find the error file's descriptor; "
has "$double_free" 1
[ -f decoy ] && [ ! -s decoy ] || problem+="the program's own file got lines; "
done_case

echo "$cases cases, $failures failed"
[ "$failures" = 0 ]
