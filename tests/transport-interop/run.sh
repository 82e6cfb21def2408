#!/usr/bin/env bash
# A local runner of libp2p/test-plans transport-interop (its README.md "Test spec"), without
# Docker: Debian's redis-server on loopback (a free port), then for each dialer x listener pair
# over tcp/noise/yamux: the listener RPUSHes its address to `listenerAddr`, the dialer BLPOPs it,
# dials, pings and prints {"handshakePlusOneRTTMillis": ..., "pingRTTMilllis": ...}; the runner
# then ends the listener (SIGTERM, as the framework does once the dialer is done).
# A pair passes when the dialer exits 0 with exactly that JSON on stdout and the listener exits 0.
#
#   run.sh [--peers p2pmq,go,rust,js] [--pairs p2pmq|all] [--timeout S] [--require]
#
#   --peers    implementations to use (default: every one that is built; missing ones are listed)
#   --pairs    p2pmq (default): the pairs with p2pmq on at least one side; all: every pair
#   --timeout  test_timeout_seconds given to both peers (default 30)
#   --require  exit 77 (skipped) when redis-server or a peer of --peers is missing
#
# Peers (environment): P2PMQ_BIN (default build/release/apps/p2pmq/p2pmq), P2PMQ_GO_PEER and
# P2PMQ_RUST_PEER (default build/release/interop/{go,rust}-peer, built by the interop_go_build
# and interop_rust_build tests or tests/interop/{go,rust}/build.sh), the js peer in js/ (after
# js/install.sh). Exit: 0 every pair passed, 1 some failed, 2 usage, 77 skipped.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
P2PMQ_BIN=${P2PMQ_BIN:-$repo/build/release/apps/p2pmq/p2pmq}
P2PMQ_GO_PEER=${P2PMQ_GO_PEER:-$repo/build/release/interop/go-peer}
P2PMQ_RUST_PEER=${P2PMQ_RUST_PEER:-$repo/build/release/interop/rust-peer}
NODE=${NODE:-node}

peers_wanted=""
pairs=p2pmq
timeout_s=30
require=0
while [ $# -gt 0 ]; do
  case "$1" in
    --peers) peers_wanted=${2:-}; shift 2 ;;
    --pairs) pairs=${2:-}; shift 2 ;;
    --timeout) timeout_s=${2:-}; shift 2 ;;
    --require) require=1; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$pairs" in p2pmq | all) ;; *) echo "run.sh: --pairs p2pmq|all" >&2; exit 2 ;; esac
case "$timeout_s" in '' | *[!0-9]* | 0) echo "run.sh: --timeout needs seconds" >&2; exit 2 ;; esac

skip() {
  echo "run.sh: skipped: $*"
  exit 77
}

# ---- the peers ----------------------------------------------------------------------
# peer_cmd NAME: the command line that runs the transport-interop mode of NAME.
peer_cmd() {
  case "$1" in
    p2pmq) echo "$P2PMQ_BIN transport-interop" ;;
    go) echo "$P2PMQ_GO_PEER transport-interop" ;;
    rust) echo "$P2PMQ_RUST_PEER transport-interop" ;;
    js) echo "$NODE $here/js/peer.mjs" ;;
  esac
}
# peer_missing NAME: why NAME cannot run (empty when it can).
peer_missing() {
  case "$1" in
    p2pmq) [ -x "$P2PMQ_BIN" ] || echo "no p2pmq binary at $P2PMQ_BIN" ;;
    go) [ -x "$P2PMQ_GO_PEER" ] || echo "no go peer at $P2PMQ_GO_PEER (tests/interop/go/build.sh)" ;;
    rust) [ -x "$P2PMQ_RUST_PEER" ] || echo "no rust peer at $P2PMQ_RUST_PEER (tests/interop/rust/build.sh)" ;;
    js)
      if ! command -v "$NODE" >/dev/null 2>&1; then
        echo "no node"
      elif [ ! -d "$here/js/node_modules/libp2p" ]; then
        echo "js peer not installed (tests/transport-interop/js/install.sh)"
      fi
      ;;
    *) echo "unknown peer $1 (p2pmq, go, rust, js)" ;;
  esac
}

names=()
if [ -n "$peers_wanted" ]; then
  IFS=, read -r -a names <<<"$peers_wanted"
else
  names=(p2pmq go rust js)
fi
peers=()
for n in "${names[@]}"; do
  why=$(peer_missing "$n")
  if [ -z "$why" ]; then
    peers+=("$n")
  elif [ -n "$peers_wanted" ] && [ "$require" = 1 ]; then
    skip "$why"
  else
    echo "run.sh: leaving out $n: $why"
  fi
done
case " ${peers[*]} " in *" p2pmq "*) ;; *) [ "$require" = 1 ] && skip "$(peer_missing p2pmq)"; echo "run.sh: $(peer_missing p2pmq)" >&2; exit 1 ;; esac

command -v redis-server >/dev/null 2>&1 || {
  [ "$require" = 1 ] && skip "redis-server not installed (scripts/install-deps.sh)"
  echo "run.sh: redis-server not installed (scripts/install-deps.sh)" >&2
  exit 1
}
command -v redis-cli >/dev/null 2>&1 || { echo "run.sh: redis-cli not installed" >&2; exit 1; }

