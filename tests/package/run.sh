#!/usr/bin/env bash
# Install the built hardheap into a scratch prefix, then build and run tiny
# consumers against the installed tree: with find_package (shared, static,
# C++ with hardheap-new-delete.h) and with pkg-config; and run the installed
# launcher. Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

echo "== find_package(hardheap)"
cmake -S "$src/tests/package" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null
for exe in consumer_default consumer_secure consumer_static consumer_cxx_static; do
  "$work/consumer/$exe"
done

echo "== pkg-config"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
libdir=$(pkg-config --variable=libdir hardheap)
cc -O2 -o "$work/pc_default" "$src/tests/package/consumer.c" $(pkg-config --cflags --libs hardheap)
cc -O2 -DEXPECT_SECURE=1 -o "$work/pc_secure" "$src/tests/package/consumer.c" $(pkg-config --cflags --libs hardheap-secure)
LD_LIBRARY_PATH="$libdir" "$work/pc_default"
LD_LIBRARY_PATH="$libdir" "$work/pc_secure"

echo "== launcher"
"$prefix/bin/hardheap" --version
out=$("$prefix/bin/hardheap" run --secure --stats -- "$SHELL" -c 'echo launched' 2>"$work/stats")
[ "$out" = "launched" ] || { echo "launcher did not run the program"; exit 1; }
grep -q "hardheap secure statistics" "$work/stats" || { echo "launcher --secure --stats printed no secure statistics"; cat "$work/stats"; exit 1; }
# the flags reach the program as HARDHEAP_* variables, and the library
# says that it does not sample yet
"$prefix/bin/hardheap" run --guarded-sample-rate 1000 --purge-delay -1 -- "$SHELL" -c \
  'echo "$HARDHEAP_GUARDED_SAMPLE_RATE $HARDHEAP_PURGE_DELAY"' >"$work/flags" 2>"$work/flags.err"
[ "$(cat "$work/flags")" = "1000 -1" ] || { echo "launcher did not pass --guarded-sample-rate/--purge-delay"; cat "$work/flags" "$work/flags.err"; exit 1; }
grep -q "GUARDED_SAMPLE_RATE=1000 ignored" "$work/flags.err" || { echo "no warning that guarded sampling is not implemented"; cat "$work/flags.err"; exit 1; }
if "$prefix/bin/hardheap" run --guarded-sample-rate x -- true 2>/dev/null; then echo "launcher accepted a non-integer rate"; exit 1; fi
if "$prefix/bin/hardheap" run --bogus -- true 2>/dev/null; then echo "launcher accepted an unknown option"; exit 1; fi
echo "package test ok"
