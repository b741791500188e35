#!/usr/bin/env bash
# tests/dropin/redis.sh LIB - hardheap as a drop-in malloc for redis-server.
#
# Debian's redis-server links libjemalloc.so.2 and calls the plain malloc,
# free, realloc, calloc and malloc_usable_size, so LD_PRELOAD=LIB replaces
# jemalloc for all of them (only jemalloc's statistics calls, mallctl and
# nallocx, still go to jemalloc). The baseline run uses no preload, i.e.
# redis' own jemalloc (shown as "system"). For each of the two, a server is started on 127.0.0.1
# and a random free port (no persistence, 2 I/O threads, lazy freeing in the
# background thread), then:
#   1. redis-benchmark, bounded: -n 200000 -c 50 -P 16 -d 128 on
#      set,get,lpush,lpop,incr,hset (the throughput lines are printed),
#   2. 20,000 keys (~70 MB) loaded through redis-cli --pipe: strings of 1 B
#      to 150 KB,
#      lists, hashes, sorted sets and sets of up to 300 elements (so both the
#      compact and the hash-table/skiplist encodings appear),
#   3. every key read back and compared byte for byte with what was written,
#   4. DEBUG RELOAD (save to an RDB file and load it again), read back again,
#   5. a batch of APPEND/SETRANGE/DEL/LPOP/HDEL/ZREM/SREM/... edits,
#   6. DEBUG DIGEST after 2. and after 5.: must equal the baseline's,
#   7. INFO memory, MEMORY USAGE and MEMORY STATS must work,
#   8. FLUSHALL ASYNC (freed by the lazy-free thread), then SHUTDOWN NOSAVE:
#      the server must exit with status 0 and print no hardheap message.
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skip (redis-server/redis-tools
# not installed).
set -euo pipefail

NAME=redis
KEYS=${DROPIN_REDIS_KEYS:-20000}
REQUESTS=${DROPIN_REDIS_REQUESTS:-200000}

# shellcheck source=tests/dropin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dropin_lib "$@"
dropin_need redis-server redis-cli redis-benchmark awk timeout cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hh-dropin-$NAME.XXXXXX")
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    sleep 0.5
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export LC_ALL=C TZ=UTC

check_preload

# ---------------------------------------------------------------- data
# Park-Miller generator (exact in awk's doubles): the same data everywhere.
# Writes load.resp (redis protocol, for --pipe), check.txt (read commands,
# one per line, for redis-cli) with expected.txt (their raw output), and
# edit.resp (the edits).
(cd "$WORK" && awk -v nkeys="$KEYS" '
function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
function chunk(n,   s, i) { s = ""; for (i = 0; i < n; i++) s = s substr(alnum, rnd(62) + 1, 1); return s }
function text(len) { return substr(big, 1 + rnd(bigsize - len), len) }
function emit(file,   i, s) {                  # RESP array of A[1..NA]
  s = "*" NA "\r\n"
  for (i = 1; i <= NA; i++) s = s "$" length(A[i]) "\r\n" A[i] "\r\n"
  printf "%s", s > file
}
function flush_mget(   k) {
  if (nm == 0) return
  printf "MGET" > "check.txt"
  for (k = 1; k <= nm; k++) { printf " %s", mk[k] > "check.txt"; print mv[k] > "expected.txt" }
  printf "\n" > "check.txt"
  nm = 0
}
BEGIN {
  seed = 424242; alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
  big = ""; for (c = 0; c < 160; c++) big = big chunk(1024); bigsize = length(big)
  for (i = 0; i < nkeys; i++) {
    t = i % 20
    if (t < 14) {                                # string
      r = rnd(100)
      len = (r < 60) ? 1 + rnd(100) : (r < 97) ? 100 + rnd(4900) : 50000 + rnd(100000)
      key = sprintf("s:%06d", i); val = i "-" text(len)
      NA = 3; A[1] = "SET"; A[2] = key; A[3] = val; emit("load.resp")
      nm++; mk[nm] = key; mv[nm] = val
      if (nm == 50) flush_mget()
    } else if (t < 16) {                         # list
      key = sprintf("l:%06d", i); n = 1 + rnd(300)
      NA = 2 + n; A[1] = "RPUSH"; A[2] = key
      for (j = 1; j <= n; j++) { A[2 + j] = j "." text(rnd(100) < 1 ? 1000 + rnd(4000) : 1 + rnd(64)); print A[2 + j] > "expected.txt" }
      emit("load.resp"); print "LRANGE " key " 0 -1" > "check.txt"
    } else if (t < 18) {                         # hash
      key = sprintf("h:%06d", i); n = 1 + rnd(200)
      NA = 2 + 2 * n; A[1] = "HSET"; A[2] = key; line = "HMGET " key
      for (j = 1; j <= n; j++) { A[1 + 2 * j] = "f" j; A[2 + 2 * j] = text(1 + rnd(rnd(10) == 0 ? 500 : 60)); line = line " f" j; print A[2 + 2 * j] > "expected.txt" }
      emit("load.resp"); print line > "check.txt"
    } else if (t == 18) {                        # sorted set, scores 1..n
      key = sprintf("z:%06d", i); n = 1 + rnd(200)
      NA = 2 + 2 * n; A[1] = "ZADD"; A[2] = key
      for (j = 1; j <= n; j++) { A[1 + 2 * j] = j; A[2 + 2 * j] = "m" j "." text(1 + rnd(40)); print A[2 + 2 * j] > "expected.txt"; print j > "expected.txt" }
      emit("load.resp"); print "ZRANGE " key " 0 -1 WITHSCORES" > "check.txt"
    } else {                                     # set: integers (intset) or strings
      key = sprintf("t:%06d", i); n = 1 + rnd(200); ints = (i % 40 == 19)
      NA = 2 + n; A[1] = "SADD"; A[2] = key; line = "SMISMEMBER " key
      for (j = 1; j <= n; j++) { A[2 + j] = ints ? j * 7919 + i : "e" j "." text(1 + rnd(30)); line = line " " A[2 + j]; print 1 > "expected.txt" }
      emit("load.resp"); print line " not-a-member" > "check.txt"; print 0 > "expected.txt"
      print "SCARD " key > "check.txt"; print n > "expected.txt"
    }
  }
  flush_mget()
  # edits: grow, shrink, overwrite and delete, in every type
  for (i = 0; i < nkeys; i++) {
    t = i % 20
    if (t < 14) {
      key = sprintf("s:%06d", i)
      if (i % 7 == 0)       { NA = 3; A[1] = "APPEND"; A[2] = key; A[3] = text(1 + rnd(3000)); emit("edit.resp") }
      else if (i % 11 == 0) { NA = 4; A[1] = "SETRANGE"; A[2] = key; A[3] = rnd(200); A[4] = text(1 + rnd(500)); emit("edit.resp") }
      else if (i % 13 == 0) { NA = 3; A[1] = "SET"; A[2] = key; A[3] = text(1 + rnd(20)); emit("edit.resp") }
      else if (i % 17 == 0) { NA = 2; A[1] = "DEL"; A[2] = key; emit("edit.resp") }
    } else if (t < 16) {
      key = sprintf("l:%06d", i)
      NA = 3; A[1] = "LPOP"; A[2] = key; A[3] = 1 + rnd(50); emit("edit.resp")
      NA = 4; A[1] = "LPUSH"; A[2] = key; A[3] = text(1 + rnd(200)); A[4] = text(1 + rnd(2000)); emit("edit.resp")
    } else if (t < 18) {
      key = sprintf("h:%06d", i)
      NA = 4; A[1] = "HDEL"; A[2] = key; A[3] = "f1"; A[4] = "f" (1 + rnd(100)); emit("edit.resp")
      NA = 4; A[1] = "HSET"; A[2] = key; A[3] = "new"; A[4] = text(1 + rnd(1000)); emit("edit.resp")
    } else if (t == 18) {
      key = sprintf("z:%06d", i)
      NA = 4; A[1] = "ZINCRBY"; A[2] = key; A[3] = rnd(100); A[4] = "extra" i; emit("edit.resp")
      NA = 4; A[1] = "ZREMRANGEBYSCORE"; A[2] = key; A[3] = 1; A[4] = 1 + rnd(30); emit("edit.resp")
    } else {
      key = sprintf("t:%06d", i)
      NA = 4; A[1] = "SADD"; A[2] = key; A[3] = "added" i; A[4] = "x" text(1 + rnd(100)); emit("edit.resp")
      NA = 3; A[1] = "SREM"; A[2] = key; A[3] = (i % 40 == 19) ? 7919 + i : "nothing"; emit("edit.resp")
    }
  }
  NA = 3; A[1] = "INCRBY"; A[2] = "counter"; A[3] = 12345; emit("edit.resp")
}')
# the edits are only compared via DEBUG DIGEST; this counts their commands
edits=$(grep -c '^\*' "$WORK/edit.resp" || true)
note "data: $KEYS keys, $(wc -c <"$WORK/load.resp") bytes of commands, $(wc -l <"$WORK/check.txt") read commands, $edits edits"

# ---------------------------------------------------------------- server
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# start_server MODE: sets PORT and SERVER_PID, waits for PING
start_server() {
  local mode=$1 dir=$WORK/$1
  mkdir -p "$dir"
  for _ in $(seq 1 20); do
    PORT=$((20000 + RANDOM % 40000))
    port_in_use "$PORT" && continue
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $PORT
protected-mode yes
daemonize no
supervised no
save ""
appendonly no
dir $dir
dbfilename dump.rdb
logfile ""
loglevel notice
databases 4
io-threads 2
io-threads-do-reads yes
lazyfree-lazy-user-del yes
lazyfree-lazy-user-flush yes
lazyfree-lazy-server-del yes
enable-debug-command local
maxclients 200
EOF
    if [[ $mode == hh ]]; then
      LD_PRELOAD=$LIB redis-server "$dir/redis.conf" >"$dir/server.log" 2>&1 &
    else
      env -u LD_PRELOAD redis-server "$dir/redis.conf" >"$dir/server.log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 1 100); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      if [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; then
        # the server that answers must be ours (another one may hold the port)
        if [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}') != "$SERVER_PID" ]]; then
          sleep 0.2
          kill -0 "$SERVER_PID" 2>/dev/null && fail "a redis-server other than ours (pid $SERVER_PID) answers on port $PORT"
          break
        fi
        if [[ $mode == hh ]] && ! grep -qF -- "$LIB" "/proc/$SERVER_PID/maps"; then
          fail "$LIB is not mapped into redis-server (pid $SERVER_PID)"
        fi
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$dir/server.log" >&2
      fail "redis-server ($mode) did not answer PING on port $PORT within 10 s"
    fi
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    if grep -q 'Address already in use' "$dir/server.log"; then continue; fi
    tail -n 30 "$dir/server.log" >&2
    fail "redis-server ($mode) exited with status $rc during start-up"
  done
  fail "no free port found for redis-server"
}

# cli ARGS...: redis-cli to the server, bounded in time
cli() { timeout 120 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null && return 0
  local rc=0
  wait "$SERVER_PID" || rc=$?
  echo "--- server log:" >&2
  tail -n 40 "$WORK/$1/server.log" >&2
  fail "redis-server ($1) died$( ((rc > 128)) && echo " with signal $((rc - 128)) (SIG$(kill -l $((rc - 128))))" || echo " with status $rc") $2"
}

pipe_load() { # MODE FILE WHAT
  local out=$WORK/$1/pipe-$3.out n
  cli --pipe <"$2" >"$out" 2>&1 || { cat "$out" >&2; server_alive "$1" "during --pipe ($3)"; fail "redis-cli --pipe ($3) failed"; }
  n=$(grep -c '^\*' "$2" || true)
  grep -q "errors: 0, replies: $n" "$out" || { cat "$out" >&2; fail "$1: --pipe ($3) did not get $n replies without errors"; }
}

verify() { # MODE WHAT
  local out=$WORK/$1/check-$2.out
  cli <"$WORK/check.txt" >"$out" 2>"$out.err" || { server_alive "$1" "while reading keys back ($2)"; cat "$out.err" >&2; fail "$1: redis-cli failed reading the keys back ($2)"; }
  if ! cmp -s "$WORK/expected.txt" "$out"; then
    echo "FAIL($NAME): data read back ($2) differs from what was written, under $1:" >&2
    cmp "$WORK/expected.txt" "$out" >&2 || true
    diff "$WORK/expected.txt" "$out" | cut -c1-200 | head -n 20 >&2 || true
    exit 1
  fi
}

info_field() { # FIELD: from INFO (all sections)
  cli info everything | tr -d '\r' | awk -F: -v f="$1" '$1 == f {print $2}'
}

LAPS=
lap() { # NAME: time since the previous lap, collected in LAPS
  local now
  now=$(date +%s.%N)
  LAPS="$LAPS $1 $(awk -v a="$LAST_LAP" -v b="$now" 'BEGIN {printf "%.1fs", b - a}')"
  LAST_LAP=$now
}

session() {
  local mode=$1 dir=$WORK/$1 start end rc digest
  start=$(date +%s.%N)
  LAST_LAP=$start LAPS=
  start_server "$mode"
  note "$mode: redis-server pid $SERVER_PID on 127.0.0.1:$PORT ($( [[ $mode == hh ]] && echo "LD_PRELOAD=$LIB" || echo "no preload: Debian's jemalloc"))"

  timeout 300 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$REQUESTS" -c 50 -P 16 -t set,get,lpush,lpop,incr,hset -d 128 -q \
    >"$dir/bench.raw" 2>&1 || { cat "$dir/bench.raw" >&2; server_alive "$mode" "during redis-benchmark"; fail "redis-benchmark failed"; }
  tr '\r' '\n' <"$dir/bench.raw" | grep 'requests per second' >"$dir/bench.txt" || true
  [[ $(wc -l <"$dir/bench.txt") -eq 6 ]] || { cat "$dir/bench.raw" >&2; fail "$mode: redis-benchmark did not report 6 results"; }
  sed "s/^/[$NAME] $mode   /" "$dir/bench.txt"
  server_alive "$mode" "after redis-benchmark"
  [[ $(cli flushall) == OK ]] || fail "$mode: FLUSHALL failed"
  lap benchmark

  pipe_load "$mode" "$WORK/load.resp" load
  [[ $(cli dbsize) -eq $KEYS ]] || fail "$mode: DBSIZE is $(cli dbsize) after loading $KEYS keys"
  lap load
  verify "$mode" load
  digest=$(cli debug digest)
  echo "$digest" >"$dir/digest-load"
  lap verify

  [[ $(cli debug reload) == OK ]] || { server_alive "$mode" "during DEBUG RELOAD"; fail "$mode: DEBUG RELOAD failed"; }
  lap reload
  verify "$mode" reload
  [[ $(cli debug digest) == "$digest" ]] || fail "$mode: DEBUG DIGEST changed across DEBUG RELOAD"
  lap verify

  pipe_load "$mode" "$WORK/edit.resp" edit
  cli debug digest >"$dir/digest-edit"
  cli dbsize >"$dir/dbsize-edit"
  lap edits

  # memory introspection
  local used
  used=$(info_field used_memory)
  [[ $used =~ ^[0-9]+$ ]] && ((used > 10000000)) || fail "$mode: INFO used_memory is '$used' with the data loaded"
  [[ $(cli memory usage s:000028) =~ ^[0-9]+$ ]] || fail "$mode: MEMORY USAGE did not return a number"
  cli memory stats >"$dir/memstats" || fail "$mode: MEMORY STATS failed"
  grep -q 'dataset.bytes' "$dir/memstats" || fail "$mode: MEMORY STATS has no dataset.bytes"
  note "$mode: used_memory $used, used_memory_rss $(info_field used_memory_rss), mem_allocator $(info_field mem_allocator)"

  # everything freed by the lazy-free thread
  [[ $(cli flushall async) == OK ]] || fail "$mode: FLUSHALL ASYNC failed"
  local pending
  for _ in $(seq 1 300); do
    pending=$(info_field lazyfree_pending_objects)
    [[ $pending == 0 ]] && break
    sleep 0.1
  done
  [[ $pending == 0 ]] || fail "$mode: lazyfree_pending_objects still $pending after 30 s"
  [[ $(cli dbsize) -eq 0 ]] || fail "$mode: DBSIZE is not 0 after FLUSHALL ASYNC"
  server_alive "$mode" "before shutdown"
  lap flush

  cli shutdown nosave >"$dir/shutdown.out" 2>&1 || true
  rc=0
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "$mode: redis-server did not exit within 10 s of SHUTDOWN NOSAVE"
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  if grep -nE 'hardheap: |ERROR: ld\.so' "$dir/server.log" >&2; then
    fail "$mode: allocator message in the redis-server log (above)"
  fi
  if ((rc != 0)); then
    tail -n 30 "$dir/server.log" >&2
    fail "$mode: redis-server exited with status $rc$( ((rc > 128)) && echo " (signal SIG$(kill -l $((rc - 128))))")"
  fi
  grep -q 'ready to exit, bye bye' "$dir/server.log" || { tail -n 20 "$dir/server.log" >&2; fail "$mode: redis-server did not log a clean shutdown"; }
  end=$(date +%s.%N)
  lap shutdown
  note "$(printf '%-5s %6.2fs  server exited with status 0; steps:%s' "$mode" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$LAPS")"
}

session system
session hh

for f in digest-load digest-edit dbsize-edit; do
  cmp -s "$WORK/system/$f" "$WORK/hh/$f" ||
    fail "$f differs: '$(cat "$WORK/system/$f")' with redis' own allocator, '$(cat "$WORK/hh/$f")' under LD_PRELOAD=$LIB"
done
note "PASS: data identical (DEBUG DIGEST $(cat "$WORK/hh/digest-edit") after the edits, same as the baseline), clean shutdown"
