#!/usr/bin/env bash
# A local network on loopback: N agents (default 3); each later one dials the first, pings it
# and prints what identify says. Every agent is stopped (by pid) on exit.
set -euo pipefail
bin=${1:?usage: devnet.sh P2PMQ_BIN [NODES]}
nodes=${2:-3}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_agent() {
  local i=$1
  "$bin" agent --listen /ip4/127.0.0.1/tcp/0 --key "$work/node$i.key" >"$work/node$i.out" 2>"$work/node$i.err" &
  pids+=($!)
  for _ in $(seq 1 300); do
    if grep -q '^listening ' "$work/node$i.out"; then
      grep '^listening ' "$work/node$i.out" | head -1 | cut -d' ' -f2
      return 0
    fi
    sleep 0.1
  done
  echo "agent $i did not start" >&2
  cat "$work/node$i.err" >&2
  return 1
}

echo "starting $nodes agents on loopback"
addrs=()
for i in $(seq 1 "$nodes"); do
  addr=$(start_agent "$i")
  addrs+=("$addr")
  echo "agent $i: $addr"
done
first=${addrs[0]}
for i in $(seq 2 "$nodes"); do
  echo "-- agent $i's address pings agent 1"
  "$bin" ping "$first" --count 3
done
echo "-- identify agent 1"
"$bin" identify "$first"
echo "devnet: ok"
