#!/usr/bin/env bash
# hardheap as a subproject: a parent project (tests/package/CMakeLists.txt
# with HH_CONSUMER_SUBPROJECT=ON) does add_subdirectory(hardheap) and builds
# the same consumers as the find_package test with the same hardheap::
# targets, then runs them. Also checks that the subproject
#   - builds no tests/hardening/fuzz/demo (CMake-time check, and no tests/ dir),
#   - leaves the parent's CMAKE_BUILD_TYPE alone (Debug stays Debug, none
#     stays none),
#   - gives a working build-tree launcher that finds the libraries where the
#     parent put them (CMAKE_LIBRARY_OUTPUT_DIRECTORY),
#   - installs nothing unless HH_INSTALL=ON, and with it a usable package.
# Usage: subproject.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/parent"
cp "$src/tests/package/CMakeLists.txt" "$src/tests/package/consumer.c" "$src/tests/package/consumer.cpp" "$work/parent/"
ln -s "$src" "$work/parent/hardheap"

echo "== add_subdirectory(hardheap), parent CMAKE_BUILD_TYPE=Debug"
build=$work/build
cmake -S "$work/parent" -B "$build" -DHH_CONSUMER_SUBPROJECT=ON -DCMAKE_BUILD_TYPE=Debug \
  -DHH_EXPECT_BUILD_TYPE=Debug >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
grep -qx 'CMAKE_BUILD_TYPE:STRING=Debug' "$build/CMakeCache.txt" || { echo "parent build type changed"; exit 1; }
cmake --build "$build" -j2 >"$work/build.log" || { tail -50 "$work/build.log"; exit 1; }
for exe in consumer_default consumer_secure consumer_static consumer_cxx_static; do
  "$build/$exe"
done
[ ! -e "$build/hardheap/tests" ] && [ ! -e "$build/hardheap/hardening" ] || { echo "the subproject configured its tests"; exit 1; }
[ -f "$build/lib/libhardheap-secure.so" ] || { echo "libraries not in the parent's library directory"; exit 1; }

echo "== build-tree launcher of the subproject"
out=$("$build/hardheap/hardheap" run --secure --stats -- bash -c 'printf "%s\n" "$LD_PRELOAD"' 2>"$work/stats")
[ "$out" = "$build/lib/libhardheap-secure.so" ] || { echo "launcher preloads '$out'"; exit 1; }
grep -q "hardheap secure statistics" "$work/stats" || { echo "no secure statistics"; cat "$work/stats"; exit 1; }

echo "== no install rules by default"
cmake --install "$build" --prefix "$work/none" >/dev/null
if [ -e "$work/none" ] && [ -n "$(find "$work/none" -type f)" ]; then
  echo "the subproject installed files:"; find "$work/none" -type f; exit 1
fi

echo "== HH_INSTALL=ON installs the package"
cmake "$build" -DHH_INSTALL=ON >/dev/null
cmake --build "$build" -j2 >/dev/null
cmake --install "$build" --prefix "$work/prefix" >/dev/null
[ -n "$(find "$work/prefix" -name hardheapConfig.cmake)" ] && [ -x "$work/prefix/bin/hardheap" ] ||
  { echo "HH_INSTALL=ON did not install the package"; exit 1; }
"$work/prefix/bin/hardheap" run -- true

echo "== add_subdirectory(hardheap), parent without a build type"
cmake -S "$work/parent" -B "$work/nobuildtype" -DHH_CONSUMER_SUBPROJECT=ON -DHH_EXPECT_BUILD_TYPE= \
  >"$work/configure2.log" || { cat "$work/configure2.log"; exit 1; }
grep -qx 'CMAKE_BUILD_TYPE:STRING=' "$work/nobuildtype/CMakeCache.txt" || { echo "hardheap set the parent's build type"; grep CMAKE_BUILD_TYPE "$work/nobuildtype/CMakeCache.txt"; exit 1; }
echo "subproject test ok"
