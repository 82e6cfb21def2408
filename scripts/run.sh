#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: a local network of agents on
# loopback that connect, ping and identify each other. Stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
exec scripts/devnet.sh build/release/apps/p2pmq/p2pmq "$@"
