#!/usr/bin/env python3
"""`p2pmq bench --agents` against running agents: every message arrives, the report is consistent.

usage: bench_agents_check.py P2PMQ REPORT_CHECK_PY
Starts two agents (the second bootstraps from the first), runs the bench against their gRPC
addresses, checks its JSON and SVG with bench_report_check.py, and stops the agents by pid.
"""
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 60  # generous: a loaded 2-core machine


def start_agent(p2pmq, extra):
    agent = subprocess.Popen(
        [p2pmq, "--log-level", "warn", "agent", "--listen", "/ip4/127.0.0.1/tcp/0",
         "--grpc", "127.0.0.1:0", "--topic", "bench-agents", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    listen = grpc = None
    buffered = b""
    deadline = time.monotonic() + DEADLINE_S
    # Raw reads of the pipe (select and a buffered reader do not mix).
    while (listen is None or grpc is None) and time.monotonic() < deadline:
        ready, _, _ = select.select([agent.stdout], [], [], 1)
        if not ready:
            continue
        chunk = os.read(agent.stdout.fileno(), 4096)
        if not chunk:
            break
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in (l.decode() for l in lines):
            if line.startswith("listening ") and listen is None:
                listen = line.split()[1]
            if line.startswith("grpc "):
                grpc = line.split()[1]
    return agent, listen, grpc


def main():
    p2pmq, check = sys.argv[1], sys.argv[2]
    agents = []
    try:
        first, first_listen, first_grpc = start_agent(p2pmq, [])
        agents.append(first)
        second, _, second_grpc = start_agent(p2pmq, ["--bootstrap", first_listen or ""])
        agents.append(second)
        if not first_grpc or not second_grpc:
            print("the agents did not start", file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory() as tmp:
            report, plot = os.path.join(tmp, "r.json"), os.path.join(tmp, "r.svg")
            bench = subprocess.run(
                [p2pmq, "bench", "--agents", f"{first_grpc},{second_grpc}", "--topic",
                 "bench-agents", "--pub", "1", "--sub", "1", "--count", "300", "--quiet",
                 "--json", report, "--plot", plot], timeout=4 * DEADLINE_S)
            if bench.returncode != 0:
                print(f"bench exited with {bench.returncode}", file=sys.stderr)
                return 1
            return subprocess.run([sys.executable, check, report, plot, "1", "1", "300"]).returncode
    finally:
        for a in agents:
            a.send_signal(signal.SIGTERM)
        for a in agents:
            try:
                a.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                a.kill()
                a.wait()


if __name__ == "__main__":
    sys.exit(main())
