#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: a local network of p2pmq agents on
# loopback (`p2pmq devnet`) that publishes sample traffic through the gRPC API and shows it
# arriving at every agent. Without arguments it stops by itself once the traffic arrived; pass
# devnet flags (e.g. `--nodes 8`) to keep it running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
if [ $# -eq 0 ]; then
  set -- --nodes 5 --messages 10 --exit-after-traffic
fi
exec build/release/apps/p2pmq/p2pmq devnet "$@"
