#!/usr/bin/env bash
# same_seed.sh BINARY: the same GUARDED_SAMPLE_SEED samples the same
# allocations; another seed samples others.
set -u
bin=$1
run() { env HARDHEAP_GUARDED_SAMPLE_RATE=100 HARDHEAP_GUARDED_SAMPLE_SEED=$1 "$bin" sample_sequence; }
a=$(run 12345) b=$(run 12345) c=$(run 54321)
echo "seed 12345: $a"
echo "seed 12345 again: $b"
echo "seed 54321: $c"
n=$(echo "$a" | wc -w)
if [ "$n" -lt 100 ] || [ "$n" -gt 400 ]; then echo "FAIL: $n of 20000 sampled at rate 100"; exit 1; fi
if [ "$a" != "$b" ]; then echo "FAIL: the same seed sampled different allocations"; exit 1; fi
if [ "$a" = "$c" ]; then echo "FAIL: another seed sampled the same allocations"; exit 1; fi
echo PASS
