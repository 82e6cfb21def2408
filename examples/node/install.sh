#!/usr/bin/env bash
# The Node example runs on the client package: installs its exact dependencies
# (clients/node/package-lock.json) into clients/node/node_modules.
exec "$(dirname "$0")/../../clients/node/install.sh" "$@"
