#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries BINARY links against, one per
# line (the runtime stage of deploy/Dockerfile installs exactly these). Debian 12, dpkg only.
#   deploy/runtime-packages.sh build/release/apps/p2pmq/p2pmq
set -euo pipefail
binary=${1:?usage: runtime-packages.sh BINARY}
ldd "$binary" | awk '/=> \//{print $3}' | while read -r lib; do
  # Debian 12 is merged-/usr: ldd may name /lib/... while dpkg recorded /usr/lib/... or the
  # real file behind the symlink.
  for candidate in "$lib" "/usr$lib" "$(readlink -f "$lib")"; do
    if owner=$(dpkg-query -S "$candidate" 2>/dev/null); then
      echo "${owner%%:*}"
      break
    fi
  done
done | sort -u
