#!/usr/bin/env bash
# Run hardheap's libFuzzer harnesses (fuzz/) for a while.
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [-w WORKERS] [-b BUILD] [-c CORPUS] [-m] [-r] [HARNESS ...]
#
#   HARNESS    fuzz_api_ops fuzz_api_ops_secure fuzz_threads_ops fuzz_threads_ops_secure
#              fuzz_misuse_secure fuzz_options fuzz_options_secure fuzz_guarded_secure
#              (names without the fuzz_ prefix work too; default: all of them)
#   -t SECONDS how long each harness runs (default 300)
#   -j JOBS    libFuzzer -jobs for each harness (default 1: one process, no fork)
#   -w WORKERS libFuzzer -workers for each harness (default: JOBS)
#   -b BUILD   build directory (default build-fuzz; configured with clang and HH_FUZZ=ON
#              if it is not yet)
#   -c CORPUS  where the corpora grow, one directory per harness (default BUILD/corpus);
#              the committed seeds in fuzz/corpus/<name>/ are read, never written
#   -m         afterwards, add to fuzz/corpus/<name>/ at most 60 of the inputs found, those
#              that keep the most coverage (fuzz/select_seeds.py), to commit as seeds; the
#              seed corpora stay small because ctest runs every seed before fuzzing
#   -r         afterwards, write the coverage report of src/ (scripts/fuzz-coverage.sh)
#
# The chosen harnesses run at the same time, each under nice -n 10; their logs
# and any crash files (crash-*, timeout-*, oom-*) go to BUILD/fuzz-runs/<harness>/.
# A crash found this way belongs in tests/fuzz_regressions/<name>/ (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300 jobs=1 workers="" build=build-fuzz corpus="" merge=0 report=0
while getopts "t:j:w:b:c:mrh" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    w) workers=$OPTARG ;;
    b) build=$OPTARG ;;
    c) corpus=$OPTARG ;;
    m) merge=1 ;;
    r) report=1 ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
workers=${workers:-$jobs}
corpus=${corpus:-$build/corpus}
build=$(realpath -m "$build")
corpus=$(realpath -m "$corpus")
all=(fuzz_api_ops fuzz_api_ops_secure fuzz_threads_ops fuzz_threads_ops_secure fuzz_misuse_secure
     fuzz_options fuzz_options_secure fuzz_guarded_secure)
harnesses=()
if [ $# -eq 0 ]; then set -- "${all[@]}"; fi
for h in "$@"; do
  case $h in fuzz_*) ;; *) h=fuzz_$h ;; esac
  [[ " ${all[*]} " == *" $h "* ]] || { echo "unknown harness $h (one of: ${all[*]})" >&2; exit 2; }
  harnesses+=("$h")
done

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DHH_FUZZ=ON >/dev/null
fi
nice -n 10 cmake --build "$build" -j2 --target "${harnesses[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
root=$(pwd)
pids=()
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}; name=${name%_secure}
  runs="$build/fuzz-runs/$h"
  mkdir -p "$corpus/$h" "$runs"
  dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="$root/fuzz/$name.dict")
  args=(-max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 "${dict[@]}"
        -artifact_prefix="$runs/")
  [ "$jobs" -gt 1 ] && args+=(-jobs="$jobs" -workers="$workers")
  echo "== $h: ${seconds}s, corpus $corpus/$h (+ fuzz/corpus/$name), log $runs/log"
  (cd "$runs" && exec nice -n 10 "$build/fuzz/$h" "${args[@]}" "$corpus/$h" "$root/fuzz/corpus/$name" \
     >log 2>&1) &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  h=${harnesses[$i]}
  if wait "${pids[$i]}"; then result=ok; else result="FAILED (see $build/fuzz-runs/$h)"; status=1; fi
  runs="$build/fuzz-runs/$h"
  # summed over libFuzzer's jobs when there are several (fuzz-N.log)
  stats=$( (cat "$runs"/log "$runs"/fuzz-*.log 2>/dev/null || true) |
          awk '/^stat::/ {k = $1; sub(/:$/, "", k); v[k] += $2; if (k == "stat::peak_rss_mb" && $2 > peak) peak = $2}
               END {printf "%d runs, %d exec/s, %d MB peak", v["stat::number_of_executed_units"],
                    v["stat::average_exec_per_sec"], peak}')
  echo "$h: $result; $stats; corpus $(ls "$corpus/$h" | wc -l) files"
done

if [ "$merge" -eq 1 ]; then
  for h in "${harnesses[@]}"; do
    name=${h#fuzz_}; name=${name%_secure}
    python3 fuzz/select_seeds.py "$build/fuzz/$h" "fuzz/corpus/$name" 60 "$corpus/$h" "fuzz/corpus/$name"
  done
fi
if [ "$report" -eq 1 ]; then
  scripts/fuzz-coverage.sh -c "$corpus" "${harnesses[@]}"
fi
exit $status
