#!/usr/bin/env bash
# bench/redis_rss.sh - what redis-server gives back after a burst: its RSS
# after loading KEYS keys with redis-benchmark, then 1 s and 5 s after
# FLUSHALL while the server sits idle, under each allocator (brought in with
# LD_PRELOAD as in bench/redis.sh; "jemalloc" is Debian's redis as built).
# Prints a markdown table of medians over ROUNDS rounds (allocator order
# rotated each round).
#
# Environment (all optional):
#   HH_BUILD    build dir with libhardheap.so and libhardheap-secure.so (default build/)
#   ALLOCATORS  default "glibc jemalloc mimalloc hardheap hardheap-secure"
#   LIB_<name>  library for an allocator ('-' written as '_'), e.g. LIB_mimalloc_2_4=...
#   ROUNDS      default 3
#   KEYS        keys loaded (default 1000000, values of DATA_SIZE bytes)
#   DATA_SIZE   default 128
#   ENV_<name>  extra environment for an allocator, e.g. ENV_hardheap="HARDHEAP_BACKGROUND_PURGE=0"
set -uo pipefail
case "${1:-}" in
-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
"") ;;
*) echo "redis_rss.sh: no arguments expected (see --help)" >&2; exit 2 ;;
esac
HH_BUILD=${HH_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
ALLOCATORS=${ALLOCATORS:-"glibc jemalloc mimalloc hardheap hardheap-secure"}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-1000000}
DATA_SIZE=${DATA_SIZE:-128}
for prog in redis-server redis-cli redis-benchmark; do
  command -v "$prog" >/dev/null || { echo "redis_rss.sh: $prog not found" >&2; exit 2; }
done
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
lib_of() {
  local var="LIB_${1//-/_}"
  [[ -n ${!var:-} ]] && { echo "${!var}"; return; }
  case $1 in
  glibc) echo "/lib/$MULTIARCH/libc.so.6" ;;
  jemalloc) echo none ;;
  mimalloc) ls /usr/lib/"$MULTIARCH"/libmimalloc.so.2* 2>/dev/null | head -1 ;;
  hardheap) echo "$HH_BUILD/libhardheap.so" ;;
  hardheap-secure) echo "$HH_BUILD/libhardheap-secure.so" ;;
  esac
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
PID=
trap '[[ -n $PID ]] && kill -9 $PID 2>/dev/null' EXIT
OUT=$(mktemp)
for ((r = 0; r < ROUNDS; r++)); do
  read -r -a list <<<"$ALLOCATORS"
  n=${#list[@]}
  for ((k = 0; k < n; k++)); do
    a=${list[$(((k + r) % n))]}
    lib=$(lib_of "$a")
    [[ $lib == none || -f $lib ]] || { echo "redis_rss.sh: skipping $a (no library)" >&2; continue; }
    envvar="ENV_${a//-/_}"
    preload=""
    [[ $lib != none ]] && preload="LD_PRELOAD=$lib"
    up=0
    for _try in 1 2 3 4 5; do  # a random port may be taken: try another
      port=$((20000 + RANDOM % 40000))
      env -u LD_PRELOAD $preload ${!envvar:-} redis-server --bind 127.0.0.1 --port $port --save "" --appendonly no \
        --daemonize no --logfile "" >"$OUT.server" 2>&1 &
      PID=$!
      for _ in $(seq 50); do [[ $(redis-cli -p $port ping 2>/dev/null) == PONG ]] && { up=1; break; }; sleep 0.1; done
      ((up)) && kill -0 $PID 2>/dev/null && break
      up=0
      wait $PID 2>/dev/null
      echo "redis_rss.sh: $a: the server did not come up on port $port: $(tail -1 "$OUT.server")" >&2
    done
    ((up)) || { echo "redis_rss.sh: $a: giving up this round" >&2; PID=; continue; }
    base=$(rss_kib $PID)
    timeout 300 redis-benchmark -p $port -q -t set -n "$KEYS" -r "$KEYS" -d "$DATA_SIZE" -P 16 -c 20 >/dev/null 2>&1
    loaded=$(rss_kib $PID)
    keys=$(redis-cli -p $port dbsize)
    redis-cli -p $port flushall >/dev/null
    sleep 1
    idle1=$(rss_kib $PID)
    sleep 4
    idle5=$(rss_kib $PID)
    redis-cli -p $port shutdown nosave >/dev/null 2>&1
    wait $PID 2>/dev/null
    rc=$?
    PID=
    ((rc == 0)) || echo "redis_rss.sh: $a: the server exited with status $rc" >&2
    echo "$a $base $loaded $idle1 $idle5 $keys" >>"$OUT"
    echo "round $r $a: start $base KiB, $keys keys $loaded KiB, after FLUSHALL 1 s $idle1 KiB, 5 s $idle5 KiB" >&2
  done
done
echo "| allocator | RSS at start (MiB) | after loading $KEYS keys | 1 s after FLUSHALL | 5 s after FLUSHALL |"
echo "|---|---:|---:|---:|---:|"
# median of column c (2..5) of allocator a, in MiB
median() {
  awk -v a="$1" -v c="$2" '$1 == a {print $c}' "$OUT" | sort -n | awk '{v[NR] = $1} END {
    if (NR == 0) exit; m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1024 }'
}
for a in $ALLOCATORS; do
  [[ -n $(median "$a" 2) ]] || continue
  echo "| $a | $(median "$a" 2) | $(median "$a" 3) | $(median "$a" 4) | $(median "$a" 5) |"
done
rm -f "$OUT" "$OUT.server"
