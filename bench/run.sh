#!/usr/bin/env bash
# bench/run.sh - build the hardheap benchmarks and run them under several
# malloc implementations (via LD_PRELOAD), interleaved over several rounds,
# then print a markdown table of medians. See bench/README.md.
#
# Environment (all optional):
#   HH_BUILD       hardheap build dir holding libhardheap.so and
#                  libhardheap-secure.so            (default: build/ at the repository root)
#   ROUNDS         rounds per benchmark x allocator  (default 5)
#   BENCHES        benchmarks to run       (default "alloc_mixed realloc_heavy
#                  larson xmalloc large_mt")
#   THREADS        thread counts for the multi-threaded benchmarks (larson,
#                  xmalloc, large_mt); each count is a separate table row
#                  (default "1 2 4")
#   ALLOCATORS     allocators to try, in table order (default "hardheap
#                  hardheap-secure glibc mimalloc jemalloc tcmalloc scudo")
#   ITERS_<bench>  iteration count for one benchmark, e.g. ITERS_alloc_mixed=
#                  5000000 (default: the program's own, ~1 s with glibc; for
#                  the multi-threaded ones the total work, the same at every
#                  thread count, ~1 s with glibc at 2 threads)
#   LIB_<alloc>    explicit library path for an allocator, with '-' written
#                  as '_', e.g. LIB_hardheap_secure=/tmp/x/libhardheap-secure.so
#   CC, CFLAGS     compiler and extra flags       (default cc, none)
#   OUT_DIR        where binaries, logs and results go (default: a new
#                  mktemp -d directory; printed at the end)
#   WARMUP         1 = one short untimed run per pair first (default 1)
#   BENCH_TIMEOUT  seconds before a single run is killed  (default 120)
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
case "${1:-}" in
-h | --help) usage; exit 0 ;;
"") ;;
*) echo "run.sh: no arguments expected (use environment variables; see --help)" >&2; exit 2 ;;
esac

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HH_BUILD=${HH_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
ROUNDS=${ROUNDS:-5}
BENCHES=${BENCHES:-"alloc_mixed realloc_heavy larson xmalloc large_mt"}
THREADS=${THREADS:-"1 2 4"}
ALLOCATORS=${ALLOCATORS:-"hardheap hardheap-secure glibc mimalloc jemalloc tcmalloc scudo"}
CC=${CC:-cc}
CFLAGS=${CFLAGS:-}
WARMUP=${WARMUP:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}

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
    case $1 in
    larson | xmalloc | large_mt) return 0 ;;
    *) return 1 ;;
    esac
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
    [[ -f $SRC_DIR/$b.c ]] || die "unknown benchmark '$b' (no $SRC_DIR/$b.c)"
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
    *) return 1 ;;
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
        case $a in
        hardheap | hardheap-secure | glibc | mimalloc | jemalloc | tcmalloc | scudo)
            SKIPPED+=("$a") ;;
        *) log "run.sh: warning: unknown allocator '$a' (set LIB_${a//-/_}=/path/lib.so to add it)"
            SKIPPED+=("$a") ;;
        esac
    fi
done
((${#ACTIVE[@]})) || die "no allocator available"

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
    local lib=${LIB[$alloc]} out err rc line from want name=$1
    local -a cmd=("$BIN_DIR/$bench")
    if is_threaded "$bench"; then
        name="$bench.t$threads"
        cmd+=("$threads")
    fi
    out="$LOG_DIR/$name.$alloc.$tag.out"
    err="$LOG_DIR/$name.$alloc.$tag.err"
    [[ -n $iters ]] && cmd+=("$iters")
    R_STATUS=ok R_TIME=nan R_RSS=nan R_SUM=- R_ITERS=-
    if [[ -n $lib ]]; then
        ${TIMEOUT[@]+"${TIMEOUT[@]}"} env -u LD_PRELOAD LD_PRELOAD="$lib" "${cmd[@]}" >"$out" 2>"$err"
    else
        ${TIMEOUT[@]+"${TIMEOUT[@]}"} env -u LD_PRELOAD "${cmd[@]}" >"$out" 2>"$err"
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

iters_for() {
    local var="ITERS_$1"
    echo "${!var:-}"
}

# -------------------------------------------------------------- warmup ----

declare -A BROKEN=()
if [[ $WARMUP == 1 ]]; then
    log "warmup (short untimed runs) ..."
    for ((v = 0; v < NV; v++)); do
        b=${VAR_B[v]} t=${VAR_T[v]}
        for a in "${ACTIVE[@]}"; do
            n=$(iters_for "$b")
            if [[ -n $n ]]; then n=$(((n + 19) / 20)); else
                case $b in
                alloc_mixed) n=1000000 ;;
                realloc_heavy) n=50000 ;;
                larson) n=1500000 ;;
                xmalloc) n=800000 ;;
                large_mt) n=15000 ;;
                *) n= ;;
                esac
            fi
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

