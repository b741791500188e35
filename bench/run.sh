#!/usr/bin/env bash
# bench/run.sh - build the hardheap benchmarks and run them under several
# malloc implementations (via LD_PRELOAD), interleaved over several rounds,
# then print markdown tables of medians and of ratios. See bench/README.md.
#
# Usage: bench/run.sh [--short]
#   --short        (or MODE=short) CI smoke mode: every benchmark once
#                  (ROUNDS=1, no warm-up) with about a fifth of its default
#                  work, at THREADS=2, under hardheap, hardheap-secure and
#                  glibc only (ALLOCATORS, THREADS and ITERS_<bench> still
#                  override). Fails only on wrong behaviour, never on time.
#
# Environment (all optional):
#   HH_BUILD       hardheap build dir holding libhardheap.so and
#                  libhardheap-secure.so            (default: build/ at the repository root)
#   ROUNDS         rounds per benchmark x allocator  (default 5; short: 1)
#   BENCHES        benchmarks to run       (default: all of them, see
#                  bench/README.md)
#   THREADS        thread counts for the multi-threaded benchmarks; each
#                  count is a separate table row (default "1 2 4"; short: 2)
#   ALLOCATORS     allocators to try, in table order (default "hardheap
#                  hardheap-secure glibc mimalloc jemalloc tcmalloc scudo"
#                  followed by every library found in PEERS_DIR; short:
#                  "hardheap hardheap-secure glibc")
#   PEERS_DIR      directory of extra allocator builds for benchmarks
#                  (default: shared/peers next to the repository, when it
#                  exists); libmimalloc-2.4.1.so is named mi24,
#                  libmimalloc-2.4.1-secure.so mi24-secure,
#                  libhardened_malloc.so hardened_malloc, libNAME.so NAME
#   REF            the mimalloc that ratios are also taken against (default:
#                  mi24 when it is measured, else mimalloc)
#   ITERS_<bench>  iteration count for one benchmark, e.g. ITERS_alloc_mixed=
#                  5000000 (default: the program's own, ~1 s with glibc; for
#                  the multi-threaded ones the total work, the same at every
#                  thread count, ~1 s with glibc at 2 threads)
#   LIB_<alloc>    explicit library path for an allocator, with '-' written
#                  as '_', e.g. LIB_hardheap_secure=/tmp/x/libhardheap-secure.so
#   ENV_<alloc>    environment settings for one allocator's runs, '-'
#                  written as '_', e.g. ENV_hh_rate100="HARDHEAP_GUARDED_SAMPLE_RATE=100"
#                  (with LIB_hh_rate100=... this measures one library under
#                  several settings in the same interleaved run)
#   CC, CFLAGS     compiler and extra flags       (default cc, none)
#   OUT_DIR        where binaries, logs and results go (default: a new
#                  mktemp -d directory; printed at the end)
#   WARMUP         1 = one short untimed run per pair first (default 1;
#                  short: 0)
#   BENCH_TIMEOUT  seconds before a single run is killed  (default 300;
#                  short: 120; hardened_malloc needs 60-100 s for large_mt)
#
# Output (in OUT_DIR): table.md (what is printed), results.tsv (every run),
# summary.tsv and geomean.tsv (the tables' numbers, for bench/report.py),
# meta.txt (machine, date, command, hardheap commit), logs/, bin/, libs/.
#
# Exit status: 0 if every run that was attempted succeeded (missing
# allocators are skipped, not errors); 1 if any run crashed, timed out,
# reported a verification error, printed a checksum different from the one
# most runs printed,
# or did not actually run under the requested allocator; 2 on usage or build
# errors. Timings never decide the exit status.

set -uo pipefail

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}
COMMAND="bench/run.sh${*:+ $*}"
for v in MODE ROUNDS BENCHES THREADS ALLOCATORS PEERS_DIR REF WARMUP HH_BUILD CC CFLAGS OUT_DIR; do
    [[ -n ${!v:-} ]] && COMMAND="$v=\"${!v}\" $COMMAND"
done
for v in $(compgen -v ITERS_) $(compgen -v LIB_) $(compgen -v ENV_); do COMMAND="$v='${!v}' $COMMAND"; done
MODE=${MODE:-full}
for arg in "$@"; do
    case $arg in
    -h | --help) usage; exit 0 ;;
    --short) MODE=short ;;
    *) echo "run.sh: unknown argument '$arg' (only --short; the rest is set with environment variables, see --help)" >&2; exit 2 ;;
    esac
done
case $MODE in
full | short) ;;
*) echo "run.sh: MODE must be full or short (got '$MODE')" >&2; exit 2 ;;
esac

