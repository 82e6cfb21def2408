#!/usr/bin/env bash
# Installs the js peer's pinned packages (package-lock.json) into node_modules with
# `npm ci --ignore-scripts` (no package runs code at install time). Idempotent: skipped when
# node_modules was installed from this exact lock (a hash stamp) with the same node major.
# Exit 77 (skipped) without node >= 20 or npm.
set -euo pipefail
cd "$(dirname "$0")"
NODE=${NODE:-node}
NPM=${NPM:-npm}
command -v "$NODE" >/dev/null || { echo "install.sh: node not found: js peer skipped" >&2; exit 77; }
command -v "$NPM" >/dev/null || { echo "install.sh: npm not found: js peer skipped" >&2; exit 77; }
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "install.sh: Node $("$NODE" --version) is too old (need >= 20): js peer skipped" >&2
  exit 77
fi
stamp_file=node_modules/.p2pmq-install-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) node$major"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ]; then
  echo "install.sh: node_modules is up to date"
  exit 0
fi
echo "install.sh: npm ci --ignore-scripts (from package-lock.json)"
export CI=true npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm_config_progress=false
"$NPM" ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null
echo "$want" >"$stamp_file"
echo "install.sh: done"