TABLE=$OUT_DIR/table.md
{
    echo "## hardheap benchmarks"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(uname -srm); CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo ?), $(nproc 2>/dev/null || echo ?) cores"
    echo "- compiler: $("$CC" --version 2>/dev/null | head -n 1) (-O2); rounds: $ROUNDS (interleaved, medians reported)"
    for b in $BENCHES; do
        is_threaded "$b" && { echo "- thread counts for the multi-threaded benchmarks: $THREADS"; break; }
    done
    echo "- hardheap included: $([[ -n ${LIB[hardheap]:-}${LIB[hardheap-secure]:-} ]] && echo "yes ($HH_BUILD)" || echo "NO (no libraries in $HH_BUILD)")"
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

awk -F'\t' -v variants="${VARIANTS[*]}" -v allocs="${ACTIVE[*]}" '
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
function ratio(x, base) {
    if (x == "" || base == "" || base + 0 <= 0) return "n/a"
    return sprintf("%.2fx", x / base)
}
# results.tsv: bench threads alloc round status time rss checksum iters
{
    var = $1 SUBSEP $2
    key = var SUBSEP $3
    if ($4 == "warmup") { note_fail(key, "warmup failed: " $5); next }
    if ($5 == "ok") {
        i = ++nok[key]
        T[key, i] = $6; M[key, i] = $7; C[key, i] = $8
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
    bad = 0
    print "| benchmark | threads | allocator | median time (s) | vs glibc | vs mimalloc | median peak RSS (MiB) | RSS vs mimalloc | time min-max (s) | rounds ok | notes |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for (vi = 1; vi <= nv; vi++) {
        split(V[vi], vp, ":")
        b = vp[1]; th = vp[2]; var = b SUBSEP th
        label[vi] = vp[3] == 1 ? b "/" th "t" : b
        # reference checksum: the one printed by most successful runs, glibc
        # runs breaking ties
        ref = ""; best = 0
        for (k in any) {
            split(k, p, SUBSEP)
            if (p[1] != b || p[2] != th) continue
            score = any[k] + ((k in gl) ? 0.5 * gl[k] / (gl[k] + 1) : 0)
            if (score > best) { best = score; ref = p[3] }
        }
        refsum[vi] = ref
        for (ai = 1; ai <= na; ai++) {
            a = A[ai]; key = var SUBSEP a; n = nok[key] + 0
            for (i = 1; i <= n; i++) { t[i] = T[key, i]; m[i] = M[key, i] }
            med[a] = median(t, n); rss[a] = median(m, n)
            lo[a] = t[1]; hi[a] = t[n]
            mism = 0
            for (i = 1; i <= n; i++) if (C[key, i] != ref) mism++
            mismatch[a] = mism
        }
        for (ai = 1; ai <= na; ai++) {
            a = A[ai]; key = var SUBSEP a; n = nok[key] + 0
            notes = ""
            if (nfail[key] > 0) { notes = sprintf("FAILED %d run(s): %s", nfail[key], fail_notes(key)); bad = 1 }
            if (mismatch[a] > 0) {
                notes = notes (notes == "" ? "" : "; ") sprintf("CHECKSUM MISMATCH in %d/%d rounds (expected %s)", mismatch[a], n, ref)
                bad = 1
            }
            if (n == 0) {
                printf("| %s | %s | %s | - | - | - | - | - | - | 0/%d | %s |\n", b, th, a, nrun[key] + 0, notes)
                continue
            }
            printf("| %s | %s | %s | %.3f | %s | %s | %.1f | %s | %.3f-%.3f | %d/%d | %s |\n",
                b, th, a, med[a], ratio(med[a], med["glibc"]), ratio(med[a], med["mimalloc"]),
                rss[a] / 1024, ratio(rss[a], rss["mimalloc"]), lo[a], hi[a], n, nrun[key], notes)
        }
        delete med; delete rss; delete lo; delete hi; delete mismatch
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
    for (vi = 1; vi <= nv; vi++) printf(" %s=%s", label[vi], refsum[vi] == "" ? "none" : refsum[vi])
    print ""
    print ""
    print "Ratios are median time (resp. median peak RSS) / the same median of glibc (resp. mimalloc) measured in the same run at the same thread count; below 1.00x is faster (smaller). Peak RSS is ru_maxrss of the whole benchmark process. Multi-threaded benchmarks do the same total work at every thread count (iterations = total)."
    exit bad
}' "$RESULTS" >>"$TABLE"
status=$?

cat "$TABLE"
log ""
log "raw results: $RESULTS; logs: $LOG_DIR; table: $TABLE"
if ((status != 0)); then
    log "run.sh: FAILURE: at least one benchmark run crashed, failed verification or printed a wrong checksum (see notes column)"
    exit 1
fi
exit 0
