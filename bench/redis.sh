#!/usr/bin/env bash
# bench/redis.sh - redis-server throughput under several malloc
# implementations, measured with redis-benchmark on the loopback interface,
# interleaved over several rounds; prints a markdown table of medians.
#
# Debian's redis-server is linked against libjemalloc.so.2 and calls plain
# malloc/free/realloc/calloc/malloc_usable_size, so each allocator is brought
# in with LD_PRELOAD, which puts it ahead of jemalloc in the symbol lookup:
#   glibc            LD_PRELOAD=libc.so.6 (glibc's malloc ahead of jemalloc)
#   jemalloc         no preload: what Debian's redis uses by default
#   mimalloc         LD_PRELOAD=libmimalloc.so.2 (Debian libmimalloc2.0)
#   hardheap         LD_PRELOAD=$HH_BUILD/libhardheap.so
#   hardheap-secure  LD_PRELOAD=$HH_BUILD/libhardheap-secure.so
# (jemalloc's statistics calls, mallctl and nallocx, always go to jemalloc.)
#
# Environment (all optional):
#   HH_BUILD     build dir with libhardheap.so and libhardheap-secure.so
#                (default: build/ at the repository root)
#   ALLOCATORS   default "glibc jemalloc mimalloc hardheap hardheap-secure"
#   LIB_<name>   library for an allocator ('-' written as '_')
#   ROUNDS       rounds, allocator order rotated each round (default 3)
#   REQUESTS     requests per redis-benchmark test (default 1000000)
#   CLIENTS      parallel connections (default 50)
#   PIPELINE     requests per pipeline (default 16)
#   DATA_SIZE    value size in bytes (default 128)
#   TESTS        redis-benchmark -t list (default set,get,lpush,lpop,incr,hset)
#   OUT_DIR      where logs and results.tsv go (default: a new mktemp -d)
#
# Each run starts a fresh server (no persistence, 127.0.0.1, a random free
# port), runs redis-benchmark --csv once for all TESTS, records INFO memory,
# and stops the server with SHUTDOWN NOSAVE. A run counts only if the server
# had the requested library mapped, exited with status 0 and printed no
# hardheap message. Exit status: 0 when every run succeeded, 1 otherwise,
# 2 for usage errors or missing redis. Timings never decide the exit status.
set -uo pipefail

case "${1:-}" in
-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
"") ;;
*) echo "redis.sh: no arguments expected (see --help)" >&2; exit 2 ;;
esac

HH_BUILD=${HH_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
ALLOCATORS=${ALLOCATORS:-"glibc jemalloc mimalloc hardheap hardheap-secure"}
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-1000000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
DATA_SIZE=${DATA_SIZE:-128}
TESTS=${TESTS:-set,get,lpush,lpop,incr,hset}

die() { echo "redis.sh: $*" >&2; exit 2; }
log() { echo "$*" >&2; }
for v in ROUNDS REQUESTS CLIENTS PIPELINE DATA_SIZE; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((REQUESTS <= 10000000)) || die "REQUESTS is bounded at 10000000"
for prog in redis-server redis-cli redis-benchmark timeout awk; do
  command -v "$prog" >/dev/null 2>&1 || die "$prog not found (Debian packages redis-server, redis-tools)"
done

if [[ -n ${OUT_DIR:-} ]]; then mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"; else OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hardheap-redis-bench.XXXXXX"); fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
RESULTS=$OUT_DIR/results.tsv
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/libs" "$OUT_DIR/data"
: >"$RESULTS"

MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
syslib() {
  local n d
  for n in "$@"; do
    for d in "/usr/lib/$MULTIARCH" "/lib/$MULTIARCH" /usr/lib /lib; do
      [[ -f $d/$n ]] && { readlink -f "$d/$n"; return 0; }
    done
  done
  return 1
}

