#!/usr/bin/env python3
"""`p2pmq bench --nodes N` stops every agent it started when interrupted (SIGINT).

usage: bench_sigint_check.py P2PMQ
Starts a long bench, waits until it reports the measured phase on stderr, notes its children,
sends SIGINT, and checks that the bench exits (status 130) and no child is left running.
"""
import os
import signal
import subprocess
import sys
import time

DEADLINE_S = 120  # generous: a loaded 2-core machine


def children(pid):
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def main():
    bench = subprocess.Popen(
        [sys.argv[1], "bench", "--nodes", "2", "--duration", "600", "--rate", "200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    agents = set()
    start = time.monotonic()
    # Not a terminal: one progress line a second; the first "publishing" line means the agents
    # are up and the measured phase runs.
    for line in bench.stderr:
        if line.startswith("bench: publishing"):
            agents = children(bench.pid)
            break
        if time.monotonic() - start > DEADLINE_S:
            break
    if len(agents) != 2:
        bench.kill()
        print(f"bench did not reach the measured phase with 2 agents: {agents}", file=sys.stderr)
        return 1
    bench.send_signal(signal.SIGINT)
    try:
        status = bench.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        bench.kill()
        print("bench did not exit after SIGINT", file=sys.stderr)
        return 1
    left = [pid for pid in agents if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    if left or status != 130:
        print(f"exit status {status}, agents left running: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
