#!/usr/bin/env bash
# Install what building and testing hardheap needs on Debian 12 (bookworm).
set -euo pipefail
# valgrind: the Valgrind tracking mode's test (HH_TRACK=valgrind); llvm-14:
# llvm-cov and llvm-profdata for scripts/fuzz-coverage.sh
packages=(cmake make gcc g++ clang libclang-rt-14-dev pkg-config check python3 valgrind llvm-14)
# programs the drop-in tests run under the allocator (tests/dropin)
while read -r pkg; do
  [ -n "$pkg" ] && packages+=("$pkg")
done < "$(dirname "$0")/../tests/dropin/packages.txt"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed: ${packages[*]}"