# LIBS[name] = library to preload ("" for none); CHECK[name] = what must
# show up in /proc/PID/maps
declare -A LIBS=() CHECK=()
ACTIVE=()
SKIPPED=()
for a in $ALLOCATORS; do
  var="LIB_${a//-/_}"
  p=${!var:-}
  if [[ -z $p ]]; then
    case $a in
    glibc) p=$(syslib libc.so.6) ;;
    jemalloc) p=none ;;
    mimalloc) p=$(syslib libmimalloc.so.2 libmimalloc.so) ;;
    hardheap) p=$HH_BUILD/libhardheap.so ;;
    hardheap-secure) p=$HH_BUILD/libhardheap-secure.so ;;
    *) p= ;;
    esac
  fi
  if [[ $p == none ]]; then
    LIBS[$a]='' CHECK[$a]=libjemalloc
  elif [[ -n $p && -f $p ]]; then
    # snapshot: a rebuild during the benchmark must not mix two versions
    cp -pL "$p" "$OUT_DIR/libs/$a.so" || die "cannot copy $p"
    LIBS[$a]=$OUT_DIR/libs/$a.so CHECK[$a]=$OUT_DIR/libs/$a.so
    [[ $a == glibc ]] && LIBS[$a]=$p CHECK[$a]=$p   # libc must be preloaded under its own name
  else
    SKIPPED+=("$a")
    continue
  fi
  ACTIVE+=("$a")
