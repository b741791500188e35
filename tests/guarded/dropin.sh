#!/usr/bin/env bash
# dropin.sh LIBRARY: unmodified programs under LD_PRELOAD with every
# allocation sampled (GUARDED_SAMPLE_RATE=1, the slots permitting) give the
# same results as under glibc. Skipped (77) when python3 is missing.
set -u
lib=$1
command -v python3 >/dev/null || exit 77
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/prog.py" <<'PY'
import json, re, hashlib, collections
data = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(20000)]
text = json.dumps(data)
back = json.loads(text)
words = collections.Counter(re.findall(r"item\d+", text))
print(len(back), len(words), hashlib.sha256(text.encode()).hexdigest())
PY
seq 1 200000 | awk '{print ($1 * 7919) % 100003, $1}' >"$work/input.txt"
expect_py=$(python3 "$work/prog.py")
expect_sort=$(sort -n "$work/input.txt" | sha256sum)
got_py=$(env HARDHEAP_GUARDED_SAMPLE_RATE=1 HARDHEAP_SHOW_STATS=1 LD_PRELOAD="$lib" python3 "$work/prog.py" 2>"$work/stats")
status=$?
got_sort=$(env HARDHEAP_GUARDED_SAMPLE_RATE=1 LD_PRELOAD="$lib" sort -n "$work/input.txt" | sha256sum)
echo "python: $got_py (glibc: $expect_py), status $status"
grep guarded "$work/stats"
echo "sort: $got_sort (glibc: $expect_sort)"
[ "$status" -eq 0 ] && [ "$got_py" = "$expect_py" ] && [ "$got_sort" = "$expect_sort" ] || { echo FAIL; exit 1; }
sampled=$(sed -n 's/.*guarded: *\([0-9]*\) sampled.*/\1/p' "$work/stats")
if [ -z "$sampled" ] || [ "$sampled" -lt 10000 ]; then echo "FAIL: only '${sampled}' allocations sampled"; exit 1; fi
echo PASS
