#!/usr/bin/env bash
# Configures and builds one flavour of p2pmq into build/<flavour>.
#   scripts/build.sh release   gcc, optimised (benchmarks, devnet)
#   scripts/build.sh asan      gcc, AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/build.sh fuzz      clang, libFuzzer targets of the parsers
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
dir=build/$flavour
jobs=${P2PMQ_JOBS:-$(nproc)}
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DP2PMQ_SANITIZE=ON -DP2PMQ_BENCH=OFF) ;;
  fuzz) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DP2PMQ_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "unknown flavour $flavour (release | asan | fuzz)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
