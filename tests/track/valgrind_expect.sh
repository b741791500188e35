#!/usr/bin/env bash
# valgrind_expect.sh VALGRIND PROGRAM [invalid_free]
# Runs PROGRAM (track_valgrind.c, linked with hardheap built HH_TRACK=valgrind)
# under memcheck and checks that it reports exactly the program's one leak,
# one overflow and one use after free, and nothing else; with invalid_free,
# exactly its two invalid frees.
set -u
valgrind=$1 prog=$2 mode=${3:-}
if [ -z "$valgrind" ] || ! command -v "$valgrind" >/dev/null 2>&1; then
  echo "valgrind is not installed: skipped (Debian: apt-get install valgrind)"
  exit 77
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$valgrind" --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=42 \
  --log-file="$log" "$prog" $mode
status=$?
sed 's/^/  | /' "$log"
fail=0
check() {  # check COUNT REGEX WHAT
  local n
  n=$(grep -Ec -- "$2" "$log")
  if [ "$n" -ne "$1" ]; then echo "FAIL: $3: expected $1 line(s) matching '$2', found $n"; fail=1; fi
}
[ "$status" -eq 42 ] || { echo "FAIL: exit status $status, expected 42 (memcheck errors)"; fail=1; }
if [ "$mode" = invalid_free ]; then
  check 2 "Invalid free\(\)" "the invalid frees"
  check 1 "Address 0x[0-9A-Fa-f]+ is on thread 1's stack" "the stack address"
  check 1 "Address 0x[0-9A-Fa-f]+ is 0 bytes inside a block of size 40 free'd" "the freed block"
  check 0 "Invalid (read|write)|uninitialised|definitely lost: [1-9]" "other errors"
  check 1 "ERROR SUMMARY: 2 errors from 2 contexts" "the error count"
  [ "$fail" -eq 0 ] && echo PASS
  exit "$fail"
fi
check 1 "Invalid write of size 1\$" "the overflow"
check 1 "Address 0x[0-9A-Fa-f]+ is 0 bytes after a block of size 13 alloc'd" "the overflow's block"
check 1 "Invalid read of size 1\$" "the use after free"
check 1 "Address 0x[0-9A-Fa-f]+ is 32 bytes inside a block of size 64 free'd" "the freed block"
check 1 "100 bytes in 1 blocks are definitely lost" "the leak"
check 1 "definitely lost: 100 bytes in 1 blocks" "the leak summary"
check 0 "Invalid (read|write) of size ([02-9]|[0-9][0-9]+)" "other invalid accesses"
check 2 "Invalid (read|write)" "invalid accesses in all"
check 0 "Invalid free|Mismatched free|uninitialised|Syscall param|overlap" "other errors"
check 0 "(indirectly|possibly) lost: [1-9]" "other leaks"
check 1 "ERROR SUMMARY: 3 errors from 3 contexts" "the error count"
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "PASS"
