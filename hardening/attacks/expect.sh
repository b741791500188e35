#!/usr/bin/env bash
# expect.sh MODE LIB ATTACK_BINARY
# Runs one attack program under LD_PRELOAD=LIB (as run.sh does) and checks
# its outcome:
#   caught    the allocator must stop it: SIGABRT with a "hardheap: error:"
#             line, or SIGSEGV (a guard page)
#   defended  caught, or the attack fails without detection (exit 3, LOST:
#             e.g. random placement leaves nothing to overflow into)
# A WIN (exit 0), a HANG (exit 4 or the timeout) or any other end fails.
set -u
mode=$1 lib=$2 bin=$3
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout -s KILL "${ATTACK_TIMEOUT:-60}" env LD_PRELOAD="$lib" "$bin" >"$out" 2>"$err"
rc=$?
echo "attack $(basename "$bin") under $(basename "$lib"): exit status $rc"
sed 's/^/  out | /' "$out"
sed 's/^/  err | /' "$err"
if [ $rc -eq 134 ] && grep -q '^hardheap: error:' "$err"; then echo "PASS (caught: abort)"; exit 0; fi
if [ $rc -eq 139 ]; then echo "PASS (caught: SIGSEGV)"; exit 0; fi
if [ "$mode" = defended ] && [ $rc -eq 3 ]; then echo "PASS (defended: the attack failed)"; exit 0; fi
case $rc in
  0) echo "FAIL: the attack won" ;;
  3) echo "FAIL: the attack failed but nothing was detected" ;;
  4|137) echo "FAIL: the allocator hung" ;;
  *) echo "FAIL: unexpected end" ;;
esac
exit 1
