#!/usr/bin/env bash
# Runs `go ARGS...` for the client tests: exit 77 (CTest: skipped) without go, or when the test
# needs an agent and P2PMQ_BIN is set but empty (no p2pmq target in this build). Uses go's module
# and build caches when they are there (scripts/test.sh warms them with `prepare`); the pinned
# modules come from the Go module proxy otherwise.
#   with-go.sh prepare        download the modules, build the client, the example, the plugins
#   with-go.sh ARGS...        go ARGS... in the current directory
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if ! command -v go >/dev/null 2>&1; then
  echo "with-go.sh: go not found; skipped" >&2
  exit 77
fi
if [ "${P2PMQ_BIN-unset}" = "" ]; then
  echo "with-go.sh: P2PMQ_BIN is empty (no p2pmq target in this build); skipped" >&2
  exit 77
fi
# without HOME go has no default cache or module directory: use one under TMPDIR
case "$(go env GOCACHE 2>/dev/null)" in "" | off) export GOCACHE="${TMPDIR:-/tmp}/p2pmq-go-client/cache" ;; esac
if [ -z "$(go env GOMODCACHE 2>/dev/null)" ]; then export GOMODCACHE="${TMPDIR:-/tmp}/p2pmq-go-client/mod"; fi
# -mod=readonly: go.mod/go.sum are the pin, never rewritten by a test
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"
if [ "${1:-}" = prepare ]; then
  go -C "$root/clients/go" test -count=1 -run '^$' ./... >/dev/null
  go -C "$root/examples/oracle-go" build -o /dev/null .
  # the pinned protoc plugins of TestGeneratedCodeIsUpToDate (77 without protoc: fine)
  tmp="$(mktemp -d)"
  "$root/clients/go/generate.sh" "$tmp" >/dev/null || [ $? -eq 77 ]
  rm -rf "$tmp"
  exit 0
fi
exec go "$@"