# All benchmarks, in table order: name, 1 if multi-threaded (takes the
# thread count first), and the program's default work (the DEFAULT_* of its
# source; used to size the warm-up (1/20) and the short mode (1/5) runs).
ALL_BENCHES=(
    alloc_mixed:0:25000000
    realloc_heavy:0:1300000
    cfrac:0:300000
    espresso:0:40000
    glibc_simple:0:1000
    mleak:0:6000000
    malloc_large:0:5000
    larson:1:30000000
    xmalloc:1:16000000
    large_mt:1:300000
    alloc_test:1:10000000
    mstress:1:10000000
    rptest:1:3000000
    glibc_thread:1:2000
    cache_thrash:1:200000
    cache_scratch:1:200000
)
declare -A THREADED=() DEFAULT_N=()
ALL_NAMES=""
for e in "${ALL_BENCHES[@]}"; do
    IFS=: read -r n th d <<<"$e"
    THREADED[$n]=$th
    DEFAULT_N[$n]=$d
    ALL_NAMES+="${ALL_NAMES:+ }$n"
done

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SRC_DIR/.." && pwd)
HH_BUILD=${HH_BUILD:-$REPO_DIR/build}
if [[ $MODE == short ]]; then
    ROUNDS=${ROUNDS:-1}
    THREADS=${THREADS:-2}
    WARMUP=${WARMUP:-0}
    [[ -z ${ALLOCATORS:-} ]] && SHORT_DEFAULT_ALLOCATORS=1
    ALLOCATORS=${ALLOCATORS:-"hardheap hardheap-secure glibc"}
fi
ROUNDS=${ROUNDS:-5}
BENCHES=${BENCHES:-$ALL_NAMES}
THREADS=${THREADS:-"1 2 4"}
CC=${CC:-cc}
CFLAGS=${CFLAGS:-}
WARMUP=${WARMUP:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-$([[ $MODE == short ]] && echo 120 || echo 300)}
if [[ -z ${PEERS_DIR+x} && -d $REPO_DIR/../shared/peers ]]; then
    PEERS_DIR=$(cd "$REPO_DIR/../shared/peers" && pwd)
fi
PEERS_DIR=${PEERS_DIR:-}

