#!/usr/bin/env bash
# Installs the client's exact dependencies (package-lock.json) into clients/node/node_modules.
# Idempotent: skipped when node_modules was installed from this exact lock (a hash stamp).
# Exit 77 (CTest: skipped) when node or npm is missing.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install.sh: $tool is missing (scripts/install-deps.sh installs nodejs and npm)" >&2
    exit 77
  fi
done
stamp_file=node_modules/.p2pmq-install-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) node$(node -p 'process.versions.node.split(".")[0]')"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ]; then
  echo "install.sh: node_modules is up to date"
  exit 0
fi
export CI=true npm_config_update_notifier=false npm_config_progress=false
npm ci --no-audit --no-fund --loglevel=error </dev/null
echo "$want" > "$stamp_file"
