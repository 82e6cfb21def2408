#!/usr/bin/env bash
# Builds the rust-libp2p reference peer (Cargo.lock pinned, --locked) to the path given
# as the first argument (default: build/interop/rust-peer in the repository).
# CARGO_TARGET_DIR defaults to one shared target dir for every build dir and worktree
# (created when missing). Exits 77 (skip) when cargo is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../../build/interop/rust-peer}
if ! command -v cargo >/dev/null 2>&1; then
  echo "rust-peer: cargo not found; install a Rust toolchain (rustup) to build the rust-libp2p peer" >&2
  exit 77
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/p2pmq/rust-target}
# the machine is small and shared: at most 2 jobs, at low priority
jobs=${P2PMQ_CARGO_JOBS:-2}
cd "$here"
# Every worktree builds the same crate into the shared target dir, and cargo names its output
# without the source path: a build from another tree with older files looks fresh to cargo.
# So: one build at a time (a lock held until the copy), and a rebuild whenever the sources
# differ from the last ones built there.
mkdir -p "$CARGO_TARGET_DIR"
exec 9>"$CARGO_TARGET_DIR/.rust-peer-build.lock"
flock 9
sources=$(cat Cargo.toml Cargo.lock src/*.rs | sha256sum | cut -d' ' -f1)
stamp="$CARGO_TARGET_DIR/.rust-peer-sources"
[ "$(cat "$stamp" 2>/dev/null)" = "$sources" ] || touch src/main.rs
nice cargo build --release --locked -j "$jobs"
echo "$sources" >"$stamp"
mkdir -p "$(dirname "$out")"
# copy, then rename: a running test never sees a half-written binary
cp "$CARGO_TARGET_DIR/release/rust-peer" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "rust-peer: built $out"
