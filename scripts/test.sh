#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. ASan+UBSan build (clang, -Werror) in the ASan tracking mode
#      (HH_TRACK=asan: free blocks and slack poisoned) of the library, the
#      secure one at the level it ships with, the Check tests, the tracking
#      tests and the libFuzzer harnesses (each fuzzed HH_FUZZ_SECONDS,
#      about a minute in all, and its regressions replayed),
#   2. ASan+UBSan build without tracking (clang): the secure library's own
#      checks that the tracking mode leaves out (canaries, zero on free,
#      guarded samples, here one allocation in 50) under the sanitizers,
#   3. ThreadSanitizer build (clang) running the multi-threaded tests,
#   4. Valgrind tracking mode (gcc, HH_TRACK=valgrind): memcheck must report
#      exactly a test program's leak, overflow and use after free (skipped
#      when valgrind is not installed),
#   5. release build (gcc, -Werror) of both library variants with every test,
#      the hardening scenarios and the drop-in checks; its ctest summary is
#      printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== ASan+UBSan build (clang)"
cmake -S . -B build-test/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DHH_SANITIZE=ON -DHH_TRACK=asan -DHH_FUZZ=ON -DHH_FUZZ_SECONDS=8 -DHH_DEBUG=ON -DHH_WERROR=ON >/dev/null
cmake --build build-test/asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-test/asan --output-on-failure -j"$jobs"

echo "== ASan+UBSan build of the secure checks (clang)"
cmake -S . -B build-test/asan-secure -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DHH_SANITIZE=ON -DHH_DEBUG=ON -DHH_WERROR=ON >/dev/null
secure_tests='test_(random|stress|threads_basic|misuse)_secure'
cmake --build build-test/asan-secure -j"$jobs" --target test_random_secure test_stress_secure \
  test_threads_basic_secure test_misuse_secure >/dev/null
HARDHEAP_GUARDED_SAMPLE_RATE=50 ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-test/asan-secure -R "$secure_tests" --output-on-failure -j"$jobs"

echo "== ThreadSanitizer build (clang)"
cmake -S . -B build-test/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DHH_TSAN=ON -DHH_WERROR=ON >/dev/null
cmake --build build-test/tsan -j"$jobs" >/dev/null
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-test/tsan -R 'threads|stress|heaps' --output-on-failure -j"$jobs"

echo "== Valgrind tracking mode (gcc)"
cmake -S . -B build-test/valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
  -DHH_TRACK=valgrind -DHH_WERROR=ON >/dev/null
cmake --build build-test/valgrind -j"$jobs" --target track_valgrind_default track_valgrind_secure >/dev/null
ctest --test-dir build-test/valgrind -L track --output-on-failure

echo "== release build (gcc)"
cmake -S . -B build-test/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc -DHH_WERROR=ON >/dev/null
cmake --build build-test/release -j"$jobs" >/dev/null
ctest --test-dir build-test/release --output-on-failure -j"$jobs"
