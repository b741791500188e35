#!/usr/bin/env bash
# Coverage of src/ by the fuzzers' corpora, per file (clang source-based
# coverage: llvm-profdata and llvm-cov, Debian package llvm-14).
#
#   scripts/fuzz-coverage.sh [-b BUILD] [-c CORPUS] [HARNESS ...]
#
#   HARNESS   as for scripts/fuzz.sh (default: all)
#   -b BUILD  the coverage build (default build-fuzz-cov: clang, HH_FUZZ=ON, HH_COVERAGE=ON)
#   -c CORPUS where scripts/fuzz.sh grew the corpora (default build-fuzz/corpus); each
#             harness runs once over that and over its seeds in fuzz/corpus/<name>/
#
# Writes BUILD/coverage/report.txt (per file: regions, functions, lines,
# branches; one table for the default build's harnesses, one for the
# secure build's, one for src/ by both) and
# BUILD/coverage/html-{default,secure}/index.html, and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-fuzz-cov corpus=build-fuzz/corpus
while getopts "b:c:h" opt; do
  case $opt in
    b) build=$OPTARG ;;
    c) corpus=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
build=$(realpath -m "$build")
corpus=$(realpath -m "$corpus")
tool() {  # the versioned name first: Debian's llvm-14 package installs llvm-cov-14
  for t in "$1-14" "$1"; do command -v "$t" >/dev/null && { echo "$t"; return; }; done
  echo "scripts/fuzz-coverage.sh: $1 not found (Debian: apt-get install llvm-14)" >&2
  exit 1
}
profdata=$(tool llvm-profdata)
cov=$(tool llvm-cov)
all=(fuzz_api_ops fuzz_api_ops_secure fuzz_threads_ops fuzz_threads_ops_secure fuzz_misuse_secure
     fuzz_options fuzz_options_secure fuzz_guarded_secure)
if [ $# -eq 0 ]; then set -- "${all[@]}"; fi
harnesses=()
for h in "$@"; do
  case $h in fuzz_*) ;; *) h=fuzz_$h ;; esac
  harnesses+=("$h")
done

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DHH_FUZZ=ON \
    -DHH_COVERAGE=ON >/dev/null
fi
nice -n 10 cmake --build "$build" -j2 --target "${harnesses[@]}" >/dev/null
out="$build/coverage"
rm -rf "$out"
mkdir -p "$out/raw"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}; name=${name%_secure}
  dirs=("fuzz/corpus/$name")
  [ -d "$corpus/$h" ] && dirs+=("$corpus/$h")
  [ -d "tests/fuzz_regressions/$name" ] && dirs+=("tests/fuzz_regressions/$name")
  files=$(find "${dirs[@]}" -type f | wc -l)
  echo "== $h: $files inputs (${dirs[*]})"
  LLVM_PROFILE_FILE="$out/raw/$h-%p.profraw" nice -n 10 "$build/fuzz/$h" -runs=0 -rss_limit_mb=4096 "${dirs[@]}" \
    >"$out/$h.log" 2>&1 || echo "   $h failed on its corpus: see $out/$h.log"
done
# The default and the secure library are one source built twice (other
# code behind the same names): one report each.
root=$(pwd)
filter=(-ignore-filename-regex="^$root/(fuzz|tests|include)/")
: >"$out/report.txt"
for variant in default secure; do
  objs=()
  raws=()
  for h in "${harnesses[@]}"; do
    case $h in *_secure) v=secure ;; *) v=default ;; esac
    [ "$v" = "$variant" ] || continue
    objs+=("$build/fuzz/$h")
    raws+=("$out"/raw/"$h"-*.profraw)
  done
  [ ${#objs[@]} -gt 0 ] || continue
  "$profdata" merge -sparse "${raws[@]}" -o "$out/$variant.profdata"
  args=("${objs[0]}")
  for o in "${objs[@]:1}"; do args+=(-object "$o"); done
  {
    echo "== $variant build (libhardheap${variant/default/}: ${objs[*]##*/})"
    "$cov" report "${args[@]}" -instr-profile="$out/$variant.profdata" "${filter[@]}"
    echo
  } >>"$out/report.txt"
  "$cov" show "${args[@]}" -instr-profile="$out/$variant.profdata" "${filter[@]}" -format=html \
    -output-dir="$out/html-$variant" >/dev/null
done
# And src/ as a whole: a line counts as covered when either build ran it
# (a line only one build compiles counts once, for that build).
all_objs=()
for h in "${harnesses[@]}"; do all_objs+=(-object "$build/fuzz/$h"); done
if [ -f "$out/default.profdata" ] && [ -f "$out/secure.profdata" ]; then
  "$profdata" merge -sparse "$out/default.profdata" "$out/secure.profdata" -o "$out/all.profdata"
  {
    echo "== src/ by both builds (a line is covered if either ran it)"
    "$cov" report "${all_objs[@]:1}" -instr-profile="$out/all.profdata" "${filter[@]}"
    echo
  } >>"$out/report.txt"
fi
sed -i 's/libhardheapsecure/libhardheap-secure/' "$out/report.txt"
cat "$out/report.txt"
echo "per-file report: $out/report.txt; annotated source: $out/html-default/index.html, $out/html-secure/index.html"
