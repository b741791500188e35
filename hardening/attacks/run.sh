#!/usr/bin/env bash
# Survey of the attack programs in this directory against one build.
#
#   hardening/attacks/run.sh LIB [name...]
#
# Compiles each attack (all *.c here, or the names given, with or without .c)
# with cc -O1 -pthread into a temporary directory, runs it under
# LD_PRELOAD=LIB with a timeout and prints a Markdown table of outcomes:
#
#   WIN           exit 0 and an "ATTACK WIN:" line: the attacker got what it wanted
#   LOST          exit 3: the attack failed and nothing was detected
#   HANG          exit 4 (the program's alarm) or killed by the timeout
#   CAUGHT-abort  SIGABRT with a "hardheap: error:" line (shown)
#   CAUGHT-segv   SIGSEGV (a guard page)
#   CRASH-other   anything else (exit status and last stderr line shown)
#
# A "hardheap: error:" line printed by a build that does not abort (the
# default build) is shown after a WIN or LOST. This is a survey tool: it
# always exits 0. Environment: CC (default cc), ATTACK_TIMEOUT (seconds,
# default 30), ATTACK_DIR (where the *.c are, default this directory:
# guarded/run.sh sets it).
set -u
here=${ATTACK_DIR:-$(cd "$(dirname "$0")" && pwd)}
if [ $# -lt 1 ]; then
  echo "usage: $0 LIB [name...]" >&2
  exit 0
fi
lib=$1
shift
if [ ! -f "$lib" ]; then
  echo "run.sh: no such library: $lib" >&2
  exit 0
fi
lib=$(readlink -f "$lib")
cc=${CC:-cc}
limit=${ATTACK_TIMEOUT:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

names=()
if [ $# -gt 0 ]; then
  for n in "$@"; do names+=("$(basename "${n%.c}")"); done
else
  for f in "$here"/*.c; do names+=("$(basename "${f%.c}")"); done
fi

# one Markdown table cell: no pipes, no newlines
cell() { tr '\n|' ' /' | sed 's/[[:space:]]*$//'; }

echo "| attack | outcome | detail |"
echo "|---|---|---|"
for n in "${names[@]}"; do
  src="$here/$n.c"
  if [ ! -f "$src" ]; then
    echo "| $n | MISSING | no $n.c in $here |"
    continue
  fi
  if ! "$cc" -std=c11 -O1 -pthread -Wall -Wextra -o "$tmp/$n" "$src" 2>"$tmp/$n.cc"; then
    echo "| $n | BUILD-FAILED | $(grep -m1 error "$tmp/$n.cc" | cell) |"
    continue
  fi
  (cd "$tmp" && timeout -s KILL "$limit" env LD_PRELOAD="$lib" "./$n" >"$n.out" 2>"$n.err") 2>/dev/null
  rc=$?
  report=$(grep -m1 'hardheap: error:' "$tmp/$n.err" | cell)
  win=$(grep -m1 '^ATTACK WIN:' "$tmp/$n.out" | sed 's/^ATTACK WIN: //' | cell)
  lostmsg=$(grep -m1 '^ATTACK LOST:' "$tmp/$n.out" | sed 's/^ATTACK LOST: //' | cell)
  also=""
  [ -n "$report" ] && also=" (reported: ${report#hardheap: error: })"
  if [ $rc -eq 0 ] && [ -n "$win" ]; then
    outcome=WIN; detail="$win$also"
  elif [ $rc -eq 3 ]; then
    outcome=LOST; detail="$lostmsg$also"
  elif [ $rc -eq 4 ]; then
    outcome=HANG; detail="alarm fired$also"
  elif [ $rc -eq 137 ]; then
    outcome=HANG; detail="killed after ${limit}s$also"
  elif [ $rc -eq 134 ] && [ -n "$report" ]; then
    outcome=CAUGHT-abort; detail="$report"
  elif [ $rc -eq 139 ]; then
    outcome=CAUGHT-segv; detail="SIGSEGV${report:+ after: $report}"
  else
    outcome=CRASH-other
    detail="exit $rc: $(tail -n1 "$tmp/$n.err" | cell)"
  fi
  echo "| $n | $outcome | $detail |"
done
exit 0
