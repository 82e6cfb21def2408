#!/usr/bin/env bash
# Generates the Go code of proto/p2pmq/v1/p2pmq.proto into p2pmqpb/ (committed).
#   generate.sh [OUTDIR]   default: p2pmqpb next to this script
# Needs protoc (Debian's protobuf-compiler); protoc-gen-go and protoc-gen-go-grpc are installed
# at the pinned versions below by `go install` (Go module proxy, or go's module cache) into a
# directory of their own, so nothing on PATH is replaced. Exit 77 when protoc or go is missing.
# The test generate_test.go runs this into a temporary directory and compares.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/p2pmqpb}"
protoc_gen_go_version=v1.36.12
protoc_gen_go_grpc_version=v1.6.2

for tool in protoc go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "generate.sh: $tool not found" >&2
    exit 77
  fi
done
case "$(go env GOCACHE 2>/dev/null)" in "" | off) export GOCACHE="${TMPDIR:-/tmp}/p2pmq-go-client/cache" ;; esac
if [ -z "$(go env GOMODCACHE 2>/dev/null)" ]; then export GOMODCACHE="${TMPDIR:-/tmp}/p2pmq-go-client/mod"; fi

bin="${TMPDIR:-/tmp}/p2pmq-go-client/bin-$protoc_gen_go_version-$protoc_gen_go_grpc_version"
if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-go-grpc" ]; then
  mkdir -p "$bin"
  if ! GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protoc_gen_go_version" ||
     ! GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$protoc_gen_go_grpc_version"; then
    echo "generate.sh: cannot install the protoc plugins (no Go module proxy or cache?)" >&2
    exit 77
  fi
fi

# The proto names no go_package: map it here, so the proto stays language-neutral.
pkg=p2pmq/v1/p2pmq.proto=p2pmq.dev/clients/go/p2pmqpb
mkdir -p "$out"
PATH="$bin:$PATH" protoc -I "$here/../../proto" \
  --go_out="$out" --go_opt=paths=source_relative --go_opt="M$pkg" \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative --go-grpc_opt="M$pkg" \
  p2pmq/v1/p2pmq.proto
# paths=source_relative writes p2pmq/v1/*.go: flatten into the package directory.
mv "$out"/p2pmq/v1/*.go "$out"/
rm -r "$out/p2pmq"