die() { echo "run.sh: $*" >&2; exit 2; }
log() { echo "$*" >&2; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $BENCH_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer"
[[ -n ${THREADS// /} ]] || die "THREADS must list at least one thread count"
uniq_threads=""
for t in $THREADS; do
    if ! [[ $t =~ ^[1-9][0-9]*$ ]] || ((t > 256)); then
        die "THREADS must be positive integers <= 256 (got '$t')"
    fi
    [[ " $uniq_threads " == *" $t "* ]] || uniq_threads+="${uniq_threads:+ }$t"
done
THREADS=$uniq_threads

# Multi-threaded benchmarks take the thread count as their first argument
# (then the iteration count) and print threads= in their RESULT line.
is_threaded() {
    [[ ${THREADED[$1]:-0} == 1 ]]
}

if [[ -n ${OUT_DIR:-} ]]; then
    mkdir -p "$OUT_DIR" || die "cannot create OUT_DIR $OUT_DIR"
else
    OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hardheap-bench.XXXXXX") || die "mktemp failed"
fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BIN_DIR=$OUT_DIR/bin
LOG_DIR=$OUT_DIR/logs
RESULTS=$OUT_DIR/results.tsv
mkdir -p "$BIN_DIR" "$LOG_DIR" || die "cannot create $BIN_DIR / $LOG_DIR"
: >"$RESULTS"

# ---------------------------------------------------------------- build ----

for b in $BENCHES; do
    [[ -n ${THREADED[$b]:-} && -f $SRC_DIR/$b.c ]] || die "unknown benchmark '$b' (known: $ALL_NAMES)"
    # shellcheck disable=SC2086 # CFLAGS is a flag list
    "$CC" -std=c11 -O2 -Wall -Wextra -pthread $CFLAGS -o "$BIN_DIR/$b" "$SRC_DIR/$b.c" -ldl \
        || die "building $b with $CC failed"
done

# Table rows: one per single-threaded benchmark, one per thread count for the
# multi-threaded ones. VAR_B[i] / VAR_T[i] = benchmark / thread count.
VAR_B=()
VAR_T=()
for b in $BENCHES; do
    if is_threaded "$b"; then
        for t in $THREADS; do VAR_B+=("$b"); VAR_T+=("$t"); done
    else
        VAR_B+=("$b"); VAR_T+=(1)
    fi
done
NV=${#VAR_B[@]}

# ---------------------------------------------------------- allocators ----

MULTIARCH=$("$CC" -print-multiarch 2>/dev/null || true)
[[ -n $MULTIARCH ]] || MULTIARCH="$(uname -m)-linux-gnu"
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)

# First existing file among the given sonames in the usual library dirs,
# falling back to the ld.so cache.
find_system_lib() {
    local name d p
    for name in "$@"; do
        for d in "/usr/lib/$MULTIARCH" "/lib/$MULTIARCH" /usr/lib64 /usr/lib /usr/local/lib; do
            if [[ -f $d/$name ]]; then
                echo "$d/$name"
                return 0
            fi
        done
        if [[ -x $LDCONFIG ]]; then
            p=$("$LDCONFIG" -p 2>/dev/null | awk -v n="$name" '$1 == n { print $NF; exit }')
            if [[ -n $p && -f $p ]]; then
                echo "$p"
                return 0
            fi
        fi
    done
    return 1
}

# Newest LLVM Scudo standalone runtime (old and new compiler-rt layouts).
find_scudo() {
    local arch c
    arch=$(uname -m)
    local -a cands=()
    shopt -s nullglob
    for c in /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-"$arch".so \
        /usr/lib/llvm-*/lib/clang/*/lib/"$arch"-*linux-gnu/libclang_rt.scudo_standalone.so \
        /usr/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-"$arch".so \
        /usr/local/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-"$arch".so; do
        cands+=("$c")
    done
    shopt -u nullglob
    ((${#cands[@]})) || return 1
    printf '%s\n' "${cands[@]}" | sort -V | tail -n 1
}

# Extra allocators in PEERS_DIR: file name -> allocator name
# (libmimalloc-2.4.1.so -> mi24, libmimalloc-2.4.1-secure.so -> mi24-secure,
# libhardened_malloc.so -> hardened_malloc, libNAME.so -> NAME).
declare -A PEER_LIB=()
PEER_NAMES=()
if [[ -n $PEERS_DIR ]]; then
    [[ -d $PEERS_DIR ]] || die "PEERS_DIR $PEERS_DIR is not a directory"
    shopt -s nullglob
    while IFS= read -r f; do
        [[ -n $f ]] || continue
        base=${f##*/}
        base=${base%.so}
        base=${base#lib}
        if [[ $base =~ ^mimalloc-([0-9]+)\.([0-9]+)(\.[0-9]+)?(-.+)?$ ]]; then
            name="mi${BASH_REMATCH[1]}${BASH_REMATCH[2]}${BASH_REMATCH[4]}"
        else
            name=$base
        fi
        [[ -n ${PEER_LIB[$name]:-} ]] && continue
        PEER_LIB[$name]=$f
        PEER_NAMES+=("$name")
    done < <(printf '%s\n' "$PEERS_DIR"/lib*.so)
    shopt -u nullglob
    # by name, so that mi24 comes before mi24-secure
    ((${#PEER_NAMES[@]})) && mapfile -t PEER_NAMES < <(printf '%s\n' "${PEER_NAMES[@]}" | LC_ALL=C sort)
fi
KNOWN_ALLOCATORS="hardheap hardheap-secure glibc mimalloc jemalloc tcmalloc scudo"
ALLOCATORS=${ALLOCATORS:-"$KNOWN_ALLOCATORS${PEER_NAMES[*]:+ ${PEER_NAMES[*]}}"}

# Prints the library path for an allocator ("" for glibc); fails if absent.
locate_allocator() {
    local name=$1 override var
    var="LIB_${name//-/_}"
    override=${!var:-}
    if [[ -n $override ]]; then
        [[ -f $override ]] && { echo "$override"; return 0; }
        return 1
    fi
    case $name in
    glibc) echo "" ;;
    hardheap) [[ -f $HH_BUILD/libhardheap.so ]] && echo "$HH_BUILD/libhardheap.so" ;;
    hardheap-secure) [[ -f $HH_BUILD/libhardheap-secure.so ]] && echo "$HH_BUILD/libhardheap-secure.so" ;;
    mimalloc) find_system_lib libmimalloc.so.2 libmimalloc.so ;;
    jemalloc) find_system_lib libjemalloc.so.2 libjemalloc.so ;;
    tcmalloc) find_system_lib libtcmalloc_minimal.so.4 libtcmalloc_minimal.so libtcmalloc.so.4 ;;
    scudo) find_scudo ;;
    *) [[ -n ${PEER_LIB[$name]:-} ]] && echo "${PEER_LIB[$name]}" ;;
    esac
}

declare -A LIB=()
ACTIVE=()
SKIPPED=()
for a in $ALLOCATORS; do
    if p=$(locate_allocator "$a"); then
        LIB[$a]=$p
        ACTIVE+=("$a")
    else
        if [[ " $KNOWN_ALLOCATORS " != *" $a "* ]]; then
            log "run.sh: warning: unknown allocator '$a' (not in PEERS_DIR; set LIB_${a//-/_}=/path/lib.so to add it)"
        fi
        SKIPPED+=("$a")
    fi
