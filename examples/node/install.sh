#!/usr/bin/env bash
# Installs the Node example's exact dependencies (package-lock.json) into examples/node/node_modules.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm is missing (scripts/install-deps.sh installs nodejs and npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
