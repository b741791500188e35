#!/usr/bin/env bash
# expect.sh MODE BINARY SCENARIO [REGEX]
#   MODE abort:   the scenario must die of SIGABRT and print a line matching REGEX
#   MODE segv:    the scenario must die of SIGSEGV (it hit a guard page)
#   MODE survive: the scenario must exit 0 (default build: misuse reported or ignored)
set -u
mode=$1 bin=$2 scenario=$3 regex=${4:-}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$bin" "$scenario" 2>"$err"
status=$?
echo "scenario $scenario: exit status $status; stderr:"
sed 's/^/  | /' "$err"
case $mode in
  abort)
    if [ "$status" -ne 134 ]; then echo "FAIL: expected SIGABRT (status 134)"; exit 1; fi
    if ! grep -Eq "^$regex\$" "$err"; then echo "FAIL: no stderr line matches: $regex"; exit 1; fi
    ;;
  segv)
    if [ "$status" -ne 139 ]; then echo "FAIL: expected SIGSEGV (status 139)"; exit 1; fi
    ;;
  survive)
    if [ "$status" -ne 0 ]; then echo "FAIL: expected exit status 0"; exit 1; fi
    ;;
  *) echo "bad mode $mode"; exit 2 ;;
esac
echo "PASS"