# ---- processes: every one started here ends here, by pid -------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/p2pmq-transport-interop.XXXXXX")
redis_pid=""
listener_pid=""
dialer_pid=""
keep_work=0
stop_pid() {  # stop_pid PID: SIGTERM, then SIGKILL after 5 s; reaps it
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  [ -n "$dialer_pid" ] && stop_pid "$dialer_pid"
  [ -n "$listener_pid" ] && stop_pid "$listener_pid"
  [ -n "$redis_pid" ] && stop_pid "$redis_pid"
  if [ "$keep_work" = 1 ]; then echo "run.sh: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- redis on loopback -----------------------------------------------------------------
redis_port=""
for attempt in $(seq 20); do
  port=$((20000 + RANDOM % 40000))
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
    --protected-mode yes >"$work/redis.log" 2>&1 &
  redis_pid=$!
  # ready when it answers PING; gone when the port was taken
  for i in $(seq 100); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
      redis_port=$port
      break 2
    fi
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  stop_pid "$redis_pid"
  redis_pid=""
done
[ -n "$redis_port" ] || { echo "run.sh: redis-server did not start (log: $work/redis.log)" >&2; keep_work=1; exit 1; }
echo "run.sh: redis-server on 127.0.0.1:$redis_port (pid $redis_pid); peers: ${peers[*]}"

# ---- one pair ----------------------------------------------------------------------------
declare -A result
failures=0
run_pair() {  # run_pair DIALER LISTENER
  local d=$1 l=$2 tag="$1-to-$2" out dialer_rc listener_rc line hs rtt
  redis-cli -h 127.0.0.1 -p "$redis_port" del listenerAddr >/dev/null
  # word splitting of peer_cmd is intended: a command and its arguments
  # shellcheck disable=SC2046
  env transport=tcp security=noise muxer=yamux is_dialer=false ip=127.0.0.1 \
    redis_addr="127.0.0.1:$redis_port" test_timeout_seconds="$timeout_s" \
    $(peer_cmd "$l") >"$work/$tag.listener.out" 2>"$work/$tag.listener.err" &
  listener_pid=$!
  # the dialer ends by itself within test_timeout_seconds; `timeout` only guards a hang
  # shellcheck disable=SC2046
  env transport=tcp security=noise muxer=yamux is_dialer=true ip=127.0.0.1 \
    redis_addr="127.0.0.1:$redis_port" test_timeout_seconds="$timeout_s" \
    timeout -k 5 $((timeout_s + 15)) $(peer_cmd "$d") >"$work/$tag.dialer.out" 2>"$work/$tag.dialer.err" &
  # in the background: `wait` returns at once when the runner is signalled, so cleanup runs
  dialer_pid=$!
  wait "$dialer_pid"
  dialer_rc=$?
  dialer_pid=""
  if kill -0 "$listener_pid" 2>/dev/null; then
    kill -TERM "$listener_pid" 2>/dev/null
    # a listener must end promptly on SIGTERM
    for i in $(seq 100); do kill -0 "$listener_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$listener_pid" 2>/dev/null
  fi
  wait "$listener_pid"
  listener_rc=$?
  listener_pid=""

  out=$(cat "$work/$tag.dialer.out")
  line='^\{ *"handshakePlusOneRTTMillis": *([0-9]+(\.[0-9]+)?), *"pingRTTMilllis": *([0-9]+(\.[0-9]+)?) *\}$'
  if [ "$dialer_rc" = 0 ] && [ "$listener_rc" = 0 ] && [[ "$out" =~ $line ]]; then
    hs=${BASH_REMATCH[1]}
    rtt=${BASH_REMATCH[3]}
    result[$d,$l]=$(printf 'ok %.1f/%.2f' "$hs" "$rtt")
    printf 'run.sh: %-5s -> %-5s ok    handshakePlusOneRTT %8.3f ms  pingRTT %7.3f ms\n' "$d" "$l" "$hs" "$rtt"
  else
    result[$d,$l]=FAIL
    failures=$((failures + 1))
    keep_work=1
    printf 'run.sh: %-5s -> %-5s FAIL  dialer exit %s, listener exit %s, dialer stdout: %s\n' \
      "$d" "$l" "$dialer_rc" "$listener_rc" "${out:0:200}"
    echo "  dialer stderr (last lines):"
    tail -n 5 "$work/$tag.dialer.err" | sed 's/^/    /'
    echo "  listener stderr (last lines):"
    tail -n 5 "$work/$tag.listener.err" | sed 's/^/    /'
  fi
}

for d in "${peers[@]}"; do
  for l in "${peers[@]}"; do
    if [ "$pairs" = p2pmq ] && [ "$d" != p2pmq ] && [ "$l" != p2pmq ]; then continue; fi
    run_pair "$d" "$l"
  done
done

# ---- the matrix ----------------------------------------------------------------------------
echo
echo "transport-interop, tcp/noise/yamux on 127.0.0.1; cell: handshakePlusOneRTT/pingRTT in ms"
printf '%-16s' "dialer \\ listener"
for l in "${peers[@]}"; do printf ' | %-15s' "$l"; done
echo
for d in "${peers[@]}"; do
  printf '%-17s' "$d"
  for l in "${peers[@]}"; do printf ' | %-15s' "${result[$d,$l]:--}"; done
  echo
done
if [ "$failures" -gt 0 ]; then
  echo "run.sh: $failures pair(s) failed"
  exit 1
fi
echo "run.sh: every pair passed"
