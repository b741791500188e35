#!/usr/bin/env bash
# tests/dropin/sort.sh LIB - hardheap as a drop-in malloc for GNU sort.
#
# Generates ~100 MB of deterministic text (about 1.9 million lines of random
# words from a 4096-word vocabulary plus a number, so lines share prefixes and
# comparisons are not decided by the first byte), then sorts it under glibc
# malloc and under LD_PRELOAD=LIB, each time:
#   1. in memory (-S 1G, two threads),
#   2. with a small buffer (-S 8M, --batch-size=4), forcing dozens of
#      temporary files and a multi-level merge,
#   3. by keys (-k2,2f -k1,1r -k5n, stable), in memory.
# The output of every sort must be byte-for-byte identical to glibc's (whose
# in-memory and merge outputs must agree and pass `sort -c`).
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skip (sort, awk or sha256sum missing).
set -euo pipefail

NAME="sort"
MB=${DROPIN_SORT_MB:-100}

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
dropin_need sort awk sha256sum
sort --version 2>/dev/null | grep -q 'GNU coreutils' || { echo "SKIP($NAME): sort is not GNU sort"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C TZ=UTC

check_preload

# ---------------------------------------------------------------- input
# Park-Miller generator: exact in awk's doubles, same data on every machine.
awk -v bytes=$((MB * 1000 * 1000)) '
function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
BEGIN {
  seed = 12345; a = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
  for (i = 0; i < 4096; i++) { w = ""; l = 1 + rnd(12); for (j = 0; j < l; j++) w = w substr(a, rnd(62) + 1, 1); word[i] = w }
  total = 0
  while (total < bytes) {
    n = 1 + rnd(10); s = word[rnd(4096)]
    for (j = 1; j < n; j++) s = s " " word[rnd(4096)]
    s = s " " rnd(1000000)
    print s; total += length(s) + 1
  }
}' >"$WORK/input.txt"
lines=$(wc -l <"$WORK/input.txt")
note "input: $(wc -c <"$WORK/input.txt") bytes, $lines lines"

# ---------------------------------------------------------------- the sorts
# compare KIND: the hh output of one sort against glibc's, then drop it
compare() {
  local kind=$1 a=$WORK/glibc/$1.out b=$WORK/hh/$1.out
  if ! cmp -s "$a" "$b"; then
    echo "FAIL($NAME): '$kind' sort output differs between glibc and LD_PRELOAD=$LIB" >&2
    echo "  sha256 glibc $(sha256sum <"$a" | cut -c1-64), hardheap $(sha256sum <"$b" | cut -c1-64); lines $(wc -l <"$a") vs $(wc -l <"$b")" >&2
    cmp "$a" "$b" >&2 || true
    diff "$a" "$b" | head -n 20 >&2 || true
    exit 1
  fi
  note "$kind: $(sha256sum <"$b" | cut -c1-64) (identical to glibc's)"
  rm -f "$b"
}

for mode in glibc hh; do
  mkdir -p "$WORK/$mode/tmp"
  run "$mode" "$WORK/$mode/mem.out" "$WORK/$mode/mem.err" \
    sort -S 1G --parallel=2 -T "$WORK/$mode/tmp" "$WORK/input.txt"
  [[ $mode == hh ]] && compare mem
  run "$mode" "$WORK/$mode/merge.out" "$WORK/$mode/merge.err" \
    sort -S 8M --batch-size=4 --parallel=2 -T "$WORK/$mode/tmp" "$WORK/input.txt"
  [[ $mode == hh ]] && compare merge
  run "$mode" "$WORK/$mode/keys.out" "$WORK/$mode/keys.err" \
    sort -S 1G --parallel=2 -s -t ' ' -k2,2f -k1,1r -k5,5n -T "$WORK/$mode/tmp" "$WORK/input.txt"
  [[ $mode == hh ]] && compare keys
  if [[ $mode == glibc ]]; then
    # sanity of the baseline itself
    sort -c "$WORK/glibc/mem.out" 2>"$WORK/check.err" || fail "glibc: in-memory output is not sorted: $(cat "$WORK/check.err")"
    cmp -s "$WORK/glibc/mem.out" "$WORK/glibc/merge.out" || fail "glibc: in-memory and merge sort outputs differ"
    [[ $(wc -l <"$WORK/glibc/mem.out") -eq $lines ]] || fail "glibc: sort output has $(wc -l <"$WORK/glibc/mem.out") lines, the input $lines"
  fi
done
[[ -z $(ls -A "$WORK/hh/tmp") ]] || fail "sort left temporary files behind under LD_PRELOAD=$LIB: $(ls "$WORK/hh/tmp" | head)"
note "PASS: $lines lines sorted three ways (in memory, external merge, by keys), outputs identical to glibc's"
