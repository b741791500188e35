#!/usr/bin/env bash
# HARDHEAP_VERBOSE=1 lists, once at start, the build and every option with
# its value and where the value came from; without it nothing is printed.
#
#   verbose.sh SECURE_LIB DEFAULT_LIB PROG README
#
# PROG (prog.c) runs with a library in LD_PRELOAD. Every option of README's
# table must be listed exactly once.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: verbose.sh SECURE_LIB DEFAULT_LIB PROG README" >&2; exit 2; }
secure=$(readlink -f "$1") default=$(readlink -f "$2") prog=$(readlink -f "$3") readme=$(readlink -f "$4")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0 cases=0
version='[0-9]+\.[0-9]+\.[0-9]+'
# the option names of README's table
names=$(awk -F'|' '/^## Options$/ { on = 1; next } /^## / { on = 0 }
  on && /^\| *`HARDHEAP_/ { gsub(/[ `]/, "", $2); sub(/^HARDHEAP_/, "", $2); print $2 }' "$readme")
[ -n "$names" ] || { echo "FAIL: no options found in $readme"; exit 1; }

# run NAME LIB [VAR=VALUE...]: PROG ok with the variables (and nothing else
# of ours) set; stderr to err, for the checks that follow
run() {
  case=$1 lib=$2
  shift 2
  cases=$((cases + 1))
  problem=''
  env $(env | sed -n 's/^\(HARDHEAP_[A-Z_]*\|MIMALLOC_[A-Z_]*\)=.*/-u \1/p') "$@" LD_PRELOAD="$lib" "$prog" ok >out 2>err </dev/null
  status=$?
  [ "$status" = 0 ] || problem+="exit status $status; "
  grep -qx ok out || problem+="the program did not run; "
}

# line REGEX: exactly one whole line of stderr matches
line() {
  local n
  n=$(grep -Ec -- "^$1\$" err)
  [ "$n" = 1 ] || problem+="$n lines match /$1/, expected 1; "
}

# every option of README once, and nothing else listed
all_listed() {
  local name
  for name in $names; do
    [ "$(grep -Ec "^hardheap: option $name[= ]" err)" = 1 ] || problem+="$name not listed once; "
  done
  [ "$(grep -c '^hardheap: option ' err)" = "$(echo "$names" | wc -w)" ] ||
    problem+="$(grep -c '^hardheap: option ' err) options listed, README has $(echo "$names" | wc -w); "
}

done_case() {
  if [ -z "$problem" ]; then echo "ok   $case"; return; fi
  failures=$((failures + 1))
  echo "FAIL $case: ${problem%; }"
  sed 's/^/  stderr: /' err
}

run "default library: values and sources" "$default" HARDHEAP_VERBOSE=1 HARDHEAP_PURGE_DELAY=50 MIMALLOC_SEGMENT_CACHE=2
line "hardheap: process initialised \(default build, secure level 0, version $version\)"
line 'hardheap: option PURGE_DELAY=50 \(HARDHEAP_PURGE_DELAY\)'
line 'hardheap: option SEGMENT_CACHE=2 \(MIMALLOC_SEGMENT_CACHE\)'
line 'hardheap: option VERBOSE=1 \(HARDHEAP_VERBOSE\)'
line 'hardheap: option SHOW_STATS=0 \(default\)'
line 'hardheap: option ABORT_ON_MISUSE=0 \(default\)'
line 'hardheap: option ERROR_FILE unset \(default\)'
all_listed
done_case

run "a refused value is the default; HARDHEAP_ wins over MIMALLOC_" "$default" HARDHEAP_VERBOSE=on \
  HARDHEAP_MAX_ERRORS=lots MIMALLOC_MAX_ERRORS=3 HARDHEAP_GUARDED_MIN=5 MIMALLOC_GUARDED_MIN=7 MIMALLOC_PURGE_DELAY=-1
line 'hardheap: warning: ignoring HARDHEAP_MAX_ERRORS="lots": expected an integer in \[-1, 1000000\]; using 16'
line 'hardheap: option MAX_ERRORS=16 \(default\)'
line 'hardheap: option GUARDED_MIN=5 \(HARDHEAP_GUARDED_MIN\)'
line 'hardheap: option PURGE_DELAY=-1 \(MIMALLOC_PURGE_DELAY\)'
all_listed
done_case

run "secure library: its level, a forced option, the error file" "$secure" MIMALLOC_VERBOSE=1 \
  HARDHEAP_SHOW_ERRORS=0 HARDHEAP_ERROR_FILE="$work/e.%p.log"
pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' out)
line "hardheap: process initialised \(secure build, secure level [1-9], version $version\)"
line 'hardheap: option VERBOSE=1 \(MIMALLOC_VERBOSE\)'
line 'hardheap: option SHOW_ERRORS=1 \(forced by the secure build\)'
line 'hardheap: option ABORT_ON_MISUSE=1 \(default\)'
line "hardheap: option ERROR_FILE=$work/e.%p.log \(HARDHEAP_ERROR_FILE\): errors and warnings also go to $work/e.$pid.log"
all_listed
done_case

for lib in "$default" "$secure"; do
  run "no VERBOSE, nothing printed ($(basename "$lib"))" "$lib" HARDHEAP_PURGE_DELAY=50 MIMALLOC_SEGMENT_CACHE=2
  [ ! -s err ] || problem+="stderr not empty; "
  done_case
done

echo "$cases cases, $failures failed"
[ "$failures" = 0 ]
