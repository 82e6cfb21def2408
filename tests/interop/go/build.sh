#!/usr/bin/env bash
# Builds the go-libp2p reference peer (go-peer) for the interop tests.
#   build.sh [OUTPUT]   default: ../../../build/interop/go-peer (relative to this script)
# Uses go's module and build caches when they are there, never requires them
# (the pinned modules come from the Go module proxy otherwise). Exit 77 without go.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../../build/interop/go-peer}"
if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: go not found; the go-libp2p reference peer is not built" >&2
  exit 77
fi
mkdir -p "$(dirname "$out")"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$here"
# without HOME go has no default cache or module directory: use one under TMPDIR
case "$(go env GOCACHE 2>/dev/null)" in "" | off) export GOCACHE="${TMPDIR:-/tmp}/p2pmq-go-peer/cache" ;; esac
if [ -z "$(go env GOMODCACHE 2>/dev/null)" ]; then export GOMODCACHE="${TMPDIR:-/tmp}/p2pmq-go-peer/mod"; fi
# -mod=readonly: go.mod/go.sum are the pin, never rewritten by a build
exec go build -trimpath -mod=readonly -o "$out" .