done
((${#ACTIVE[@]})) || die "no allocator available"

SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; sleep 0.5; kill -9 "$SERVER_PID" 2>/dev/null; fi
}
trap cleanup EXIT

port_in_use() {
  if command -v ss >/dev/null 2>&1; then [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}

# one_run ALLOC ROUND: appends "alloc round test rps" lines to RESULTS
FAILED=()
one_run() {
  local a=$1 r=$2 tag=$1.r$2 log=$OUT_DIR/logs/$1.r$2 i port ok=0 rc
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    if [[ -n ${LIBS[$a]} ]]; then
      LD_PRELOAD=${LIBS[$a]} redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize no \
        --dir "$OUT_DIR/data" --logfile "" --protected-mode yes >"$log.server" 2>&1 &
    else
      env -u LD_PRELOAD redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize no \
        --dir "$OUT_DIR/data" --logfile "" --protected-mode yes >"$log.server" 2>&1 &
    fi
    SERVER_PID=$!
    for i in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      if [[ $(timeout 5 redis-cli -p "$port" ping 2>/dev/null) == PONG ]] &&
        [[ $(timeout 5 redis-cli -p "$port" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}') == "$SERVER_PID" ]]; then
        ok=1
        break
      fi
      sleep 0.1
    done
    ((ok)) && break
    kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=
    grep -q 'Address already in use' "$log.server" || break
  done
  if ((!ok)); then FAILED+=("$tag: server did not start"); return; fi
  if ! grep -qF -- "${CHECK[$a]}" "/proc/$SERVER_PID/maps"; then
    FAILED+=("$tag: ${CHECK[$a]} not mapped into redis-server")
  fi
  timeout 600 redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQUESTS" -c "$CLIENTS" -P "$PIPELINE" -d "$DATA_SIZE" -t "$TESTS" --csv \
    >"$log.csv" 2>"$log.bench.err" || FAILED+=("$tag: redis-benchmark failed")
  timeout 10 redis-cli -p "$port" info memory | tr -d '\r' >"$log.memory"
  local rss
  rss=$(awk -F: '$1 == "used_memory_rss" {print $2}' "$log.memory")
  timeout 10 redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
  rc=0
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  ((rc == 0)) || FAILED+=("$tag: redis-server exited with status $rc")
  grep -q 'hardheap: ' "$log.server" && FAILED+=("$tag: hardheap message in the server log")
  # "SET","123456.79","0.123",... (header line first)
  awk -F, -v a="$a" -v r="$r" -v rss="${rss:-0}" 'NR > 1 { gsub(/"/, ""); printf "%s\t%s\t%s\t%s\t%s\n", a, r, $1, $2, rss }' "$log.csv" >>"$RESULTS"
  log "  round $r $(printf '%-16s' "$a") $(awk -F, 'NR > 1 {gsub(/"/, ""); printf "%s %.0f  ", $1, $2}' "$log.csv")"
}

log "redis $(redis-server --version | grep -o 'v=[^ ]*'), $REQUESTS requests per test, -c $CLIENTS -P $PIPELINE -d $DATA_SIZE, $ROUNDS rounds"
log "allocators: ${ACTIVE[*]}${SKIPPED:+ (skipped, not found: ${SKIPPED[*]})}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
n=${#ACTIVE[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do
    one_run "${ACTIVE[(i + r - 1) % n]}" "$r"
  done
done

# ---------------------------------------------------------------- table
order=$(printf '%s ' "${ACTIVE[@]}")
echo
echo "redis-server $(redis-server --version | grep -o 'v=[^ ]*' | cut -c3-) throughput (requests/s, median of $ROUNDS rounds; higher is better; -n $REQUESTS -c $CLIENTS -P $PIPELINE -d $DATA_SIZE, 127.0.0.1, $(nproc) cores)"
[[ -f $OUT_DIR/libs/hardheap.so ]] && echo "hardheap library built $(date -u -r "$OUT_DIR/libs/hardheap.so" '+%Y-%m-%d %H:%M UTC')"
echo "load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
echo
awk -F'\t' -v order="$order" '
function median(list,   n, v, i, j, t) {
  n = split(list, v, " ")
  for (i = 2; i <= n; i++) { t = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
  return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function minmax(list,   n, v, i, lo, hi) {
  n = split(list, v, " "); lo = hi = v[1] + 0
  for (i = 2; i <= n; i++) { if (v[i] + 0 < lo) lo = v[i] + 0; if (v[i] + 0 > hi) hi = v[i] + 0 }
  return sprintf("%.0f-%.0f", lo, hi)
}
{ key = $3 SUBSEP $1; rps[key] = rps[key] " " $4; cnt[key]++; if (!($3 in seen)) { seen[$3] = 1; tests[++nt] = $3 }
  mem[$1] = mem[$1] " " $5 }
END {
  na = split(order, al, " ")
  print "| test | allocator | requests/s | vs glibc | vs mimalloc | min-max | rounds |"
  print "|---|---|---:|---:|---:|---:|---:|"
  for (t = 1; t <= nt; t++) {
    g = ((tests[t] SUBSEP "glibc") in rps) ? median(rps[tests[t], "glibc"]) : 0
    m = ((tests[t] SUBSEP "mimalloc") in rps) ? median(rps[tests[t], "mimalloc"]) : 0
    for (i = 1; i <= na; i++) {
      key = tests[t] SUBSEP al[i]
      if (!(key in rps)) continue
      v = median(rps[key])
      printf "| %s | %s | %.0f | %s | %s | %s | %d |\n", tests[t], al[i], v,
        g ? sprintf("%.2fx", v / g) : "n/a", m ? sprintf("%.2fx", v / m) : "n/a", minmax(rps[key]), cnt[key]
    }
  }
  print ""
  print "| allocator | geometric mean vs glibc | vs mimalloc | median used_memory_rss after the benchmark (MiB) |"
  print "|---|---:|---:|---:|"
  for (i = 1; i <= na; i++) {
    sg = sm = 0; ng = nm = 0
    for (t = 1; t <= nt; t++) {
      key = tests[t] SUBSEP al[i]
      if (!(key in rps)) continue
      v = median(rps[key])
      if ((tests[t] SUBSEP "glibc") in rps) { sg += log(v / median(rps[tests[t], "glibc"])); ng++ }
      if ((tests[t] SUBSEP "mimalloc") in rps) { sm += log(v / median(rps[tests[t], "mimalloc"])); nm++ }
    }
    if (!(al[i] in mem)) continue
    printf "| %s | %s | %s | %.1f |\n", al[i], ng ? sprintf("%.2fx", exp(sg / ng)) : "n/a", nm ? sprintf("%.2fx", exp(sm / nm)) : "n/a",
      median(mem[al[i]]) / 1048576
  }
}' "$RESULTS"
echo
echo "ratios: requests/s divided by the same test's median under glibc (libc.so.6 preloaded ahead of Debian redis' jemalloc) or mimalloc in this run; >1.00x is faster"
echo "raw results: $RESULTS"

if ((${#FAILED[@]})); then
  echo
  echo "FAILED runs:"
  printf '  %s\n' "${FAILED[@]}"
  exit 1
fi
exit 0