done
((${#ACTIVE[@]})) || die "no allocator available"
if [[ $MODE == short && -n ${SHORT_DEFAULT_ALLOCATORS:-} ]] && [[ -z ${LIB[hardheap]+x} || -z ${LIB[hardheap-secure]+x} ]]; then
    die "short mode: libhardheap.so and libhardheap-secure.so must both be in $HH_BUILD (build first, or set HH_BUILD)"
fi

# The mimalloc that ratios are taken against besides glibc: the newest
# release build from PEERS_DIR that is measured (mi24 for 2.4.x), else
# Debian's.
if [[ -z ${REF:-} ]]; then
    REF='' best=-1
    for c in "${ACTIVE[@]}"; do
        if [[ $c =~ ^mi([0-9]+)$ ]] && ((BASH_REMATCH[1] > best)); then
            best=${BASH_REMATCH[1]} REF=$c
        fi
    done
    [[ -z $REF && -n ${LIB[mimalloc]+x} ]] && REF=mimalloc
fi

# Snapshot the hardheap libraries: the allocator may be rebuilt while the
# benchmarks run, and every round must measure the same (complete) binary.
mkdir -p "$OUT_DIR/libs" || die "cannot create $OUT_DIR/libs"
declare -A LIB_ORIG=()
for a in "${ACTIVE[@]}"; do
    case $a in
    hardheap | hardheap-secure)
        LIB_ORIG[$a]="${LIB[$a]} (built $(date -u -r "${LIB[$a]}" '+%Y-%m-%d %H:%M:%S UTC'))"
        cp -L "${LIB[$a]}" "$OUT_DIR/libs/${LIB[$a]##*/}" || die "cannot copy ${LIB[$a]}"
        LIB[$a]="$OUT_DIR/libs/${LIB[$a]##*/}"
        ;;
    esac
done

log "hardheap bench: output in $OUT_DIR"
for a in "${ACTIVE[@]}"; do
    log "  $(printf '%-16s' "$a") ${LIB_ORIG[$a]:-${LIB[$a]:-(system glibc, no preload)}}"
done
for a in ${SKIPPED[@]+"${SKIPPED[@]}"}; do
    log "  $(printf '%-16s' "$a") skipped: library not found"
done

# ----------------------------------------------------------- one run ------

TIMEOUT=()
command -v timeout >/dev/null 2>&1 && TIMEOUT=(timeout -k 10 "$BENCH_TIMEOUT")

field() { # field KEY LINE
    local kv
    for kv in $2; do
        [[ $kv == "$1="* ]] && { echo "${kv#*=}"; return 0; }
    done
    return 1
}

# run_one BENCH THREADS ALLOC ITERS TAG -> sets R_STATUS ("ok" or reason),
# R_TIME, R_RSS, R_SUM, R_ITERS. THREADS is only passed to (and checked for)
# the multi-threaded benchmarks.
run_one() {
    local bench=$1 threads=$2 alloc=$3 iters=$4 tag=$5
    local lib=${LIB[$alloc]} out err rc line from want name=$1 env_var="ENV_${3//-/_}"
    local -a cmd=("$BIN_DIR/$bench") settings=()
    [[ -n ${!env_var:-} ]] && read -ra settings <<<"${!env_var}"
    if is_threaded "$bench"; then
        name="$bench.t$threads"
        cmd+=("$threads")
    fi
    out="$LOG_DIR/$name.$alloc.$tag.out"
    err="$LOG_DIR/$name.$alloc.$tag.err"
    [[ -n $iters ]] && cmd+=("$iters")
    R_STATUS=ok R_TIME=nan R_RSS=nan R_SUM=- R_ITERS=-
    if [[ -n $lib ]]; then
        ${TIMEOUT[@]+"${TIMEOUT[@]}"} env -u LD_PRELOAD ${settings[@]+"${settings[@]}"} LD_PRELOAD="$lib" "${cmd[@]}" >"$out" 2>"$err"
    else
        ${TIMEOUT[@]+"${TIMEOUT[@]}"} env -u LD_PRELOAD ${settings[@]+"${settings[@]}"} "${cmd[@]}" >"$out" 2>"$err"
    fi
    rc=$?
    line=$(grep -m1 '^RESULT ' "$out" 2>/dev/null)
    if ((rc == 124 || rc == 137)) && [[ ${#TIMEOUT[@]} -gt 0 && -z $line ]]; then
        R_STATUS="timeout after ${BENCH_TIMEOUT}s"
    elif ((rc > 128)); then
        R_STATUS="crash (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))))"
    elif ((rc == 3)); then
        R_STATUS="out of memory"
    elif [[ -z $line ]]; then
        R_STATUS="no RESULT line (exit $rc)"
    fi
    if [[ -n $line ]]; then
        R_TIME=$(field time_s "$line") || R_TIME=nan
        R_RSS=$(field maxrss_kb "$line") || R_RSS=nan
        R_SUM=$(field checksum "$line") || R_SUM=-
        R_ITERS=$(field iters "$line") || R_ITERS=-
        local nerr
        nerr=$(field errors "$line") || nerr="?"
        if [[ $R_STATUS == ok && $nerr != 0 ]]; then
            R_STATUS="verification errors: $nerr"
        elif [[ $R_STATUS == ok && $rc != 0 ]]; then
            R_STATUS="exit $rc"
        elif [[ $R_STATUS == ok ]] && is_threaded "$bench" &&
            [[ $(field threads "$line" || echo "?") != "$threads" ]]; then
            R_STATUS="ran with threads=$(field threads "$line" || echo "?"), expected $threads"
        fi
        # Did the preload take effect? ld.so only warns and falls back to
        # glibc when a preload cannot be loaded.
        from=$(field malloc_from "$line") || from=unknown
        if [[ $R_STATUS == ok ]]; then
            if [[ -n $lib ]]; then
                want=$(readlink -f "$lib")
                [[ $(readlink -f "$from" 2>/dev/null) == "$want" ]] ||
                    R_STATUS="preload not effective (malloc from $from)"
            else
                [[ ${from##*/} == libc.so* ]] ||
                    R_STATUS="expected glibc malloc, got $from"
            fi
        fi
    fi
    if [[ $R_STATUS == ok ]] && grep -q 'cannot be preloaded' "$err" 2>/dev/null; then
        R_STATUS="preload failed: $(grep -m1 'cannot be preloaded' "$err")"
    fi
    [[ $R_STATUS == ok ]] || R_STATUS="$R_STATUS; see $err"
    return 0
}

# Work for one run: ITERS_<bench> when set, else a fifth of the default in
# short mode, else "" (the program's own default).
iters_for() {
    local var="ITERS_$1"
    if [[ -n ${!var:-} ]]; then
        echo "${!var}"
    elif [[ $MODE == short ]]; then
        echo $(((DEFAULT_N[$1] + 4) / 5))
    fi
}

for b in $BENCHES; do
    n=$(iters_for "$b")
    [[ -z $n || $n =~ ^[1-9][0-9]*$ ]] || die "ITERS_$b must be a positive integer (got '$n')"
done

# Which hardheap was measured: the last commit that changed the allocator
# (src/, include/, CMakeLists.txt) in the source tree of HH_BUILD (from its
# CMakeCache.txt), "-dirty" when those files differ from it, and that
# tree's HEAD.
HH_COMMIT=unknown HH_HEAD=unknown
if [[ -n ${LIB[hardheap]+x}${LIB[hardheap-secure]+x} && -f $HH_BUILD/CMakeCache.txt ]]; then
    hh_src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$HH_BUILD/CMakeCache.txt" | head -n 1)
    if [[ -n $hh_src ]] && c=$(git -C "$hh_src" log -1 --format=%H -- src include CMakeLists.txt 2>/dev/null) &&
        [[ -n $c ]]; then
        HH_COMMIT=$c
        HH_HEAD=$(git -C "$hh_src" rev-parse HEAD 2>/dev/null || echo unknown)
        [[ -n $(git -C "$hh_src" status --porcelain -- src include CMakeLists.txt 2>/dev/null) ]] &&
            HH_COMMIT="$c-dirty"
    fi
fi

# -------------------------------------------------------------- warmup ----

declare -A BROKEN=()
if [[ $WARMUP == 1 ]]; then
    log "warmup (short untimed runs) ..."
    for ((v = 0; v < NV; v++)); do
        b=${VAR_B[v]} t=${VAR_T[v]}
        n=$(iters_for "$b")
        n=$(((${n:-${DEFAULT_N[$b]}} + 19) / 20))
        for a in "${ACTIVE[@]}"; do
            run_one "$b" "$t" "$a" "$n" warmup
            if [[ $R_STATUS != ok ]]; then
                log "  $b$(is_threaded "$b" && echo " ($t threads)") / $a: FAILED in warmup: $R_STATUS"
                BROKEN[$b.$t.$a]=1
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$t" "$a" warmup "$R_STATUS" \
                    "$R_TIME" "$R_RSS" "$R_SUM" "$R_ITERS" >>"$RESULTS"
            fi
        done
    done
fi

# -------------------------------------------------------------- rounds ----
# Round-major order: every round runs every benchmark under every allocator,
# so slow drifts of the machine's speed hit all allocators alike. Within a
# round the allocator order is rotated so nobody always runs first.

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
NA=${#ACTIVE[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((v = 0; v < NV; v++)); do
        b=${VAR_B[v]} t=${VAR_T[v]}
        label=$b
        is_threaded "$b" && label="$b/${t}t"
        n=$(iters_for "$b")
        for ((k = 0; k < NA; k++)); do
            a=${ACTIVE[(k + r - 1) % NA]}
            [[ -n ${BROKEN[$b.$t.$a]:-} ]] && continue
            run_one "$b" "$t" "$a" "$n" "r$r"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$t" "$a" "$r" "$R_STATUS" \
                "$R_TIME" "$R_RSS" "$R_SUM" "$R_ITERS" >>"$RESULTS"
            if [[ $R_STATUS == ok ]]; then
                log "[round $r/$ROUNDS] $(printf '%-14s %-16s %8.3f s %9s KiB  checksum %s' \
                    "$label" "$a" "$R_TIME" "$R_RSS" "$R_SUM")"
            else
                log "[round $r/$ROUNDS] $(printf '%-14s %-16s' "$label" "$a") FAILED: $R_STATUS"
            fi
        done
    done
done

# ------------------------------------------------------------- summary ----

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
MEM_GIB=$(awk '/^MemTotal:/ { printf("%.0f", $2 / 1048576); exit }' /proc/meminfo 2>/dev/null)
CC_VERSION=$("$CC" --version 2>/dev/null | head -n 1)
META=$OUT_DIR/meta.txt
{
    printf 'date\t%s\n' "$START_DATE"
    printf 'host\t%s\n' "$(uname -srm)"
    printf 'cpu\t%s\n' "${CPU:-?}"
    printf 'cores\t%s\n' "$(nproc 2>/dev/null || echo ?)"
    printf 'memory_gib\t%s\n' "${MEM_GIB:-?}"
    printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")"
    printf 'glibc\t%s\n' "$(getconf GNU_LIBC_VERSION 2>/dev/null || echo ?)"
    printf 'compiler\t%s\n' "$CC_VERSION"
    printf 'mode\t%s\n' "$MODE"
    printf 'rounds\t%s\n' "$ROUNDS"
    printf 'threads\t%s\n' "$THREADS"
    printf 'benches\t%s\n' "$BENCHES"
    printf 'threaded\t%s\n' "$(for b in $BENCHES; do is_threaded "$b" && printf '%s ' "$b"; done)"
    printf 'command\t%s\n' "$COMMAND"
    printf 'nice\t%s\n' "$(nice 2>/dev/null || echo 0)"
    printf 'hardheap_commit\t%s\n' "$HH_COMMIT"
    printf 'hardheap_tree_head\t%s\n' "$HH_HEAD"
    printf 'ref\t%s\n' "${REF:-}"
    printf 'allocators\t%s\n' "${ACTIVE[*]}"
    printf 'skipped\t%s\n' "${SKIPPED[*]+"${SKIPPED[*]}"}"
    for a in "${ACTIVE[@]}"; do
        printf 'lib.%s\t%s\n' "$a" "${LIB_ORIG[$a]:-${LIB[$a]:-system glibc (no preload)}}"
    done
} >"$META"

TABLE=$OUT_DIR/table.md
SUMMARY=$OUT_DIR/summary.tsv
GEOMEAN=$OUT_DIR/geomean.tsv
{
    echo "## hardheap benchmarks"
    echo
    echo "- date: $START_DATE; host: $(uname -srm); CPU: ${CPU:-?}, $(nproc 2>/dev/null || echo ?) cores"
    echo "- compiler: $CC_VERSION (-O2); mode: $MODE; rounds: $ROUNDS (interleaved, medians reported)"
    for b in $BENCHES; do
        is_threaded "$b" && { echo "- thread counts for the multi-threaded benchmarks: $THREADS"; break; }
    done
    echo "- hardheap included: $([[ -n ${LIB[hardheap]:-}${LIB[hardheap-secure]:-} ]] && echo "yes ($HH_BUILD; allocator sources at commit $HH_COMMIT, tree HEAD $HH_HEAD)" || echo "NO (no libraries in $HH_BUILD)")"
    echo "- ratios against glibc and against ${REF:-(no mimalloc measured)}"
    for a in "${ACTIVE[@]}"; do
        echo "- $a: ${LIB_ORIG[$a]:-${LIB[$a]:-system glibc (no preload)}}"
    done
    for a in ${SKIPPED[@]+"${SKIPPED[@]}"}; do
        echo "- $a: skipped (library not found)"
    done
    echo
} >"$TABLE"

VARIANTS=()
for ((v = 0; v < NV; v++)); do
    VARIANTS+=("${VAR_B[v]}:${VAR_T[v]}:$(is_threaded "${VAR_B[v]}" && echo 1 || echo 0)")
done

awk -F'\t' -v variants="${VARIANTS[*]}" -v allocs="${ACTIVE[*]}" -v ref="${REF:-}" \
    -v summary="$SUMMARY" -v geomean="$GEOMEAN" '
function sort_n(arr, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = arr[i]
        for (j = i - 1; j >= 1 && arr[j] + 0 > v + 0; j--) arr[j + 1] = arr[j]
        arr[j + 1] = v
    }
}
function median(arr, n) {
    if (n == 0) return ""
    sort_n(arr, n)
    if (n % 2) return arr[(n + 1) / 2]
    return (arr[n / 2] + arr[n / 2 + 1]) / 2
}
# Failures are summarised per reason ("crash (SIGSEGV) x3, timeout ... x2"),
# plus the log of the last one.
function note_fail(key, msg,    reason, lg) {
    reason = msg; lg = ""
    if (match(msg, /; see [^ ]*$/)) {
        reason = substr(msg, 1, RSTART - 1); lg = substr(msg, RSTART + 6)
    }
    if (!((key, reason) in nreason)) reasons[key] = reasons[key] (reasons[key] == "" ? "" : SUBSEP) reason
    nreason[key, reason]++
    nfail[key]++
    if (lg != "") lastlog[key] = lg
}
function fail_notes(key,    r, n, i, out) {
    n = split(reasons[key], r, SUBSEP)
    out = ""
    for (i = 1; i <= n; i++)
        out = out (i > 1 ? ", " : "") r[i] (nreason[key, r[i]] > 1 ? " x" nreason[key, r[i]] : "")
    if (key in lastlog) out = out "; see " lastlog[key]
    return out
}
# Median over the rounds in which both a and b succeeded of
# X[a, round] / X[b, round] (X: "T" time or "M" peak RSS).
function paired(var, a, b, what,    r, n, q, x, y) {
    if (b == "") return ""
    n = 0
    for (r = 1; r <= maxround; r++) {
        if (!((var, a, r) in OK) || !((var, b, r) in OK)) continue
        x = (what == "T") ? T[var, a, r] : M[var, a, r]
        y = (what == "T") ? T[var, b, r] : M[var, b, r]
        if (y + 0 <= 0) continue
        q[++n] = x / y
    }
    return median(q, n)
}
function fmt_ratio(x) { return x == "" ? "n/a" : sprintf("%.2fx", x) }
function num(x) { return x == "" ? "" : sprintf("%.4f", x) }
# results.tsv: bench threads alloc round status time rss checksum iters
{
    var = $1 SUBSEP $2
    key = var SUBSEP $3
    if ($4 == "warmup") { note_fail(key, "warmup failed: " $5); next }
    if ($5 == "ok") {
        i = ++nok[key]
        TL[key, i] = $6; ML[key, i] = $7; C[key, i] = $8
        T[var, $3, $4] = $6; M[var, $3, $4] = $7; OK[var, $3, $4] = $8
        if ($4 + 0 > maxround) maxround = $4 + 0
        if ($3 == "glibc") gl[var, $8]++
        any[var, $8]++
        iters[$1] = $9
    } else {
        note_fail(key, $5)
    }
    nrun[key]++
}
END {
    nv = split(variants, V, " ")
    na = split(allocs, A, " ")
    refl = ref == "" ? "mimalloc" : ref
    bad = 0
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", "bench", "threads", "allocator",
        "rounds_ok", "rounds_run", "time_s", "time_min", "time_max", "rss_kib", "time_vs_glibc",
        "time_vs_ref", "rss_vs_glibc", "rss_vs_ref", "notes") > summary
    print "| benchmark | threads | allocator | median time (s) | time vs glibc | time vs " refl " | median peak RSS (MiB) | RSS vs glibc | RSS vs " refl " | time min-max (s) | rounds ok | notes |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (vi = 1; vi <= nv; vi++) {
        split(V[vi], vp, ":")
        b = vp[1]; th = vp[2]; var = b SUBSEP th
        label[vi] = vp[3] == 1 ? b "/" th "t" : b
        # reference checksum: the one printed by most successful runs, glibc
        # runs breaking ties
        refsum = ""; best = 0
        for (k in any) {
            split(k, p, SUBSEP)
            if (p[1] != b || p[2] != th) continue
            score = any[k] + ((k in gl) ? 0.5 * gl[k] / (gl[k] + 1) : 0)
            if (score > best) { best = score; refsum = p[3] }
        }
        refsums[vi] = refsum
        # a run with a wrong checksum does not count in any median or ratio
        ndrop = 0
        for (k in OK) {
            split(k, p, SUBSEP)
            if (p[1] == b && p[2] == th && OK[k] != refsum) drop[++ndrop] = k
        }
        for (i = 1; i <= ndrop; i++) delete OK[drop[i]]
        for (ai = 1; ai <= na; ai++) {
            a = A[ai]; key = var SUBSEP a; n = nok[key] + 0
            notes = ""
            if (nfail[key] > 0) { notes = sprintf("FAILED %d run(s): %s", nfail[key], fail_notes(key)); bad = 1 }
            mism = 0; m = 0
            for (i = 1; i <= n; i++) {
                if (C[key, i] != refsum) { mism++; continue }
                m++; t[m] = TL[key, i]; r[m] = ML[key, i]
            }
            if (mism > 0) {
                notes = notes (notes == "" ? "" : "; ") sprintf("CHECKSUM MISMATCH in %d/%d rounds (expected %s)", mism, n, refsum)
                bad = 1
            }
            if (m == 0) {
                printf("| %s | %s | %s | - | - | - | - | - | - | - | 0/%d | %s |\n", b, th, a, nrun[key] + 0, notes)
                printf("%s\t%s\t%s\t0\t%d\t\t\t\t\t\t\t\t\t%s\n", b, th, a, nrun[key] + 0, notes) > summary
                continue
            }
            medt = median(t, m); medr = median(r, m); lo = t[1]; hi = t[m]
            tg = paired(var, a, "glibc", "T"); tr = paired(var, a, ref, "T")
            rg = paired(var, a, "glibc", "M"); rr = paired(var, a, ref, "M")
            printf("| %s | %s | %s | %.3f | %s | %s | %.1f | %s | %s | %.3f-%.3f | %d/%d | %s |\n",
                b, th, a, medt, fmt_ratio(tg), fmt_ratio(tr), medr / 1024, fmt_ratio(rg), fmt_ratio(rr),
                lo, hi, m, nrun[key], notes)
            printf("%s\t%s\t%s\t%d\t%d\t%.6f\t%.6f\t%.6f\t%d\t%s\t%s\t%s\t%s\t%s\n", b, th, a, m, nrun[key],
                medt, lo, hi, medr, num(tg), num(tr), num(rg), num(rr), notes) > summary
            if (tg != "") { lg_tg[a] += log(tg); n_tg[a]++ }
            if (tr != "") { lg_tr[a] += log(tr); n_tr[a]++ }
            if (rg != "") { lg_rg[a] += log(rg); n_rg[a]++ }
            if (rr != "") { lg_rr[a] += log(rr); n_rr[a]++ }
        }
    }
    print ""
    printf("Iterations per run:")
    for (vi = 1; vi <= nv; vi++) {
        split(V[vi], vp, ":")
        if (vp[1] in shown) continue
        shown[vp[1]] = 1
        printf(" %s=%s", vp[1], (vp[1] in iters) ? iters[vp[1]] : "?")
    }
    print ""
    printf("Reference checksums (majority of runs):")
    for (vi = 1; vi <= nv; vi++) printf(" %s=%s", label[vi], refsums[vi] == "" ? "none" : refsums[vi])
    print ""
    print ""
    print "Geometric means over the table rows (each row: the median over the rounds of the per-round ratio; rows where the allocator or the reference failed are left out, `rows` counts the ones used):"
    print ""
    print "| allocator | rows | time vs glibc | time vs " refl " | peak RSS vs glibc | peak RSS vs " refl " |"
    print "|---|---:|---:|---:|---:|---:|"
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", "allocator", "rows_glibc", "rows_ref", "time_vs_glibc",
        "time_vs_ref", "rss_vs_glibc", "rss_vs_ref") > geomean
    for (ai = 1; ai <= na; ai++) {
        a = A[ai]
        g1 = n_tg[a] ? exp(lg_tg[a] / n_tg[a]) : ""
        g2 = n_tr[a] ? exp(lg_tr[a] / n_tr[a]) : ""
        g3 = n_rg[a] ? exp(lg_rg[a] / n_rg[a]) : ""
        g4 = n_rr[a] ? exp(lg_rr[a] / n_rr[a]) : ""
        rows = (n_tg[a] + 0) "" ((ref != "" && n_tr[a] + 0 != n_tg[a] + 0) ? " (" n_tr[a] + 0 " vs " ref ")" : "")
        printf("| %s | %s | %s | %s | %s | %s |\n", a, rows, fmt_ratio(g1), fmt_ratio(g2), fmt_ratio(g3), fmt_ratio(g4))
        printf("%s\t%d\t%d\t%s\t%s\t%s\t%s\n", a, n_tg[a], n_tr[a], num(g1), num(g2), num(g3), num(g4)) > geomean
    }
    print ""
    print "A ratio is, for each round, the allocator'"'"'s time (resp. peak RSS) divided by that of glibc (resp. " refl ") measured in the same round of the same run at the same thread count; the table shows the median of these per-round ratios. Below 1.00x is faster (smaller). Peak RSS is ru_maxrss of the whole benchmark process. Multi-threaded benchmarks do the same total work at every thread count (iterations = total)."
    exit bad
}' "$RESULTS" >>"$TABLE"
status=$?

cat "$TABLE"
log ""
log "raw results: $RESULTS; logs: $LOG_DIR; table: $TABLE; report data: $SUMMARY $GEOMEAN $META"
log "(markdown report with charts: bench/report.py $OUT_DIR)"
if ((status != 0)); then
    log "run.sh: FAILURE: at least one benchmark run crashed, failed verification or printed a wrong checksum (see notes column)"
    exit 1
fi
exit 0
