#!/usr/bin/env bash
# Install what building and testing hardheap needs on Debian 12 (bookworm).
set -euo pipefail
packages=(cmake make gcc g++ clang libclang-rt-14-dev pkg-config check python3)
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
