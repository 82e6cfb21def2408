#!/usr/bin/python3
"""RSS of an agent with Listen streams that never read (hostile-peers.md, finding 13):

    /usr/bin/python3 bench/listen_rss.py P2PMQ_BIN [--streams 200] [--messages 5000] [--size 1024]

Starts `P2PMQ_BIN agent` on loopback, opens STREAMS Listen streams (buffer_size 65536, each on
its own connection) that never read, publishes MESSAGES x SIZE bytes, then closes the clients.
Prints the agent's RSS (MB) at start, at the peak, and 10 s after the clients left."""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import grpc  # noqa: E402
import p2pmq_stubs  # noqa: E402
from proc_stats import rss_mb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    pb, rpc = p2pmq_stubs.load()
    agent = subprocess.Popen([args.bin, "agent", "--grpc", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, P2PMQ_LOG="warn"))
    try:
        address = None
        for line in agent.stdout:
            m = re.match(r"^grpc (\S+)$", line.strip())
            if m:
                address = m.group(1)
                break
        threading.Thread(target=lambda: [None for _ in agent.stdout], daemon=True).start()
        time.sleep(1)  # settle before the baseline (measurement, not synchronisation)
        base = rss_mb(agent.pid)
        channels, calls = [], []
        for _ in range(args.streams):
            ch = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            call = rpc.MessagingStub(ch).Listen(pb.ListenRequest(topics=["t"], buffer_size=65536))
            call.initial_metadata()
            channels.append(ch)
            calls.append(call)
        publisher = rpc.MessagingStub(grpc.insecure_channel(address))
        payload = b"x" * args.size
        peak = 0.0
        for i in range(args.messages):
            publisher.Publish(pb.PublishRequest(topic="t", data=payload), timeout=60)
            if i % 250 == 0:
                peak = max(peak, rss_mb(agent.pid))
        for _ in range(20):  # the fan-out drains into the buffers
            peak = max(peak, rss_mb(agent.pid))
            time.sleep(0.25)
        for call in calls:
            call.cancel()
        for ch in channels:
            ch.close()
        time.sleep(10)
        after = rss_mb(agent.pid)
        print("streams=%d messages=%d size=%d: RSS baseline %.0f MB, peak %.0f MB, "
              "10 s after the clients left %.0f MB" % (args.streams, args.messages, args.size,
                                                     base, peak, after))
    finally:
        agent.terminate()
        agent.wait(timeout=30)


if __name__ == "__main__":
    main()
