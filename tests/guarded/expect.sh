#!/usr/bin/env bash
# expect.sh STATUS BINARY CASE [REGEX...]
#   STATUS abort (SIGABRT), segv (SIGSEGV) or a number (the exit status);
#   every REGEX must match a whole line of the case's stderr or stdout.
set -u
want=$1 bin=$2 case=$3
shift 3
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" "$case" >"$out" 2>&1
status=$?
echo "case $case: exit status $status; output:"
sed 's/^/  | /' "$out"
case $want in
  abort) want_status=134 ;;
  segv) want_status=139 ;;
  *) want_status=$want ;;
esac
if [ "$status" -ne "$want_status" ]; then echo "FAIL: expected exit status $want_status"; exit 1; fi
for regex in "$@"; do
  if ! grep -Eq "^$regex\$" "$out"; then echo "FAIL: no line matches: $regex"; exit 1; fi
done
echo "PASS"
