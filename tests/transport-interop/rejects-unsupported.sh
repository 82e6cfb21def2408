#!/usr/bin/env bash
# `p2pmq transport-interop` refuses what it does not speak (any transport but tcp, security
# but noise, muxer but yamux) and a malformed environment: exit 2 and a message naming the
# variable, before it touches redis or the network.
#   rejects-unsupported.sh P2PMQ_BIN
set -uo pipefail
bin=${1:-}
[ -x "$bin" ] || { echo "skipped: no p2pmq binary '$bin'"; exit 77; }
failures=0
check() {  # check VAR=VALUE: the stack with VAR=VALUE must be refused naming VAR
  local override=$1 name=${1%%=*} err rc
  err=$(env transport=tcp security=noise muxer=yamux is_dialer=true ip=127.0.0.1 \
    redis_addr=127.0.0.1:1 test_timeout_seconds=5 "$override" "$bin" transport-interop 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" = 2 ] && [[ "$err" == *"$name="* ]]; then
    echo "ok: $override refused: $err"
  else
    echo "FAIL: $override: exit $rc, stderr: $err"
    failures=$((failures + 1))
  fi
}
check transport=quic-v1
check transport=ws
check security=tls
check muxer=mplex
check is_dialer=maybe
check redis_addr=no-port
check test_timeout_seconds=soon
[ "$failures" = 0 ]
