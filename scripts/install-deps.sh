#!/usr/bin/env bash
# Installs every Debian package the build, tests and benchmarks need.
# Idempotent and non-interactive; run as root on Debian 12.
#   scripts/install-deps.sh               everything: build, tests, fuzzing, benchmarks, interop
#   scripts/install-deps.sh --build-only  what a release build needs (deploy/Dockerfile)
set -euo pipefail
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

# What a release build of the binary needs (gtest too: CMake's configure requires it).
packages=(
  build-essential cmake ninja-build pkg-config git nlohmann-json3-dev
  libboost1.81-dev libboost-system1.81-dev
  libsodium-dev libssl-dev libsecp256k1-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev
  libgtest-dev libgmock-dev libexpected-dev
  libhiredis-dev
)
# Tests, fuzzing, benchmarks, interop peers: left out by --build-only.
if ! $build_only; then
  packages+=(
    ccache mold clang libclang-rt-14-dev clang-format libbenchmark-dev
    python3-grpcio python3-grpc-tools python3-yaml
    python3-pip python3-setuptools  # clients/python's install test (pip install --target)
    nodejs
    redis-server
    chromium  # headless, for the status page test (tests/agent/test_metrics.py StatusPage)
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  # libboost1.81-dev conflicts with the 1.74 -dev packages: remove them first if present.
  if dpkg-query -W -f='${Status}' libboost1.74-dev 2>/dev/null | grep -q 'install ok installed'; then
    $sudo_cmd apt-get remove -y -qq libboost1.74-dev || true
  fi
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# npm ships inside nodesource's nodejs; Debian's own npm package conflicts with it.
if ! $build_only && ! command -v npm >/dev/null 2>&1; then
  $sudo_cmd apt-get install -y -qq --no-install-recommends npm
fi
